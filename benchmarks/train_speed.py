"""Benchmark: images per second of one training step of a zoo model, fp32 vs amp, 1 vs 2 processes.

A step is the trainer's own (pixseg.engine.train.forward_backward + apply_update: forward,
cross-entropy in float32, backward, optimiser update), on random images. amp is autocast in
bfloat16 on CPU, float16 with the gradient scaler on CUDA. Two processes train one
DistributedDataParallel model (gloo on CPU, nccl on CUDA, which needs two GPUs), each on its own
batch, so their images per second count both batches; each process runs --threads threads. Every
setting is timed in the same run, and the ratios are printed: amp's speed-up over fp32, and two
processes' images per second over one's (2 would be perfect scaling).

Usage: python benchmarks/train_speed.py [--model fcn8s] [--width 0.25] [--batch 4] [--size 128]
                                        [--steps 5] [--threads 1] [--device cpu]
"""

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pixseg.engine.precision import grad_scaler
from pixseg.engine.train import apply_update, forward_backward
from pixseg.models import MODELS, create_model

CLASSES = 21


def step_times(rank: int, world: int, args, amp: bool, store: str, results) -> None:
    """Seconds of each timed step in process `rank` of `world` (put on `results` by rank 0)."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        device = torch.device("cuda", rank)
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method=f"file://{store}",
                                rank=rank, world_size=world)
    torch.manual_seed(0)
    model = create_model(args.model, CLASSES, width=args.width).to(device).train()
    if world > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = grad_scaler(device, amp)
    criterion = torch.nn.CrossEntropyLoss(ignore_index=255)
    generator = torch.Generator().manual_seed(rank)
    images = torch.randn(args.batch, 3, args.size, args.size, generator=generator).to(device)
    labels = torch.randint(0, CLASSES, (args.batch, args.size, args.size), generator=generator).to(device)
    times = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        forward_backward(model, criterion, scaler, images, labels, amp=amp)
        apply_update(model, optimizer, scaler)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    if world > 1:
        dist.destroy_process_group()
    if rank == 0:
        results.put(times)


def measure(args, world: int, amp: bool) -> float:
    """Median seconds of one step with `world` processes (each in a fresh process)."""
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    with tempfile.TemporaryDirectory() as folder:
        mp.start_processes(step_times, args=(world, args, amp, os.path.join(folder, "store"), results),
                           nprocs=world, start_method="spawn")
        return statistics.median(results.get())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fcn8s", choices=list(MODELS))
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=4, help="images per process and step")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after --warmup untimed ones)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads of each process")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    worlds = [1, 2]
    if args.device.startswith("cuda") and torch.cuda.device_count() < 2:
        worlds = [1]
        print(f"{torch.cuda.device_count()} CUDA device(s): two processes need two; timing one process only")
    print(f"{args.model} width {args.width}, {args.batch} images of {args.size}x{args.size} per process and step, "
          f"{CLASSES} classes, on {args.device} with {args.threads} thread(s) per process; median of {args.steps}")
    print(f"{'processes':>9} {'precision':>9} {'ms/step':>8} {'images/s':>9}")
    rates = {}
    for world in worlds:
        for amp in (False, True):
            seconds = measure(args, world, amp)
            rates[world, amp] = world * args.batch / seconds
            print(f"{world:9d} {'amp' if amp else 'fp32':>9} {seconds * 1000:8.1f} {rates[world, amp]:9.2f}")
    for world in worlds:
        print(f"amp / fp32 images per second, {world} process(es): {rates[world, True] / rates[world, False]:.2f}")
    if 2 in worlds:
        for amp in (False, True):
            print(f"2 / 1 processes images per second, {'amp' if amp else 'fp32'}: "
                  f"{rates[2, amp] / rates[1, amp]:.2f} (2.00 would be perfect scaling)")

if __name__ == "__main__":
    main()
