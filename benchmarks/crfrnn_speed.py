"""CRF-as-RNN layer speed: forward + backward of pixseg's CRFasRNN against crfasrnn_pytorch's CrfRnn, in one run.

A 500 x 375 image (random, and scikit-image's astronaut photo), 21 labels, 5 mean-field iterations,
the paper's kernel settings (appearance (5, 160, 3), smoothness (3, 3)) for both layers. One timing
is a whole training step of the layer: forward from logits and image, then backward of a sum of the
refined logits. pixseg runs at batch 1 and batch 4 (the reference takes batch 1 only); each method
runs once untimed, then they alternate within each repeat and the median is reported, with the
median of the repeats' ratios to the reference (target: <= 0.2 at batch 1) and of batch 4 against
batch 1 (target: <= 4). With a GPU, the torch backend is timed on CUDA as well.

crfasrnn_pytorch is found where --reference points: the folder holding its `crfasrnn` package, with
the C++ extension built in place (`cd crfasrnn && python setup.py build_ext --inplace`). Without
it, pixseg's timings are printed alone.

    .venv/bin/python benchmarks/crfrnn_speed.py [--repeats 5] [--reference DIR]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# Before numba and torch load OpenMP, as the pixseg command does: OpenMP's default busy-waiting
# threads spin against every other process on the cores (same results either way).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import skimage.data
import torch
from skimage.transform import resize

from pixseg.crf import CRFasRNN, keep_freed_memory

HEIGHT, WIDTH, LABELS, ITERATIONS = 375, 500, 21, 5
APPEARANCE, SMOOTHNESS = (5.0, 160.0, 3.0), (3.0, 3.0)


def test_images():
    photo = resize(skimage.data.astronaut(), (HEIGHT, WIDTH), anti_aliasing=True)
    random = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    return {"random": random, "astronaut": (photo * 255).round().astype(np.uint8)}


def reference_layer(folder):
    """crfasrnn_pytorch's CrfRnn with the same settings, or None when it does not import."""
    if folder is not None:
        sys.path[:0] = [str(Path(folder)), str(Path(folder) / "crfasrnn")]
    try:
        from crfasrnn.crfrnn import CrfRnn
        from crfasrnn.params import DenseCRFParams
    except ImportError as error:
        print(f"crfasrnn_pytorch not importable ({error}); timing pixseg alone")
        return None
    params = DenseCRFParams(alpha=APPEARANCE[1], beta=APPEARANCE[2], gamma=SMOOTHNESS[1],
                            spatial_ker_weight=SMOOTHNESS[0], bilateral_ker_weight=APPEARANCE[0])
    return CrfRnn(LABELS, ITERATIONS, params)


def step_seconds(layer, logits, images):
    """Seconds for forward + backward of `layer` (a function of logits and images)."""
    logits = logits.detach().requires_grad_()
    if logits.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    layer(logits, images).sum().backward()
    if logits.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reference", help="folder holding crfasrnn_pytorch's crfasrnn package (built in place)")
    args = parser.parse_args()
    keep_freed_memory()  # as the pixseg command does; it serves both layers
    ours = CRFasRNN(LABELS, ITERATIONS, APPEARANCE, SMOOTHNESS)
    reference = reference_layer(args.reference)
    generator = torch.Generator().manual_seed(0)
    for name, picture in test_images().items():
        image = torch.from_numpy(picture).permute(2, 0, 1)[None]
        methods = {f"pixseg batch {n}": (ours, torch.randn(n, LABELS, HEIGHT, WIDTH, generator=generator),
                                         image.expand(n, -1, -1, -1)) for n in (1, 4)}
        if reference is not None:
            # Its forward(image, logits) takes float images and returns logits.
            methods["crfasrnn_pytorch batch 1"] = (lambda logits, images: reference(images.float(), logits),
                                                   methods["pixseg batch 1"][1], image)
        times = {label: [] for label in methods}
        for repeat in range(args.repeats + 1):
            for label, (layer, logits, images) in methods.items():
                seconds = step_seconds(layer, logits, images)
                if repeat:
                    times[label].append(seconds)
        medians = {label: statistics.median(values) for label, values in times.items()}
        for label, value in medians.items():
            print(f"{name:9s} {label:26s} {value:7.3f} s (median of {args.repeats})", flush=True)
        batch_ratios = [a / b for a, b in zip(times["pixseg batch 4"], times["pixseg batch 1"])]
        print(f"{name:9s} batch 4 / batch 1: {statistics.median(batch_ratios):.2f} (median of the repeats' "
              f"ratios; target <= 4)", flush=True)
        if reference is not None:
            ratios = [a / b for a, b in zip(times["pixseg batch 1"], times["crfasrnn_pytorch batch 1"])]
            print(f"{name:9s} pixseg / crfasrnn_pytorch at batch 1: {statistics.median(ratios):.3f} "
                  f"(median of the repeats' ratios; target <= 0.2)", flush=True)
        if torch.cuda.is_available():
            for n in (1, 4):
                logits = torch.randn(n, LABELS, HEIGHT, WIDTH, device="cuda")
                images = image.expand(n, -1, -1, -1).cuda()
                step_seconds(ours, logits, images)
                cuda = statistics.median(step_seconds(ours, logits, images) for _ in range(args.repeats))
                print(f"{name:9s} pixseg CUDA batch {n}: {cuda:7.3f} s (median of {args.repeats})", flush=True)


if __name__ == "__main__":
    main()
