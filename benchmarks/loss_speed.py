"""Benchmark: forward + backward of FusedLoss against torch.nn.functional.cross_entropy, printing the ratio.

Usage: python benchmarks/loss_speed.py [--batch 8] [--classes 21] [--size 512] [--repeats 5] [--threads T]
Target (issue 3): the fused loss costs at most 1.5x cross-entropy.
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from pixseg.losses import FusedLoss


def forward_backward_seconds(loss_fn, logits, target) -> float:
    logits.grad = None
    start = time.perf_counter()
    loss_fn(logits, target).backward()
    if logits.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(0)
    shape = (args.batch, args.classes, args.size, args.size)
    logits = torch.randn(shape, generator=generator).to(args.device).requires_grad_()
    target = torch.randint(0, args.classes, (args.batch, args.size, args.size), generator=generator)
    target[:, :, : args.size // 20] = 255  # a void band, as VOC labels have
    target = target.to(args.device)

    losses = {"cross_entropy": lambda x, t: F.cross_entropy(x, t, ignore_index=255),
              "FusedLoss": FusedLoss(ws=0.5, wp=0.5)}
    for loss_fn in losses.values():
        forward_backward_seconds(loss_fn, logits, target)  # warm-up: allocator, thread pool
    # Interleaved, so that load from other processes on the machine hits both alike.
    times = {name: [] for name in losses}
    for _ in range(args.repeats):
        for name, loss_fn in losses.items():
            times[name].append(forward_backward_seconds(loss_fn, logits, target))
    ce, fu = statistics.median(times["cross_entropy"]), statistics.median(times["FusedLoss"])
    print(f"logits {tuple(shape)} on {args.device}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"cross_entropy  forward+backward: {ce * 1000:8.1f} ms")
    print(f"FusedLoss      forward+backward: {fu * 1000:8.1f} ms")
    print(f"ratio FusedLoss / cross_entropy: {fu / ce:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
