"""Benchmark: forward and forward + backward time of every architecture at 512 x 512, in one run.

Each model runs one untimed pass, then the models take turns within each repeat (so load from
other processes hits them alike) and the median is printed, with the ratio to FCN-8s (the
reference every other network is compared with) and the GFLOPs of one forward pass. Forward is
eval mode without gradients at batch 1; forward + backward is a training step (cross-entropy,
auxiliary heads included) at batch 2, as DeepLab's image pooling normalises over the batch,
printed per image. With a GPU the same is timed on CUDA too.

Usage: python benchmarks/models_speed.py [--models deeplab_v3 pspnet ...] [--width 1.0] [--size 512]
                                         [--repeats 3] [--threads N]
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from pixseg.models import MODELS, create_model
from pixseg.models.cost import forward_gflops, parameter_count

REFERENCE = "fcn8s"
CLASSES = 21


def seconds(run, device) -> float:
    started = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def forward(model, x):
    def run():
        with torch.no_grad():
            model.eval()(x[:1])
    return run


def training_step(model, x, target):
    def run():
        model.train().zero_grad(set_to_none=True)
        outputs = model(x)
        if isinstance(outputs, dict):
            loss = F.cross_entropy(outputs["out"], target) + 0.4 * F.cross_entropy(outputs["aux"], target)
        else:
            loss = F.cross_entropy(outputs, target)
        loss.backward()
    return run


def bench(names, width, size, repeats, device) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, size, size, generator=generator).to(device)
    target = torch.randint(0, CLASSES, (2, size, size), generator=generator).to(device)
    options = {"width": width}
    models = {}
    for name in names:
        torch.manual_seed(0)
        models[name] = create_model(name, CLASSES, **options).to(device)
    runs = {(name, kind): make for name, model in models.items()
            for kind, make in (("forward", forward(model, x)), ("train", training_step(model, x, target)))}
    for run in runs.values():
        seconds(run, device)
    times = {key: [] for key in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            times[key].append(seconds(run, device))
    median = {key: statistics.median(values) for key, values in times.items()}
    print(f"\n{device}: {size}x{size}, width {width}, {CLASSES} classes, median of {repeats}"
          + (f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""))
    print(f"{'model':15} {'params':>12} {'GFLOPs':>8} {'fwd ms':>9} {'fwd+bwd ms/img':>15} "
          f"{'fwd vs ' + REFERENCE:>13} {'train vs ' + REFERENCE:>15}")
    for name in names:
        gflops = forward_gflops(lambda: create_model(name, CLASSES, **options), (size, size))
        fwd, train = median[name, "forward"], median[name, "train"] / 2
        ratios = ""
        if REFERENCE in models:
            ratios = f"{fwd / median[REFERENCE, 'forward']:13.2f} {train * 2 / median[REFERENCE, 'train']:15.2f}"
        print(f"{name:15} {parameter_count(models[name]):12,} {gflops:8.1f} {fwd * 1000:9.0f} {train * 1000:15.0f} "
              f"{ratios}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier of every model")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.models if REFERENCE in args.models else [REFERENCE, *args.models]
    bench(names, args.width, args.size, args.repeats, torch.device("cpu"))
    if torch.cuda.is_available():
        bench(names, args.width, args.size, args.repeats, torch.device("cuda"))


if __name__ == "__main__":
    main()
