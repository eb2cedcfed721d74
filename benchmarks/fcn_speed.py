"""Benchmark: an FCN training step (forward + backward) per variant, width and upsampling mode.

The reference is bilinear F.interpolate: each mode's time is printed as a ratio to it, measured in
the same run with the repeats interleaved, so load from other processes hits every mode alike.
Steps per second at the narrow widths are what a CPU training budget is planned from.

Usage: python benchmarks/fcn_speed.py [--widths 0.125 0.25] [--batch 2] [--size 256] [--repeats 5]
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from pixseg.models import MODELS, UPSAMPLE_MODES, create_model

REFERENCE = "bilinear"


def step_seconds(model, x, target) -> float:
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    F.cross_entropy(model(x), target).backward()
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=float, nargs="+", default=[0.125, 0.25])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=generator).to(args.device)
    target = torch.randint(0, args.classes, (args.batch, args.size, args.size), generator=generator).to(args.device)
    print(f"input {tuple(x.shape)}, {args.classes} classes, on {args.device} with {torch.get_num_threads()} "
          f"threads; forward + cross-entropy + backward, train mode, median of {args.repeats}")
    print(f"{'model':8} {'width':>6} {'upsample':>14} {'ms/step':>9} {'steps/s':>8} {'vs ' + REFERENCE:>12}")
    for width in args.widths:
        for name in args.models:
            torch.manual_seed(0)
            models = {mode: create_model(name, args.classes, width=width, upsample=mode).to(args.device).train()
                      for mode in UPSAMPLE_MODES}
            for model in models.values():
                step_seconds(model, x, target)  # warm-up: allocator, oneDNN kernels for these shapes
            times = {mode: [] for mode in models}
            for _ in range(args.repeats):
                for mode, model in models.items():
                    times[mode].append(step_seconds(model, x, target))
            reference = statistics.median(times[REFERENCE])
            for mode in models:
                seconds = statistics.median(times[mode])
                print(f"{name:8} {width:6.3f} {mode:>14} {seconds * 1000:9.1f} {1 / seconds:8.2f} {seconds / reference:12.2f}")


if __name__ == "__main__":
    main()
