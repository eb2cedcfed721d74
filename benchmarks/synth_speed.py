"""Time `make_synthetic_voc`: images per second and seconds per 1000 images.

References, measured in the same run: the issue's budget (1000 images of 256x256 in well under a
minute, taken as 60 s) and the floor set by file output alone (the same JPEG and two palette PNGs
per image written from arrays rendered beforehand), which shows how much of the time rendering takes.

    .venv/bin/python benchmarks/synth_speed.py [--n 1000] [--size 256 256] [--repeats 3] [--workers 1]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pixseg.data.palette import save_atomic, save_label_png
from pixseg.data.synthetic import JPEG_QUALITY, make_synthetic_voc, render_scene

BUDGET_SECONDS_PER_1000 = 60.0


def time_make(n: int, size, seed: int, workers: int) -> tuple[float, float]:
    """Wall-clock and CPU seconds of this process (steadier on a shared machine; 1 worker only)."""
    with tempfile.TemporaryDirectory() as folder:
        wall, cpu = time.perf_counter(), time.process_time()
        make_synthetic_voc(Path(folder) / "voc", n_train=n, n_val=0, size=size, seed=seed, progress=False,
                           workers=workers)
        return time.perf_counter() - wall, time.process_time() - cpu


def time_write_only(n: int, size) -> float:
    scenes = [render_scene(np.random.default_rng([0, 0, j]), size) for j in range(n)]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        started = time.perf_counter()
        for j, (image, labels, objects) in enumerate(scenes):
            save_atomic(Image.fromarray(image), folder / f"{j}.jpg", quality=JPEG_QUALITY)
            save_label_png(folder / f"{j}_class.png", labels)
            save_label_png(folder / f"{j}_object.png", objects)
        return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="images per timing")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=3, help="timings per measurement; the median is reported")
    parser.add_argument("--workers", type=int, default=1, help="processes rendering in parallel")
    args = parser.parse_args()
    size = tuple(args.size)

    timings = [time_make(args.n, size, seed, args.workers) for seed in range(args.repeats)]
    full = statistics.median(wall for wall, _ in timings)
    cpu = statistics.median(cpu for _, cpu in timings)
    write = statistics.median(time_write_only(min(args.n, 200), size) for _ in range(args.repeats))
    write *= args.n / min(args.n, 200)
    per_1000 = full * 1000 / args.n
    cpu_note = f" (CPU time {cpu * 1000 / args.n:.1f} s per 1000)" if args.workers == 1 else ""
    print(f"make_synthetic_voc, {args.workers} worker(s): {args.n} images of {size[0]}x{size[1]} in "
          f"{full:.2f} s (median of {args.repeats}): {args.n / full:.1f} images/s, "
          f"{per_1000:.1f} s per 1000{cpu_note}")
    print(f"file output alone:  {write * 1000 / args.n:.1f} s per 1000 "
          f"({100 * write / full:.0f}% of the total; rendering takes the rest)")
    print(f"ratio to the budget of {BUDGET_SECONDS_PER_1000:.0f} s per 1000: {per_1000 / BUDGET_SECONDS_PER_1000:.2f}")


if __name__ == "__main__":
    main()
