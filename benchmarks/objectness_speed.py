"""Time geodesic object proposals + pixel objectness on a 500x375 photo, on one core, per stage.

Reference: GOP's published C++ (Krähenbühl & Koltun, ECCV 2014) takes about 1 s per image for
boundaries, over-segmentation and proposals; the issue's budget is the same 1.0 s for proposals +
POS. Every stage is timed in wall-clock and CPU seconds (CPU is steadier on a shared machine), the
median over repeats after one warm-up run (which compiles the numba kernels). With
`--boundary-model FILE` (from `pixseg train-boundaries`) the boundaries are the learned model's and, when
the file holds a proposal ranker, the ranking of the proposals is a stage of its own.

    .venv/bin/python benchmarks/objectness_speed.py [--repeats 7] [--image astronaut] [--boundary-model FILE]
"""

import os

# One core: set before numpy, scipy and numba start their thread pools.
for variable in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from skimage import data  # noqa: E402
from skimage.transform import resize  # noqa: E402

from pixseg.objectness.boundaries import boundary_map  # noqa: E402
from pixseg.objectness.learned import load_boundary_model  # noqa: E402
from pixseg.objectness.pos import objectness_from_proposals  # noqa: E402
from pixseg.objectness.proposals import proposals_from_superpixels  # noqa: E402
from pixseg.objectness.ranking import proposal_weights  # noqa: E402
from pixseg.objectness.superpixels import superpixels  # noqa: E402

GOP_SECONDS = 1.0
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def photo(name: str) -> np.ndarray:
    """A scikit-image sample photo resized to 375 rows x 500 columns (VOC's usual size)."""
    image = getattr(data, name)()
    return (resize(image, (375, 500), anti_aliasing=True) * 255).round().astype(np.uint8)


def run_once(image, model=None):
    """(stage name, wall s, cpu s) for each stage, and the number of proposals; `model` a learned
    boundary model or None for the training-free boundaries."""
    stages = []

    def timed(name, function, *args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function(*args, **kwargs)
        stages.append((name, time.perf_counter() - wall, time.process_time() - cpu))
        return result

    boundaries = timed("boundaries", boundary_map if model is None else model.boundaries, image)
    labels = timed("superpixels", superpixels, image, boundaries)
    proposals = timed("proposals", proposals_from_superpixels, labels, boundaries)
    weights = None
    if model is not None and model.ranker is not None:
        weights = timed("ranking", proposal_weights, model.ranker, proposals, image, boundaries)
    timed("pos", objectness_from_proposals, proposals, weights)
    return stages, len(proposals), int(labels.max()) + 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per photo; medians are reported")
    parser.add_argument("--image", choices=PHOTOS, default=None, help="one photo (default: all)")
    parser.add_argument("--boundary-model", default=None, help="a learned boundary model file (default: training-free)")
    args = parser.parse_args()
    model = None if args.boundary_model is None else load_boundary_model(args.boundary_model)

    totals = []
    for name in [args.image] if args.image else PHOTOS:
        image = photo(name)
        run_once(image, model)
        runs = [run_once(image, model) for _ in range(args.repeats)]
        stages = [stage for stage, _, _ in runs[0][0]]
        print(f"{name} {image.shape[1]}x{image.shape[0]}: {runs[0][1]} proposals on {runs[0][2]} superpixels")
        wall_total = statistics.median(sum(w for _, w, _ in run) for run, _, _ in runs)
        cpu_total = statistics.median(sum(c for _, _, c in run) for run, _, _ in runs)
        for index, stage in enumerate(stages):
            wall = statistics.median(run[index][1] for run, _, _ in runs)
            cpu = statistics.median(run[index][2] for run, _, _ in runs)
            print(f"  {stage:<12} {wall * 1000:7.1f} ms wall {cpu * 1000:7.1f} ms cpu")
        print(f"  {'total':<12} {wall_total * 1000:7.1f} ms wall {cpu_total * 1000:7.1f} ms cpu   "
              f"ratio to GOP's {GOP_SECONDS:.1f} s: {wall_total / GOP_SECONDS:.2f} (wall), "
              f"{cpu_total / GOP_SECONDS:.2f} (cpu)")
        totals.append((wall_total, cpu_total))
    if len(totals) > 1:
        wall = statistics.median(w for w, _ in totals)
        cpu = statistics.median(c for _, c in totals)
        print(f"median over {len(totals)} photos: {wall:.3f} s wall, {cpu:.3f} s cpu per image; "
              f"ratio to GOP's {GOP_SECONDS:.1f} s: {wall / GOP_SECONDS:.2f} (wall), {cpu / GOP_SECONDS:.2f} (cpu); "
              f"budget {GOP_SECONDS:.1f} s {'met' if wall <= GOP_SECONDS else 'MISSED'}")


if __name__ == "__main__":
    main()
