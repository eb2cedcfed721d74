"""Benchmark: an FCN training step (forward + backward) per variant, width and upsampling mode.

The reference is bilinear F.interpolate: each mode's time is printed as a ratio to it, measured in
the same run with the repeats interleaved, so load from other processes hits every mode alike.
Steps per second at the narrow widths are what a CPU training budget is planned from. Beside the
wall time it prints the process's CPU time per step: on a machine shared with other jobs, CPU time
with --threads 1 stays close to what the step costs on an idle core, while wall time does not.

Usage: python benchmarks/fcn_speed.py [--widths 0.125 0.25] [--batch 2] [--size 256] [--repeats 5]
                                      [--threads N]
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from pixseg.models import MODELS, UPSAMPLE_MODES, create_model

REFERENCE = "bilinear"
FCNS = [name for name in MODELS if name.startswith("fcn")]


def step_seconds(model, x, target) -> tuple[float, float]:
    """Wall and CPU seconds of one forward + backward."""
    model.zero_grad(set_to_none=True)
    wall, cpu = time.perf_counter(), time.process_time()
    F.cross_entropy(model(x), target).backward()
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=float, nargs="+", default=[0.125, 0.25])
    parser.add_argument("--models", nargs="+", default=FCNS, choices=FCNS)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=generator).to(args.device)
    target = torch.randint(0, args.classes, (args.batch, args.size, args.size), generator=generator).to(args.device)
    print(f"input {tuple(x.shape)}, {args.classes} classes, on {args.device} with {torch.get_num_threads()} "
          f"threads; forward + cross-entropy + backward, train mode, median of {args.repeats}")
    print(f"{'model':8} {'width':>6} {'upsample':>14} {'ms/step':>8} {'steps/s':>8} {'cpu ms':>8} "
          f"{'wall vs ' + REFERENCE:>17} {'cpu vs ' + REFERENCE:>16}")
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
            medians = {mode: [statistics.median(column) for column in zip(*runs)] for mode, runs in times.items()}
            ref_wall, ref_cpu = medians[REFERENCE]
            for mode, (wall, cpu) in medians.items():
                print(f"{name:8} {width:6.3f} {mode:>14} {wall * 1000:8.1f} {1 / wall:8.2f} {cpu * 1000:8.1f} "
                      f"{wall / ref_wall:17.2f} {cpu / ref_cpu:16.2f}")


if __name__ == "__main__":
    main()
