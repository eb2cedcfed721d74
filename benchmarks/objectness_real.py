"""Pixel objectness on real photographs: POS against the centred Gaussian, proposals, and the POS-CRF.

On a VOC-layout folder with class masks (no instance masks needed), per image:
- POS ratio: mean POS inside objects over mean POS on background (void left out), and the same
  for the centred Gaussian (`center_prior`); the median over images is reported.
- Proposals: average best overlap (ABO) and recall at IoU 0.5 / 0.7 against the objects. Each
  8-connected component of a class mask stands in for an instance (VOC's void band around every
  outline separates touching objects of one class); components under `--min-object` of the image
  are left out as instances (their pixels still count in every union).
- CRF: the same coarse probabilities refined by the plain dense CRF, the POS-CRF (POS as is, and
  scaled to a maximum of 1 like the prior), and the POS-CRF
  fed with the centred Gaussian; mIoU and foreground recall over all images. The probabilities are
  the ground truth degraded the way an FCN-32s output looks (`coarse_probabilities`): the one-hot
  mask (void filled from the nearest labelled pixel) averaged over 32 x 32 blocks, upsampled
  bilinearly, and mixed with a uniform distribution (weight `--uniform`), so boundaries are blobby,
  small objects fade and no pixel is certain.
Boundaries: the training-free default, or a learned boundary model (`--boundary-model FILE`), or
`--folds K`: K boundary models, each trained on the other folds' images (`train_boundary_model`)
and measured on its own fold only, so no image is scored by a model that saw it.

    .venv/bin/python benchmarks/objectness_real.py --root VOC [--split dev] [--folds 4] [--no-crf]

Timings are not the point here; it prints the comparison table only.
"""

import argparse
import time

import numpy as np
from proposal_quality import best_overlaps, instance_counts
from scipy import ndimage
from skimage.transform import resize
from tqdm import tqdm

from pixseg.crf import dense_crf, pos_crf
from pixseg.data import VOCSegmentation
from pixseg.metrics import ConfusionMatrix
from pixseg.objectness.boundaries import boundary_map
from pixseg.objectness.pos import center_prior, objectness_from_proposals
from pixseg.objectness.proposals import proposals_from_superpixels
from pixseg.objectness.superpixels import superpixels

VOID = 255
SETTINGS = ("crf", "prior-crf", "pos-crf", "pos-max-crf")


def object_instances(classes: np.ndarray, min_fraction: float) -> np.ndarray:
    """Instance map: 1..K for connected components of each class, 0 background / small parts, 255 void."""
    objects = np.where(classes == VOID, VOID, 0).astype(np.int32)
    count = 0
    for value in np.unique(classes):
        if value in (0, VOID):
            continue
        components, n = ndimage.label(classes == value, structure=np.ones((3, 3)))
        sizes = np.bincount(components.ravel(), minlength=n + 1)
        for component in range(1, n + 1):
            if sizes[component] >= min_fraction * classes.size:
                count += 1
                objects[components == component] = count
    return objects


def coarse_probabilities(classes: np.ndarray, num_classes: int, stride: int = 32,
                         uniform: float = 0.3) -> np.ndarray:
    """float32 C x H x W: the ground truth as a coarse, unsure network would output it (see the docstring)."""
    void = classes == VOID
    if void.any():
        nearest = ndimage.distance_transform_edt(void, return_distances=False, return_indices=True)
        classes = classes[tuple(nearest)]
    height, width = classes.shape
    rows, cols = -(-height // stride), -(-width // stride)
    padded = np.pad(classes, ((0, rows * stride - height), (0, cols * stride - width)), mode="edge")
    onehot = np.eye(num_classes, dtype=np.float32)[padded]
    blocks = onehot.reshape(rows, stride, cols, stride, num_classes).mean(axis=(1, 3))
    smooth = resize(blocks, (rows * stride, cols * stride, num_classes), order=1, mode="edge",
                    anti_aliasing=False)[:height, :width]
    smooth /= smooth.sum(axis=2, keepdims=True)
    probs = (1 - uniform) * smooth + uniform / num_classes
    return np.ascontiguousarray(probs.transpose(2, 0, 1), dtype=np.float32)


def ratio(values: np.ndarray, inside: np.ndarray, outside: np.ndarray) -> float:
    return float(values[inside].mean() / max(values[outside].mean(), 1e-12))


def measure(dataset, indices, boundaries_of, args, results) -> None:
    for index in tqdm(indices, desc="images", unit="img", leave=False):
        image, classes = dataset[index]
        classes = np.asarray(classes)
        boundaries = boundaries_of(image)
        labels = superpixels(image, boundaries)
        proposals = proposals_from_superpixels(labels, boundaries)
        pos = objectness_from_proposals(proposals)
        prior = center_prior(classes.shape)
        inside, outside = (classes > 0) & (classes != VOID), classes == 0
        if inside.any() and outside.any():
            results["pos_ratio"].append(ratio(pos, inside, outside))
            results["prior_ratio"].append(ratio(prior, inside, outside))
        counts, valid = instance_counts(labels, object_instances(classes, args.min_object))
        results["overlaps"].extend(best_overlaps(proposals.membership, counts, valid))
        results["proposals"].append(len(proposals))
        if args.no_crf:
            continue
        probs = coarse_probabilities(classes, dataset.num_classes, uniform=args.uniform)
        refine = {"crf": lambda: dense_crf(image, probs)[0], "prior-crf": lambda: pos_crf(image, probs, prior)[0],
                  "pos-crf": lambda: pos_crf(image, probs, pos)[0],
                  "pos-max-crf": lambda: pos_crf(image, probs, pos / max(float(pos.max()), 1e-6))[0]}
        results["matrices"]["none"].update(probs.argmax(axis=0), classes)
        for name in args.crf_rows:
            results["matrices"][name].update(np.asarray(refine[name]()), classes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="VOC-layout folder with JPEGImages/ and SegmentationClass/")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--boundary-model", default=None, help="a learned boundary model for every image")
    parser.add_argument("--folds", type=int, default=0,
                        help="cross-validate a learned boundary model over K folds (0: no learning)")
    parser.add_argument("--min-object", type=float, default=0.001,
                        help="smallest component counted as an instance, fraction of the image")
    parser.add_argument("--uniform", type=float, default=0.3, help="uniform weight in the coarse probabilities")
    parser.add_argument("--no-crf", action="store_true", help="skip the CRF comparison (the slow part)")
    parser.add_argument("--crf-rows", default=",".join(SETTINGS),
                        help="CRF rows to compute; only pos-crf depends on the boundaries (default: all)")
    args = parser.parse_args()
    args.crf_rows = [row for row in args.crf_rows.split(",") if row]
    if set(args.crf_rows) - set(SETTINGS):
        parser.error(f"--crf-rows takes some of {','.join(SETTINGS)}, got {','.join(args.crf_rows)}")
    if args.folds and args.boundary_model:
        parser.error("--folds trains its own models; give --boundary-model or --folds, not both")

    dataset = VOCSegmentation(args.root, args.split)
    results = {"pos_ratio": [], "prior_ratio": [], "overlaps": [], "proposals": [],
               "matrices": {name: ConfusionMatrix(dataset.num_classes) for name in ("none",) + SETTINGS}}
    started = time.perf_counter()
    if args.folds:
        from pixseg.objectness.learned import train_boundary_model

        folds = np.array_split(np.arange(len(dataset)), args.folds)
        for fold, held_out in enumerate(folds):
            training = np.setdiff1d(np.arange(len(dataset)), held_out)
            model = train_boundary_model([dataset[i] for i in training])
            print(f"fold {fold + 1}/{args.folds}: trained on {len(training)} images, measuring {len(held_out)}")
            measure(dataset, held_out, model.boundaries, args, results)
        source = f"learned, {args.folds}-fold cross-validation"
    elif args.boundary_model:
        from pixseg.objectness.learned import load_boundary_model

        model = load_boundary_model(args.boundary_model)
        measure(dataset, range(len(dataset)), model.boundaries, args, results)
        source = f"learned, {args.boundary_model}"
    else:
        measure(dataset, range(len(dataset)), boundary_map, args, results)
        source = "training-free Lab gradients"

    overlaps = np.array(results["overlaps"])
    print(f"{len(dataset)} images of {args.root} (split {args.split}), {len(overlaps)} objects; "
          f"boundaries: {source}; {time.perf_counter() - started:.0f} s")
    print(f"object / background ratio, median over images: POS {np.median(results['pos_ratio']):.2f}, "
          f"centred Gaussian {np.median(results['prior_ratio']):.2f}")
    print(f"proposals: {np.mean(results['proposals']):.0f} per image, ABO {overlaps.mean():.3f}, "
          f"recall@0.5 {(overlaps >= 0.5).mean():.3f}, recall@0.7 {(overlaps >= 0.7).mean():.3f}")
    if not args.no_crf:
        print(f"coarse probabilities (32 x 32 blocks, uniform {args.uniform}), then:")
        print(f"{'':<28} {'mIoU':>6} {'fg recall':>9}")
        names = {"none": "argmax (no CRF)", "crf": "dense CRF", "prior-crf": "POS-CRF, centred Gaussian",
                 "pos-crf": "POS-CRF, objectness", "pos-max-crf": "POS-CRF, objectness / max"}
        for key, name in names.items():
            if key != "none" and key not in args.crf_rows:
                continue
            scores = results["matrices"][key].compute()
            print(f"{name:<28} {100 * scores['miou']:6.2f} {100 * scores['fg_recall']:9.2f}")


if __name__ == "__main__":
    main()
