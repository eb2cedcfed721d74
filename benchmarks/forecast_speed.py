"""Time the forecasting hot paths, each against its reference in the same run.

- `make_synthetic_video`: seconds per 1000 frames, against file output alone (the same PNGs written
  from frames rendered beforehand), which shows how much of the time rendering takes.
- The flow baseline (TV-L1 flow, then the warp) against the S2S model's forecast of the same window
  (width 1, one step, this machine's CPU): what each forecast costs per frame.

    .venv/bin/python benchmarks/forecast_speed.py [--sequences 10] [--size 128 256] [--repeats 3]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixseg.data.cityscapes import CITYSCAPES_PALETTE
from pixseg.data.palette import save_atomic, save_label_png
from pixseg.data.synthetic_video import make_synthetic_video, render_sequence
from pixseg.forecast import create_forecaster, estimate_motion, flow_forecast
from pixseg.forecast.train import window_tensor

FRAMES = 30


def time_make(sequences: int, size, seed: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        make_synthetic_video(Path(folder) / "video", n_train=sequences, n_val=0, size=size, seed=seed,
                             progress=False)
        return time.perf_counter() - started


def time_write_only(frames, size) -> float:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        started = time.perf_counter()
        for j, (image, labels) in enumerate(frames):
            save_atomic(Image.fromarray(image), folder / f"{j}_leftImg8bit.png")
            save_label_png(folder / f"{j}_gtFine_labelTrainIds.png", labels, CITYSCAPES_PALETTE)
        return time.perf_counter() - started


def median_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=10, help="sequences of 30 frames per timing")
    parser.add_argument("--size", type=int, nargs=2, default=(128, 256), metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=3, help="timings per measurement; the median is reported")
    args = parser.parse_args()
    size = tuple(args.size)

    full = statistics.median(time_make(args.sequences, size, seed) for seed in range(args.repeats))
    frames = [f for j in range(args.sequences) for f in render_sequence(np.random.default_rng([0, 0, j]), size)]
    write = statistics.median(time_write_only(frames, size) for _ in range(args.repeats))
    n = args.sequences * FRAMES
    print(f"make_synthetic_video: {n} frames of {size[0]}x{size[1]} in {full:.2f} s (median of {args.repeats}): "
          f"{full * 1000 / n:.1f} s per 1000 frames")
    print(f"file output alone:    {write * 1000 / n:.1f} s per 1000 frames "
          f"(ratio {write / full:.2f}; rendering takes the rest)")

    images = np.stack([f[0] for f in frames[:4]])
    labels = np.stack([f[1] for f in frames[:4]])
    model = create_forecaster("s2s", len(CITYSCAPES_PALETTE)).eval()
    window = window_tensor(labels, len(CITYSCAPES_PALETTE))[None]
    with torch.no_grad():
        model_time = median_time(lambda: model(window), args.repeats)
    flow_time = median_time(lambda: flow_forecast(labels[-1], estimate_motion(images[-2], images[-1]), 3.0),
                            args.repeats)
    print(f"forecast of one {size[0]}x{size[1]} frame: S2S (width 1) {1000 * model_time:.0f} ms, "
          f"flow baseline {1000 * flow_time:.0f} ms (ratio flow / S2S {flow_time / model_time:.2f})")


if __name__ == "__main__":
    main()
