"""Proposal ranking: how much each geodesic proposal looks like a whole object, learned from masks.

Plain pixel objectness counts every proposal alike, so the many proposals that are pieces of
background (sky, floor, a wall touching two image sides) push as much as those that outline an
object. Proposal rankers in the literature (CPMC, MCG) score each segment from cheap mid-level cues
before using it; so does pixseg. Each proposal is described by `proposal_features`:
- size: log area and area (fractions of the image), log number of superpixels;
- position: distance of its centroid from the image centre, and along each axis;
- the image border: the fraction of the border's pixels it covers;
- its outline: mean boundary strength along it, the same inside the proposal, their difference, and
  the outline's length over the square root of the area (compactness);
- colour contrast: the distance in CIE Lab between its mean colour and that of the superpixels
  around it, and that of everything outside it.
A perceptron (`perceptron.py`) is fitted to each training proposal's best overlap (IoU) with an
object of the class mask (`train_proposal_ranker`). Objectness then weighs each proposal by its
score to the power `SCORE_POWER` (`proposal_weights`), which lets the few proposals that look like
objects dominate the many that do not.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from skimage.color import rgb2lab

from pixseg.objectness.boundaries import as_rgb
from pixseg.objectness.geodesic import shared_borders
from pixseg.objectness.learned import BoundaryModel, mask_objects
from pixseg.objectness.perceptron import Perceptron, fit_perceptron
from pixseg.objectness.proposals import Proposals, propose

SCORE_POWER = 4
FEATURES = 13


def _superpixel_statistics(labels: np.ndarray, boundaries: np.ndarray, image: np.ndarray) -> dict:
    """Per superpixel: area, centroid, border pixels, mean Lab colour; per touching pair: the length
    of the shared border and the mean boundary strength along it."""
    count = int(labels.max()) + 1
    height, width = labels.shape
    flat = labels.ravel()
    area = np.bincount(flat, minlength=count).astype(np.float64)
    rows, cols = np.mgrid[0:height, 0:width]
    centre_y = np.bincount(flat, ((rows + 0.5) / height - 0.5).ravel(), count) / area
    centre_x = np.bincount(flat, ((cols + 0.5) / width - 0.5).ravel(), count) / area
    border = np.bincount(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]), minlength=count)
    lab = rgb2lab(image).reshape(-1, 3)
    colour = np.stack([np.bincount(flat, lab[:, c], count) for c in range(3)], axis=1) / area[:, None]
    edges, length, strength = shared_borders(labels, boundaries)
    first, second = edges[:, 0], edges[:, 1]
    return {"area": area, "centre_y": centre_y, "centre_x": centre_x, "border": border.astype(np.float64),
            "colour": colour, "first": first, "second": second, "length": length.astype(np.float64),
            "strength": strength}


def proposal_features(proposals: Proposals, image, boundaries: np.ndarray) -> np.ndarray:
    """float64 P x `FEATURES`: the cues of the module docstring for each proposal, from the superpixel
    map and membership of `proposals`, the RGB `image` and the boundary map they were computed on."""
    image = as_rgb(image)
    stats = _superpixel_statistics(proposals.superpixels, np.asarray(boundaries, np.float64), image)
    member = proposals.membership
    inside = member.astype(np.float64)
    area = inside @ stats["area"]
    image_area = float(proposals.superpixels.size)
    centre_y = inside @ (stats["area"] * stats["centre_y"]) / area
    centre_x = inside @ (stats["area"] * stats["centre_x"]) / area
    border = inside @ stats["border"] / stats["border"].sum()
    cut = (member[:, stats["first"]] != member[:, stats["second"]]).astype(np.float64)
    interior = (member[:, stats["first"]] & member[:, stats["second"]]).astype(np.float64)
    outline_length = cut @ stats["length"]
    outline = cut @ (stats["length"] * stats["strength"]) / np.maximum(outline_length, 1)
    within = interior @ (stats["length"] * stats["strength"]) / np.maximum(interior @ stats["length"], 1)
    count = member.shape[1]
    pairs = np.ones(len(stats["first"]))
    touching = sparse.csr_matrix((np.concatenate([pairs, pairs]), (np.concatenate([stats["first"], stats["second"]]),
                                  np.concatenate([stats["second"], stats["first"]]))), shape=(count, count))
    around = (touching @ inside.T).T > 0
    around &= ~member
    colour_inside = (inside * stats["area"]) @ stats["colour"] / area[:, None]

    def mean_colour(region):
        weights = region.astype(np.float64) * stats["area"]
        return weights @ stats["colour"] / np.maximum(weights.sum(axis=1), 1)[:, None]

    # Lab distances of a few tens separate clearly different colours; /50 keeps the inputs near 1.
    contrast_around = np.linalg.norm(colour_inside - mean_colour(around), axis=1) / 50
    contrast_outside = np.linalg.norm(colour_inside - mean_colour(~member), axis=1) / 50
    return np.stack([np.log(area / image_area), area / image_area, np.hypot(centre_y, centre_x),
                     np.abs(centre_y), np.abs(centre_x), border, outline, within, outline - within,
                     outline_length / np.sqrt(area) / 10, contrast_around, contrast_outside,
                     np.log(member.sum(axis=1))], axis=1)


def proposal_overlaps(proposals: Proposals, classes: np.ndarray) -> np.ndarray:
    """float64 (P,): each proposal's highest IoU with an object of the class mask (`mask_objects`);
    zeros when the mask has no object."""
    objects = mask_objects(classes)
    count = int(objects.max())
    if count == 0 or len(proposals) == 0:
        return np.zeros(len(proposals))
    pixels = np.zeros((proposals.membership.shape[1], count + 1))
    np.add.at(pixels, (proposals.superpixels.ravel(), objects.ravel()), 1)
    inside = proposals.membership.astype(np.float64)
    intersection = inside @ pixels[:, 1:]
    union = (inside @ pixels.sum(axis=1))[:, None] + pixels[:, 1:].sum(axis=0)[None, :] - intersection
    return (intersection / np.maximum(union, 1)).max(axis=1)


def proposal_weights(ranker: Perceptron, proposals: Proposals, image, boundaries: np.ndarray) -> np.ndarray:
    """float64 (P,): each proposal's weight in objectness, its ranker score to the power `SCORE_POWER`."""
    if len(proposals) == 0:
        return np.zeros(0)
    return ranker(proposal_features(proposals, image, boundaries)).astype(np.float64) ** SCORE_POWER


def train_proposal_ranker(samples, model: BoundaryModel, *, hidden: int = 16, iterations: int = 500,
                          l2: float = 2e-3, seed: int = 0, progress=None, **proposal_options) -> Perceptron:
    """Fit a ranker on `samples`, (image, class mask) pairs, from the proposals that `model`'s
    boundaries give (`proposal_options` go to `propose`). `progress` is called with each image's index."""
    features, overlaps = [], []
    for index, (image, classes) in enumerate(samples):
        boundaries = model.boundaries(image)
        proposals = propose(image, boundaries=boundaries, **proposal_options)
        if len(proposals):
            features.append(proposal_features(proposals, image, boundaries))
            overlaps.append(proposal_overlaps(proposals, classes))
        if progress is not None:
            progress(index)
    if not overlaps:
        raise ValueError("train_proposal_ranker found no proposals in its images")
    x, y = np.concatenate(features), np.concatenate(overlaps)
    return fit_perceptron(x, y, np.full(len(y), 1 / len(y)), hidden=hidden, iterations=iterations, l2=l2,
                          rng=np.random.default_rng(seed))
