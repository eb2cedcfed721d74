"""Pixel objectness on real photographs: POS against the centred Gaussian, proposals, and the POS-CRF.

On a VOC-layout folder with class masks (no instance masks needed), per image:
- POS ratio: mean POS inside objects over mean POS on background (void left out), and the same
  for the centred Gaussian (`center_prior`); the median over images is reported.
- Proposals: average best overlap (ABO) and recall at IoU 0.5 / 0.7 against the objects. Each
  8-connected component of a class mask stands in for an instance (VOC's void band around every
  outline separates touching objects of one class); components under `--min-object` of the image
  are left out as instances (their pixels still count in every union).
- CRF: the same coarse probabilities refined by the plain dense CRF and by the POS-CRF fed with
  objectness or with the centred Gaussian, at each weight of `--pos-scales` (default pixseg's); mIoU
  and foreground recall over all images. The probabilities are the ground truth degraded the way an
  FCN-32s output looks (`coarse_probabilities`): the one-hot mask (void filled from the nearest
  labelled pixel) averaged over 32 x 32 blocks, upsampled bilinearly, and mixed with a uniform
  distribution (weight `--uniform`), so boundaries are blobby, small objects fade and no pixel is certain.
Boundaries: the training-free default, or a learned boundary model (`--boundary-model FILE`), or
`--folds K`: K boundary models, each trained on the other folds' images (`train_boundary_model`, then
its proposal ranker on the same images, `train_proposal_ranker`; `--no-ranker` leaves the ranker out)
and measured on its own fold only, so no image is scored by a model that saw it.
`--oracle-boundaries` (with `--folds K --choose-scale`, no model is trained) uses each image's own object
outlines from its mask as the boundary map: an upper bound that shows what objectness gives the
POS-CRF when the boundaries are right.
`--folds K --choose-scale` (K >= 3) also chooses the POS-CRF weight on held-out images, as
`tune-crf` chooses CRF parameters: model f is trained on fold f alone, the weights of
`--pos-scales` are compared on fold f + 1 (the best mIoU wins, for objectness and for the
Gaussian separately) and fold f + 2 is scored; each image is scored once, by a model and a weight
chosen without it. `--tune-crf N` adds a row per CRF whose dense-CRF parameters are chosen on that
held-out fold too, as `pixseg tune-crf` chooses them (its presets plus N random draws), jointly with the
weight for the POS-CRF rows: the default parameters were tuned for a trained network's output, and
a prior that only undoes what they do to these probabilities would win for the wrong reason.

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
from pixseg.crf.params import CRF_PRESETS, DEFAULT_ITERATIONS, DEFAULT_PRESET
from pixseg.data import VOCSegmentation
from pixseg.metrics import ConfusionMatrix
from pixseg.objectness.boundaries import boundary_map
from pixseg.objectness.learned import BoundaryModel, load_boundary_model, mask_outlines, train_boundary_model
from pixseg.objectness.pos import center_prior, learned_objectness, objectness_from_proposals
from pixseg.objectness.proposals import proposals_from_superpixels
from pixseg.objectness.ranking import train_proposal_ranker
from pixseg.objectness.superpixels import superpixels

VOID = 255
ROWS = {"crf": "dense CRF", "prior-crf": "POS-CRF, centred Gaussian", "pos-crf": "POS-CRF, objectness"}


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


def crf_jobs(args, candidates=None, tuned=None) -> dict:
    """The CRF runs per image, key -> (row, scale, dense-CRF options): every row and weight at the
    default parameters keyed (row, scale) (the plain CRF's scale is None); with `candidates`,
    every row, weight and candidate keyed (row, scale, k) instead; with `tuned` (row -> (scale,
    options)) also (row, "tuned")."""
    rows = [("crf", None)] if "crf" in args.crf_rows else []
    rows += [(row, scale) for scale in args.pos_scales for row in ("prior-crf", "pos-crf") if row in args.crf_rows]
    if candidates is not None:
        return {(row, scale, k): (row, scale, options) for row, scale in rows for k, options in enumerate(candidates)}
    jobs = {(row, scale): (row, scale, {}) for row, scale in rows}
    for row, (scale, options) in (tuned or {}).items():
        jobs[(row, "tuned")] = (row, scale, options)
    return jobs


def training_free_objectness(image, classes):
    boundaries = boundary_map(image)
    proposals = proposals_from_superpixels(superpixels(image, boundaries), boundaries)
    return proposals, objectness_from_proposals(proposals)


def oracle_objectness(image, classes):
    """Proposals and plain POS on the mask's own object outlines (1 on an outline pixel, 0 elsewhere)."""
    outline = mask_outlines(classes).astype(np.float32)
    proposals = proposals_from_superpixels(superpixels(image, outline), outline)
    return proposals, objectness_from_proposals(proposals)


def learned_model(pairs, args) -> BoundaryModel:
    """A boundary model trained on `pairs` and, unless --no-ranker, its proposal ranker."""
    model = train_boundary_model(pairs)
    return model if args.no_ranker else BoundaryModel(model.edges, train_proposal_ranker(pairs, model))


def model_objectness(model):
    """objectness_of for `measure`: the learned model's proposals and POS (the mask is not used)."""
    return lambda image, classes: learned_objectness(image, model)


def measure(dataset, indices, objectness_of, args, quality: bool = True, jobs=None) -> dict:
    """Per image of `indices`: its quality figures (when `quality`) and one confusion matrix per CRF
    job (`crf_jobs`; the default jobs when None) plus ("none", None), the argmax."""
    jobs = crf_jobs(args) if jobs is None else jobs
    results = {"pos_ratio": [], "prior_ratio": [], "overlaps": [], "proposals": [], "images": {}}
    for index in tqdm(indices, desc="images", unit="img", leave=False):
        image, classes = dataset[index]
        classes = np.asarray(classes)
        proposals, pos = objectness_of(image, classes)
        labels = proposals.superpixels
        prior = center_prior(classes.shape)
        if quality:
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
        matrices = {("none", None): probs.argmax(axis=0)}
        for key, (row, scale, options) in jobs.items():
            if row == "crf":
                matrices[key] = dense_crf(image, probs, **options)[0]
            else:
                objectness = prior if row == "prior-crf" else pos
                matrices[key] = pos_crf(image, probs, objectness, pos_scale=scale, **options)[0]
        for key, predicted in matrices.items():
            matrix = ConfusionMatrix(dataset.num_classes)
            matrix.update(np.asarray(predicted), classes)
            matrices[key] = matrix
        results["images"][index] = matrices
    return results


def merged(results: dict, indices, key) -> ConfusionMatrix:
    total = ConfusionMatrix(results["images"][indices[0]][key].num_classes)
    for index in indices:
        total.merge(results["images"][index][key])
    return total


def choose_scale(results: dict, indices, row: str, scales) -> float:
    """The weight with the best mIoU of `row` over `indices` (the smaller on a tie)."""
    return max(scales, key=lambda scale: (merged(results, indices, (row, scale)).compute()["miou"], -scale))


def choose_crf(results: dict, indices, row: str, scales, candidates) -> tuple:
    """(weight, options) with the best mIoU of `row` over `indices` among the weights and CRF
    candidates (on a tie the smaller weight, then the earlier candidate)."""
    scale, k = max(((scale, k) for scale in scales for k in range(len(candidates))),
                   key=lambda sk: (merged(results, indices, (row, *sk)).compute()["miou"], -(sk[0] or 0), -sk[1]))
    return scale, candidates[k]


def rotate_folds(dataset, args):
    """--choose-scale: model f trained on fold f, weights (and with --tune-crf the CRF parameters)
    compared on fold f + 1, fold f + 2 scored."""
    from pixseg.engine.tune_crf import candidate_settings

    folds = np.array_split(np.arange(len(dataset)), args.folds)
    scored = {"pos_ratio": [], "prior_ratio": [], "overlaps": [], "proposals": [], "images": {}}
    candidates = candidate_settings(args.tune_crf, DEFAULT_ITERATIONS) if args.tune_crf is not None else None
    default = list(CRF_PRESETS).index(DEFAULT_PRESET)
    for fold in range(args.folds):
        tuning, scoring = folds[(fold + 1) % args.folds], folds[(fold + 2) % args.folds]
        if args.oracle_boundaries:
            objectness_of = oracle_objectness
        else:
            objectness_of = model_objectness(learned_model([dataset[i] for i in folds[fold]], args))
        tuned = measure(dataset, tuning, objectness_of, args, quality=False,
                        jobs=crf_jobs(args, candidates) if candidates else None)
        best = None
        if candidates:
            best = {row: choose_crf(tuned, list(tuning), row, [None] if row == "crf" else args.pos_scales, candidates)
                    for row in args.crf_rows}
            for row, (scale, options) in best.items():
                weight = "" if scale is None else f"weight {scale:g}, "
                print(f"fold {fold + 1}: {ROWS[row]}: {weight}appearance {options['appearance']}, "
                      f"smoothness {options['smoothness']}")
            # The default parameters are one of the candidates: the weight-only choice reads them there.
            for matrices in tuned["images"].values():
                matrices.update({key[:2]: matrix for key, matrix in list(matrices.items()) if key[2:] == (default,)})
        chosen = {row: choose_scale(tuned, list(tuning), row, args.pos_scales) for row in ("prior-crf", "pos-crf")}
        trained = "oracle outlines" if args.oracle_boundaries else f"model trained on {len(folds[fold])} images"
        print(f"fold {fold + 1}/{args.folds}: {trained}; weights chosen on "
              f"{len(tuning)}: objectness {chosen['pos-crf']:g}, centred Gaussian {chosen['prior-crf']:g}; "
              f"scoring {len(scoring)}")
        results = measure(dataset, scoring, objectness_of, args, jobs=crf_jobs(args, tuned=best))
        for key in ("pos_ratio", "prior_ratio", "overlaps", "proposals"):
            scored[key].extend(results[key])
        for index, matrices in results["images"].items():
            matrices[("prior-crf", "chosen")] = matrices[("prior-crf", chosen["prior-crf"])]
            matrices[("pos-crf", "chosen")] = matrices[("pos-crf", chosen["pos-crf"])]
            scored["images"][index] = matrices
    return scored


def main():
    from pixseg.crf.params import DEFAULT_POS_SCALE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="VOC-layout folder with JPEGImages/ and SegmentationClass/")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--boundary-model", default=None, help="a learned boundary model for every image")
    parser.add_argument("--folds", type=int, default=0,
                        help="cross-validate a learned boundary model over K folds (0: no learning)")
    parser.add_argument("--oracle-boundaries", action="store_true",
                        help="with --choose-scale: each image's own mask outlines as its boundary map (an upper bound)")
    parser.add_argument("--no-ranker", action="store_true",
                        help="with --folds: plain objectness (every proposal counts alike), no proposal ranker")
    parser.add_argument("--choose-scale", action="store_true",
                        help="with --folds K >= 3: choose the POS-CRF weight among --pos-scales on held-out folds")
    parser.add_argument("--pos-scales", default=f"{DEFAULT_POS_SCALE:g}",
                        help="POS-CRF weights on objectness scaled to a maximum of 1 (default pixseg's)")
    parser.add_argument("--min-object", type=float, default=0.001,
                        help="smallest component counted as an instance, fraction of the image")
    parser.add_argument("--uniform", type=float, default=0.3, help="uniform weight in the coarse probabilities")
    parser.add_argument("--tune-crf", type=int, default=None, metavar="N",
                        help="with --choose-scale: also choose each row's dense-CRF parameters on the held-out "
                             "fold among tune-crf's presets and N random draws")
    parser.add_argument("--no-crf", action="store_true", help="skip the CRF comparison (the slow part)")
    parser.add_argument("--crf-rows", default=",".join(ROWS),
                        help="CRF rows to compute; only pos-crf depends on the boundaries (default: all)")
    args = parser.parse_args()
    args.crf_rows = [row for row in args.crf_rows.split(",") if row]
    args.pos_scales = [float(v) for v in args.pos_scales.split(",") if v]
    if set(args.crf_rows) - set(ROWS):
        parser.error(f"--crf-rows takes some of {','.join(ROWS)}, got {','.join(args.crf_rows)}")
    if args.folds and args.boundary_model:
        parser.error("--folds trains its own models; give --boundary-model or --folds, not both")
    if args.choose_scale and (args.folds < 3 or args.no_crf or {"prior-crf", "pos-crf"} - set(args.crf_rows)):
        parser.error("--choose-scale needs --folds 3 or more and the prior-crf and pos-crf rows")
    if args.oracle_boundaries and not args.choose_scale:
        parser.error("--oracle-boundaries needs --choose-scale (and its --folds)")
    if args.tune_crf is not None and (not args.choose_scale or args.tune_crf < 0):
        parser.error("--tune-crf N needs --choose-scale and N >= 0")

    dataset = VOCSegmentation(args.root, args.split)
    started = time.perf_counter()
    if args.choose_scale:
        results = rotate_folds(dataset, args)
        source = ("the masks' own outlines (oracle)" if args.oracle_boundaries
                  else f"learned, {args.folds} folds rotated (train / choose the weight / score)")
    elif args.folds:
        results = {"pos_ratio": [], "prior_ratio": [], "overlaps": [], "proposals": [], "images": {}}
        for fold, held_out in enumerate(np.array_split(np.arange(len(dataset)), args.folds)):
            training = np.setdiff1d(np.arange(len(dataset)), held_out)
            model = learned_model([dataset[i] for i in training], args)
            print(f"fold {fold + 1}/{args.folds}: trained on {len(training)} images, measuring {len(held_out)}")
            measured = measure(dataset, held_out, model_objectness(model), args)
            for key in ("pos_ratio", "prior_ratio", "overlaps", "proposals"):
                results[key].extend(measured[key])
            results["images"].update(measured["images"])
        source = f"learned, {args.folds}-fold cross-validation"
    elif args.boundary_model:
        model = load_boundary_model(args.boundary_model)
        results = measure(dataset, range(len(dataset)), model_objectness(model), args)
        source = f"learned, {args.boundary_model}"
    else:
        results = measure(dataset, range(len(dataset)), training_free_objectness, args)
        source = "training-free Lab gradients"

    overlaps = np.array(results["overlaps"])
    print(f"{len(dataset)} images of {args.root} (split {args.split}), {len(overlaps)} objects; "
          f"boundaries: {source}; {time.perf_counter() - started:.0f} s")
    print(f"object / background ratio, median over images: POS {np.median(results['pos_ratio']):.2f}, "
          f"centred Gaussian {np.median(results['prior_ratio']):.2f}")
    print(f"proposals: {np.mean(results['proposals']):.0f} per image, ABO {overlaps.mean():.3f}, "
          f"recall@0.5 {(overlaps >= 0.5).mean():.3f}, recall@0.7 {(overlaps >= 0.7).mean():.3f}")
    if args.no_crf:
        return
    print(f"coarse probabilities (32 x 32 blocks, uniform {args.uniform}), then:")
    print(f"{'':<68} {'mIoU':>6} {'fg recall':>9}")
    indices = sorted(results["images"])
    keys = [("none", None)] + [key for key in results["images"][indices[0]] if key[0] != "none"]
    for row, scale in keys:
        name = "argmax (no CRF)" if row == "none" else ROWS[row]
        weight = ("" if scale is None else ", weight chosen on held-out folds" if scale == "chosen"
                  else ", CRF (and weight) chosen on held-out folds" if scale == "tuned" else f", weight {scale:g}")
        scores = merged(results, indices, (row, scale)).compute()
        print(f"{name + weight:<68} {100 * scores['miou']:6.2f} {100 * scores['fg_recall']:9.2f}")


if __name__ == "__main__":
    main()
