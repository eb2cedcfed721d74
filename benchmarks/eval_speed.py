"""Benchmark: evaluation throughput by batch size and DataLoader workers, and the cost of each inference mode, in one run.

The reference is what evaluation did before it was batched: whole images, one at a time, read in
the main process (batch 1, no workers). Every setting scores the same in-memory split (images of
two sizes, as real splits have), the settings take turns within each repeat so that load from other
processes hits them alike, and the median images per second is printed with its ratio to the
reference. The confusion matrices of whole-image settings are compared too: batching and workers
must not change them.

Usage: python benchmarks/eval_speed.py [--model fcn8s] [--width 0.25] [--size 256] [--images 12]
                                       [--repeats 3] [--threads N]
"""

import argparse
import statistics
import time

import numpy as np
import torch

from pixseg.engine.evaluate import confusion_matrix
from pixseg.engine.inference import InferenceConfig
from pixseg.models import create_model

CLASSES = 21


class Split(torch.utils.data.Dataset):
    """`count` random images, half of them `size` square and half 3/4 of that wide, with random labels."""

    num_classes = CLASSES

    def __init__(self, count: int, size: int):
        rng = np.random.default_rng(0)
        shapes = [(size, size) if index % 2 == 0 else (size, size * 3 // 4) for index in range(count)]
        self.samples = [(rng.integers(0, 256, (*shape, 3), dtype=np.uint8),
                         rng.integers(0, CLASSES, shape).astype(np.uint8)) for shape in shapes]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return self.samples[index]


def settings(size: int) -> dict:
    crop = (size // 2 + size // 8,) * 2
    return {
        "whole, batch 1 (reference)": InferenceConfig(),
        "whole, batch 4": InferenceConfig(batch_size=4),
        "whole, batch 4, 2 workers": InferenceConfig(batch_size=4, workers=2),
        f"slide {crop[0]}x{crop[1]}, batch 4": InferenceConfig(mode="slide", crop=crop, batch_size=4),
        "multiscale 0.75,1,1.25 + flip, batch 4": InferenceConfig(mode="multiscale", scales=(0.75, 1.0, 1.25),
                                                                  flip=True, batch_size=4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fcn8s")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.model, CLASSES, width=args.width).eval()
    with torch.no_grad():  # noise on every weight: an untrained FCN's zero score layers predict one class
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter), alpha=0.05)
    split = Split(args.images, args.size)
    runs = settings(args.size)
    times = {name: [] for name in runs}
    matrices = {}
    for repeat in range(args.repeats + 1):  # the first round warms up and is not timed
        for name, inference in runs.items():
            started = time.perf_counter()
            matrices[name] = confusion_matrix(model, split, "cpu", inference=inference, progress=False).matrix
            if repeat:
                times[name].append(time.perf_counter() - started)
    reference = statistics.median(times[next(iter(runs))])
    print(f"{args.model} width {args.width}, {args.images} images of {args.size}x{args.size} and "
          f"{args.size}x{args.size * 3 // 4}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'setting':42} {'images/s':>9} {'vs reference':>13} {'same matrix':>12}")
    whole = matrices[next(iter(runs))]
    for name in runs:
        median = statistics.median(times[name])
        same = "-" if runs[name].mode != "whole" else "yes" if torch.equal(matrices[name], whole) else "NO"
        print(f"{name:42} {args.images / median:9.2f} {reference / median:13.2f} {same:>12}")


if __name__ == "__main__":
    main()
