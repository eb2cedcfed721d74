"""Dense CRF speed: pixseg's numba and torch backends against pydensecrf2 (the reference C++), in one run.

Three scikit-image photographs (astronaut, coffee, chelsea) resized to 500 x 375 and two random
500 x 375 images, 21 labels, 5 and 10 mean-field iterations, for each parameter preset asked for.
Every timing is a whole call as a user makes it: for pixseg `dense_crf(image, probs)` (input checks,
-log, both lattices, inference, labels and Q); for the reference the same -log, DenseCRF2D set-up,
both pairwise terms, inference and argmax. Each method runs once untimed per image and iteration
count (in a fresh process the first touch of new memory costs up to 2 ms per MB here), then the
methods alternate within each repeat; the median is reported, with two ratios to pydensecrf2
(target for numba: <= 0.33): the median of the repeats' ratios (`paired_ratio`) and the ratio of
the fastest repeats (`best_ratio`). Then peak memory
of one numba call (tracemalloc) against the bound "3 x Q plus the lattice" (the lattice: its merged
tables and value buffers), and CUDA timings when a GPU is there.

    .venv/bin/python benchmarks/crf_speed.py [--repeats 7] [--presets deeplab_v2 reference] [--no-torch]
"""

import argparse
import os
import statistics
import time
import tracemalloc

# Before numba loads OpenMP, as the pixseg command does: OpenMP's default busy-waiting threads spin
# against every other process on the cores, and on an oversubscribed machine a two-threaded call
# then took 2.5 to 5 times as long as with sleeping threads (same labels and Q either way).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba
import numpy as np
import pydensecrf.densecrf as dcrf
import skimage.data
import torch
from skimage.transform import resize

from pixseg.crf import CRF_PRESETS, dense_crf, keep_freed_memory
from pixseg.crf.inference import numba_operator
from pixseg.crf.features import appearance_features, smoothness_features
from pixseg.crf.lattice import splat_table, table_parts

HEIGHT, WIDTH, LABELS = 375, 500, 21
PHOTOS = ("astronaut", "coffee", "chelsea")


def test_images():
    images = {}
    for name in PHOTOS:
        photo = resize(getattr(skimage.data, name)(), (HEIGHT, WIDTH), anti_aliasing=True)
        images[name] = (photo * 255).round().astype(np.uint8)
    rng = np.random.default_rng(0)
    for index in range(2):
        images[f"random{index}"] = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    return images


def test_probs(seed):
    """Softmax of smooth random logits: network-like maps; the timing does not depend on them."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 3.0, (LABELS, HEIGHT // 25 + 1, WIDTH // 25 + 1))
    logits = resize(coarse, (LABELS, HEIGHT, WIDTH), order=1) + rng.normal(0.0, 0.5, (LABELS, HEIGHT, WIDTH))
    probs = np.exp(logits - logits.max(0))
    return (probs / probs.sum(0)).astype(np.float32)


def reference_crf(image, probs, iterations, appearance, smoothness):
    (w1, theta_a, theta_b), (w2, theta_g) = appearance, smoothness
    with np.errstate(divide="ignore"):
        unary = np.ascontiguousarray(-np.log(probs).reshape(LABELS, -1))
    crf = dcrf.DenseCRF2D(WIDTH, HEIGHT, LABELS)
    crf.setUnaryEnergy(unary)
    crf.addPairwiseGaussian(sxy=theta_g, compat=w2)
    crf.addPairwiseBilateral(sxy=theta_a, srgb=theta_b, rgbim=image, compat=w1)
    q = np.array(crf.inference(iterations))
    return q.argmax(0).reshape(HEIGHT, WIDTH), q


def paired_ratio(times, reference_times):
    """The median over repeats of each time over the reference's time in the same repeat: the two
    calls run back to back, so a slow spell of a shared machine (seconds of other load) scales both,
    where a ratio of medians would mix spells."""
    return statistics.median(time / reference for time, reference in zip(times, reference_times))


def best_ratio(times, reference_times):
    """Each method's fastest repeat over the reference's fastest: the speed of the code itself, as
    timeit reports it (slower repeats are other load on the machine, which slows the multi-threaded
    numba calls more than the one-threaded reference)."""
    return min(times) / min(reference_times)


def seconds(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def lattice_bytes(image, appearance, smoothness):
    """Bytes of the lattice tables: the appearance kernel's (per-pixel entries, the blur's chains,
    the vertex-major splat table, one vertex value buffer with C padded to 24) and
    the smoothness kernel's, merged with them or as a grid (per-pixel cells and weights, row spans,
    and each band's ring of lattice rows), and the vertex count of both."""
    operator = numba_operator([
        ("appearance", lambda: appearance_features(image, *appearance[1:]), appearance[0]),
        ("smoothness", lambda: smoothness_features(HEIGHT, WIDTH, smoothness[1]), smoothness[0])],
        HEIGHT, WIDTH, smoothness[1])
    tables = operator.offsets.nbytes + operator.splat_weights.nbytes + operator.slice_weights.nbytes
    tables += sum(part.nbytes for part in operator.blur)
    tables += sum(part.nbytes for part in splat_table(operator.offsets, operator.splat_weights, operator.num_vertices,
                                                     table_parts(HEIGHT * WIDTH)))
    if operator.grid is None:
        return tables + operator.num_vertices * 24 * 4, operator.num_vertices
    grid, grid_splat, grid_slice = operator.grid
    tables += sum(part.nbytes for part in (grid.rows, grid.cols, grid.weights, grid.spans, grid.holes,
                                           grid.hole_starts, grid.first_row, grid.last_row, grid_splat, grid_slice))
    ring_rows = grid.ring_size + 7  # the ring, and the rows each blur stage keeps
    tables += numba.get_num_threads() * ring_rows * (int(grid.spans[:, 1].max()) + 2) * 24 * 4
    return tables + operator.num_vertices * 24 * 4, operator.num_vertices + grid.num_vertices


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--presets", nargs="+", default=["deeplab_v2", "reference"], choices=sorted(CRF_PRESETS))
    parser.add_argument("--iterations", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--no-torch", action="store_true", help="skip the torch backend on CPU (slow)")
    args = parser.parse_args()
    keep_freed_memory()  # as the pixseg command does; it serves both methods

    images = test_images()
    probs = {name: test_probs(index) for index, name in enumerate(images)}
    warm = next(iter(images.values()))[:40, :50]
    dense_crf(warm, probs[next(iter(images))][:, :40, :50], backend="numba")  # load the compiled code
    print(f"{HEIGHT}x{WIDTH}, {LABELS} labels, median of {args.repeats} runs, seconds per image; numba "
          f"{numba.get_num_threads()} threads, torch {torch.__version__} on CPU with {torch.get_num_threads()} "
          f"threads; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    methods = ["numba"] + ([] if args.no_torch else ["torch"]) + ["pydensecrf2"]
    ratios = {}
    for preset in args.presets:
        options = CRF_PRESETS[preset]
        print(f"\npreset {preset}: appearance {options['appearance']}, smoothness {options['smoothness']}")
        print(f"{'image':<10} {'iters':>5} " + " ".join(f"{m:>11}" for m in methods) + "  numba/ref"
              + " best/best" + ("  torch/ref" if "torch" in methods else "") + "  labels agree")
        for name, image in images.items():
            for iterations in args.iterations:
                calls = {
                    "numba": lambda: dense_crf(image, probs[name], iterations=iterations, backend="numba", **options),
                    "torch": lambda: dense_crf(image, probs[name], iterations=iterations, backend="torch", **options),
                    "pydensecrf2": lambda: reference_crf(image, probs[name], iterations, **options),
                }
                times = {method: [] for method in methods}
                for method in methods:  # untimed: the process's first touch of this much memory is slow
                    calls[method]()
                for _ in range(args.repeats):
                    for method in methods:
                        times[method].append(seconds(calls[method]))
                median = {method: statistics.median(values) for method, values in times.items()}
                agree = (calls["numba"]()[0] == calls["pydensecrf2"]()[0]).mean()
                ratio = paired_ratio(times["numba"], times["pydensecrf2"])
                best = best_ratio(times["numba"], times["pydensecrf2"])
                ratios.setdefault((preset, "photo" if name in PHOTOS else "random"), []).append((ratio, best))
                line = f"{name:<10} {iterations:>5} " + " ".join(f"{median[m]:>11.3f}" for m in methods)
                line += f"  {ratio:>9.2f} {best:>9.2f}"
                if "torch" in methods:
                    line += f"  {paired_ratio(times['torch'], times['pydensecrf2']):>9.2f}"
                print(line + f"  {100 * agree:>11.2f}%", flush=True)
    print(f"\nload average now {os.getloadavg()[0]:.1f}; numba / pydensecrf2 per preset and image kind "
          f"(target <= 0.33), paired median and best / best:")
    for (preset, kind), values in ratios.items():
        paired, best = zip(*values)
        print(f"  {preset:<11} {kind:<7} paired: worst {max(paired):.2f} median {statistics.median(paired):.2f}"
              f"   best/best: worst {max(best):.2f} median {statistics.median(best):.2f}")

    print("\npeak memory of one numba call (tracemalloc), 10 iterations:")
    q_bytes = LABELS * HEIGHT * WIDTH * 4
    for preset in args.presets:
        options = CRF_PRESETS[preset]
        for name, image in images.items():
            lattice, vertices = lattice_bytes(image, options["appearance"], options["smoothness"])
            tracemalloc.start()
            dense_crf(image, probs[name], iterations=10, backend="numba", **options)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"  {preset:<11} {name:<10} peak {peak / 2**20:7.1f} MiB = lattice {lattice / 2**20:6.1f} MiB "
                  f"({vertices} vertices) + {(peak - lattice) / q_bytes:4.2f} x Q ({q_bytes / 2**20:.1f} MiB)")

    if torch.cuda.is_available():
        print("\ntorch backend on CUDA, ms per image (10 iterations, default preset):")
        for name, image in images.items():
            gpu_probs = torch.from_numpy(probs[name]).cuda()
            dense_crf(image, gpu_probs)
            torch.cuda.synchronize()
            runs = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                dense_crf(image, gpu_probs)
                torch.cuda.synchronize()
                runs.append(time.perf_counter() - start)
            print(f"  {name:<10} {1000 * statistics.median(runs):7.1f} ms")
    else:
        print("\nno CUDA device here: the torch backend's GPU time is not measured")


if __name__ == "__main__":
    main()
