"""A boundary model learned from a dataset's own class masks (GOP uses a trained edge detector).

Each pixel is described by cheap multi-scale cues (`boundary_features`: colour step heights at
several scales, per-channel Lab gradients, texture change and spread, surround-inhibited edges and the
distance from the image centre); a small multilayer perceptron scores how likely an object outline
passes through it. The training targets are the outlines of the masks: every connected component
of a class is an object, then void pixels take the object of the nearest labelled pixel (VOC's void
band straddles the true outline), and pixels within `POSITIVE_RADIUS` of an outline are boundary, those
farther than `NEGATIVE_RADIUS` are not. Training is full-batch L-BFGS on a class-balanced logistic
loss over a fixed sample of pixels, so the same images give the same model. The probability map is
thinned to one-pixel ridges like the training-free map, ready for superpixels and proposals.
`train_on_dataset` then fits a proposal ranker on the same images (`objectness/ranking.py`), and the
model file carries both.

A model is one .npz file (arrays only, no pickled code), written atomically. Files without a ranker
(written before it existed) still load; their objectness is the plain fraction of proposals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.color import rgb2lab

from pixseg.io import atomic_path
from pixseg.objectness.boundaries import (_coarse_step_height, _non_maximum_suppression, _step_height,
                                          as_rgb)
from pixseg.objectness.perceptron import Perceptron, fit_perceptron

FORMAT = "pixseg-boundary-model-v1"
RANKER_PREFIX = "ranker_"
SCALES = (1.0, 2.0, 4.0, 8.0)
POSITIVE_RADIUS = 1.5
NEGATIVE_RADIUS = 4.0
VOID = 255


def boundary_features(image) -> tuple[np.ndarray, np.ndarray]:
    """(F x H x W float32 features, H x W edge orientation in radians) of `image` (uint8 HxWx3)."""
    lab = rgb2lab(as_rgb(image)).astype(np.float32)
    channels = [lab[..., c] for c in range(3)]
    features, orientation = [], None
    for sigma in SCALES:
        height, tensor = _step_height(channels, sigma)
        features.append(height)
        if sigma == 2.0:
            orientation = 0.5 * np.arctan2(2 * tensor[2], tensor[0] - tensor[1])
            for channel in channels:
                features.append(_step_height([channel], sigma)[0])
            surround = ndimage.gaussian_filter(height, 3 * sigma, mode="nearest")
            features.append(np.maximum(height - surround, 0))
    features.append(_coarse_step_height(lab, 10.0, 6.0))
    spread = sum(ndimage.gaussian_filter(c * c, 4.0) - ndimage.gaussian_filter(c, 4.0) ** 2 for c in channels)
    features.append(np.sqrt(np.maximum(spread, 0)))
    rows, cols = lab.shape[:2]
    y = (np.arange(rows) + 0.5) / rows - 0.5
    x = (np.arange(cols) + 0.5) / cols - 0.5
    # Outlines of photographed objects are rarer near the frame than near its centre.
    features.append(np.sqrt(y[:, None] ** 2 + x[None, :] ** 2) * np.ones((1, cols)))
    # Step heights span orders of magnitude; a log keeps the perceptron's inputs comparable.
    stack = np.stack(features[:-1]).astype(np.float32)
    return np.concatenate([np.log1p(np.maximum(stack, 0)), features[-1][None].astype(np.float32)]), orientation


def mask_objects(classes: np.ndarray) -> np.ndarray:
    """int64 H x W: the objects of a class mask, 1..K, and 0 for background.

    Every 8-connected component of a class is an object, found before the void is filled: VOC's void
    band is what separates touching objects of a class. Void pixels then take the object (or the
    background) of the nearest labelled pixel, since the band straddles the true outline.
    """
    classes = np.asarray(classes)
    void = classes == VOID
    objects = np.zeros(classes.shape, np.int64)
    for value in np.unique(classes[(classes != 0) & ~void]):
        components, _ = ndimage.label(classes == value, structure=np.ones((3, 3)))
        objects[components > 0] = components[components > 0] + objects.max()
    if void.any() and not void.all():
        nearest = ndimage.distance_transform_edt(void, return_distances=False, return_indices=True)
        objects = objects[tuple(nearest)]
    return objects


def mask_outlines(classes: np.ndarray) -> np.ndarray:
    """bool H x W: the outlines between the objects of a class mask (`mask_objects`) and between objects
    and background, one pixel wide (the pixel below or right of each change)."""
    objects = mask_objects(classes)
    outline = np.zeros(objects.shape, bool)
    outline[:, 1:] |= objects[:, 1:] != objects[:, :-1]
    outline[1:, :] |= objects[1:, :] != objects[:-1, :]
    return outline


def outline_targets(classes: np.ndarray) -> np.ndarray:
    """int8 H x W: 1 near an object outline of the class mask, 0 far from any, -1 in between (unused)."""
    classes = np.asarray(classes)
    if (classes == VOID).all():
        return np.full(classes.shape, -1, np.int8)
    outline = mask_outlines(classes)
    if not outline.any():
        return np.zeros(classes.shape, np.int8)
    distance = ndimage.distance_transform_edt(~outline)
    return np.where(distance <= POSITIVE_RADIUS, 1, np.where(distance > NEGATIVE_RADIUS, 0, -1)).astype(np.int8)


@dataclass(frozen=True)
class BoundaryModel:
    """`edges` scores pixels (columns of `boundary_features`) as object outline; `ranker`, when
    present, scores proposals (rows of `ranking.proposal_features`) by their expected overlap with an
    object."""

    edges: Perceptron
    ranker: Perceptron | None = None

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Boundary probability of each column of `features` (F x N), float32 (N,)."""
        return self.edges(features.T)

    def boundaries(self, image) -> np.ndarray:
        """Boundary map of `image` (uint8 HxWx3): float32 HxW in [0, 1], one-pixel ridges."""
        features, orientation = boundary_features(image)
        shape = features.shape[1:]
        probability = self.probabilities(features.reshape(len(features), -1)).reshape(shape)
        return np.clip(_non_maximum_suppression(probability, orientation), 0.0, 1.0)

    def save(self, path) -> None:
        """Write the model to `path` (.npz) atomically."""
        arrays = self.edges.arrays()
        if self.ranker is not None:
            arrays.update(self.ranker.arrays(RANKER_PREFIX))
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, format=np.array(FORMAT), **arrays)


def load_boundary_model(path) -> BoundaryModel:
    """Read a model written by `BoundaryModel.save`; a missing or foreign file is a ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"boundary model {path} does not exist (make one with `pixseg train-boundaries`)")
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"boundary model {path} could not be read: {error}") from None
    if arrays.get("format", np.array("")).item() != FORMAT:
        raise ValueError(f"boundary model {path} is not a {FORMAT} file")
    from pixseg.objectness.ranking import FEATURES

    try:
        edges = Perceptron.from_arrays(arrays)
        ranker = Perceptron.from_arrays(arrays, RANKER_PREFIX) if f"{RANKER_PREFIX}mean" in arrays else None
    except ValueError as error:
        raise ValueError(f"boundary model {path}: {error}") from None
    if ranker is not None and ranker.mean.shape != (FEATURES,):
        raise ValueError(f"boundary model {path}: its proposal ranker takes {len(ranker.mean)} features, "
                         f"expected {FEATURES}")
    return BoundaryModel(edges, ranker)


def train_on_dataset(dataset, out, *, max_images: int = 200, progress: bool = True) -> BoundaryModel:
    """Train on at most `max_images` images spread evenly over `dataset` (pairs of image and class mask):
    the boundary model, then the proposal ranker on the proposals its boundaries give on the same
    images. Writes the model to `out` atomically."""
    from tqdm import tqdm

    from pixseg.objectness.ranking import train_proposal_ranker

    if max_images < 1:
        raise ValueError(f"max_images must be at least 1, got {max_images}")
    step = max(1, len(dataset) // max_images)
    indices = list(range(0, len(dataset), step))[:max_images]
    with tqdm(total=len(indices), desc="boundary features", unit="img", disable=not progress) as bar:
        model = train_boundary_model((dataset[i] for i in indices), progress=lambda _: bar.update())
    with tqdm(total=len(indices), desc="proposal ranker", unit="img", disable=not progress) as bar:
        ranker = train_proposal_ranker((dataset[i] for i in indices), model, progress=lambda _: bar.update())
    model = BoundaryModel(model.edges, ranker)
    model.save(out)
    return model


def train_boundary_model(samples, *, hidden: int = 16, pixels_per_image: int = 4000, iterations: int = 300,
                         l2: float = 1e-3, seed: int = 0, progress=None) -> BoundaryModel:
    """Fit a boundary model on `samples`, an iterable of (image uint8 HxWx3, class mask HxW) pairs.

    From each image `pixels_per_image` pixels are drawn, half near outlines and half far from
    them (fewer when an image has fewer). `progress` is called with each image's index once its
    features are computed.
    """
    rng = np.random.default_rng(seed)
    columns, labels = [], []
    for index, (image, classes) in enumerate(samples):
        features, _ = boundary_features(image)
        targets = outline_targets(classes).ravel()
        if targets.shape[0] != features.shape[1] * features.shape[2]:
            raise ValueError(f"training pair {index}: mask shape {np.shape(classes)} differs from the "
                             f"image's {features.shape[1:]}")
        flat = features.reshape(len(features), -1)
        for value in (1, 0):
            candidates = np.flatnonzero(targets == value)
            chosen = rng.choice(candidates, min(len(candidates), pixels_per_image // 2), replace=False)
            columns.append(flat[:, chosen])
            labels.append(np.full(len(chosen), value, np.float64))
        if progress is not None:
            progress(index)
    if not labels:
        raise ValueError("train_boundary_model needs at least one (image, mask) pair")
    x = np.concatenate(columns, axis=1).T.astype(np.float64)
    y = np.concatenate(labels)
    if y.min() == y.max():
        raise ValueError("the masks have no object outlines to learn from (every mask is one region)")
    # Each class carries half the loss, whatever the balance of the sample.
    weight = np.where(y == 1, 0.5 / y.sum(), 0.5 / (len(y) - y.sum()))
    return BoundaryModel(fit_perceptron(x, y, weight, hidden=hidden, iterations=iterations, l2=l2, rng=rng))
