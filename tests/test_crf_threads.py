"""dense_crf gives the same labels and Q, to the bit, on any number of threads (so under any load:
the load could only change the thread count), and leaves the caller's thread settings as they were
(numba's, and torch's, which numba's OpenMP pool would otherwise change when it starts)."""

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from pixseg.crf import dense_crf

# Runs in a fresh process with a pool of 4 numba threads (the test session's pool has one). The
# image is above SERIAL_BELOW pixels, so 2 to 4 threads really run in parallel. Three settings
# take the three paths of mean field: the grid kernel (DeepLab v2's narrow smoothness kernel), the
# splat fused into the pixel pass (wide kernels on a smooth image: a small lattice), and the
# separate splat (noise: a lattice larger than half the pixels).
SCRIPT = """
import hashlib
import numba
import numpy as np
import torch
from pixseg.crf import dense_crf
from pixseg.crf.inference import numba_operator
from pixseg.crf.features import appearance_features, smoothness_features
from pixseg.crf.meanfield import splat_shares

rng = np.random.default_rng(0)
height, width = 160, 220
y, x = np.mgrid[:height, :width]
waves = np.stack([np.sin(x / 17), np.cos(y / 13), np.sin((x + y) / 29)], -1)
smooth = ((waves + 1) * 100 + rng.normal(0, 6, (height, width, 3))).clip(0, 255).astype(np.uint8)
noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
probs = rng.random((21, height, width)).astype(np.float32) ** 3 + 1e-3
probs /= probs.sum(0)
cases = {"grid": (smooth, (4.0, 67.0, 3.0), (3.0, 1.0)), "fused": (smooth, (10.0, 80.0, 40.0), (3.0, 5.0)),
         "separate": (noise, (10.0, 80.0, 13.0), (3.0, 3.0))}
torch_threads = torch.get_num_threads()
dense_crf(smooth, probs, iterations=1, threads=3)  # the first call starts numba's thread pool
print("torch threads kept", torch.get_num_threads() == torch_threads)
for name, (image, appearance, smoothness) in cases.items():
    kernels = [("appearance", lambda: appearance_features(image, *appearance[1:]), appearance[0]),
               ("smoothness", lambda: smoothness_features(height, width, smoothness[1]), smoothness[0])]
    operator = numba_operator(kernels, height, width, smoothness[1])
    path = ("grid" if operator.grid is not None else
            "fused" if splat_shares(height * width, operator.num_vertices) else "separate")
    digests = set()
    for threads in (1, 2, 3, 4):
        labels, q = dense_crf(image, probs, iterations=5, appearance=appearance, smoothness=smoothness,
                              threads=threads)
        digests.add(hashlib.sha256(labels.tobytes() + q.tobytes()).hexdigest())
        numba.set_num_threads(threads)  # the other way to choose: numba's setting
        labels, q = dense_crf(image, probs, iterations=5, appearance=appearance, smoothness=smoothness)
        digests.add(hashlib.sha256(labels.tobytes() + q.tobytes()).hexdigest())
        assert numba.get_num_threads() == threads
    print(name, path, len(digests))
"""


def test_q_is_the_same_to_the_bit_on_one_to_four_threads():
    env = {**os.environ, "NUMBA_NUM_THREADS": "4"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.split("\n")
    assert lines[:4] == ["torch threads kept True", "grid grid 1", "fused fused 1", "separate separate 1"], \
        result.stdout


def test_the_callers_thread_settings_are_kept():
    import numba
    import torch

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    probs = np.full((3, 20, 30), 1 / 3, np.float32)
    before = numba.get_num_threads(), torch.get_num_threads()
    dense_crf(image, probs, iterations=2, threads=1)
    dense_crf(image, probs, iterations=2, backend="torch")
    assert (numba.get_num_threads(), torch.get_num_threads()) == before


@pytest.mark.parametrize("threads", [0, -1, 2.0, True, 10**6])
def test_a_bad_thread_count_is_named(threads):
    image = np.zeros((4, 4, 3), np.uint8)
    probs = np.full((2, 4, 4), 0.5, np.float32)
    with pytest.raises(ValueError, match="threads must be a whole number from 1 to"):
        dense_crf(image, probs, threads=threads)


def test_threads_with_the_torch_backend_is_refused():
    image = np.zeros((4, 4, 3), np.uint8)
    probs = np.full((2, 4, 4), 0.5, np.float32)
    with pytest.raises(ValueError, match="threads=2 applies to the numba backend"):
        dense_crf(image, probs, threads=2, backend="torch")


# Each public entry point as the first numba work of a fresh process (where numba's OpenMP pool
# starts, and would set OpenMP's, so torch's, thread count to NUMBA_NUM_THREADS = 4), then again on
# one thread: the caller's numba and torch counts stay, and the two results are the same bits.
ENTRY_SCRIPT = """
import sys
import numba
import numpy as np
import torch

name = sys.argv[1]
rng = np.random.default_rng(0)
image = rng.integers(0, 256, (190, 200, 3), dtype=np.uint8)
probs = rng.random((4, 190, 200)).astype(np.float32) + 0.1
probs /= probs.sum(0)


def run(threads):
    if name == "lattice":
        from pixseg.crf import PermutohedralLattice
        from pixseg.crf.features import appearance_features

        lattice = PermutohedralLattice(appearance_features(image, 30.0, 10.0), threads=threads)
        return lattice.filter(probs.reshape(4, -1))
    if name == "densecrf":
        import pixseg.crf.densecrf as dcrf

        model = dcrf.DenseCRF2D(200, 190, 4)
        model.setUnaryEnergy(-np.log(probs).reshape(4, -1))
        model.addPairwiseBilateral(sxy=30, srgb=10, rgbim=image, compat=3, kernel=dcrf.FULL_KERNEL)
        return np.array(model.inference(2))
    from pixseg.crf import CRFasRNN

    # A batch of two: on 3 threads its images run side by side on workers of 2 and 1 threads.
    layer = CRFasRNN(4, iterations=2, backend="numba", threads=threads)
    logits = torch.from_numpy(np.log(np.stack([probs, probs[::-1]]))).requires_grad_()
    out = layer(logits, torch.from_numpy(np.stack([image, image[::-1]])).permute(0, 3, 1, 2))
    out.square().sum().backward()
    return np.concatenate([out.detach().numpy().ravel(), logits.grad.numpy().ravel()])


# pydensecrf's API has no thread argument: it follows numba's setting.
first = run(None if name == "densecrf" else 3)
kept = torch.get_num_threads() == 2 and numba.get_num_threads() == 4
numba.set_num_threads(1)
second = run(None if name == "densecrf" else 1)
print(kept, first.tobytes() == second.tobytes())
"""


@pytest.mark.parametrize("name", ["lattice", "densecrf", "crfrnn"])
def test_every_entry_point_keeps_thread_settings_and_bits(name):
    env = {**os.environ, "NUMBA_NUM_THREADS": "4", "OMP_NUM_THREADS": "2"}
    result = subprocess.run([sys.executable, "-c", ENTRY_SCRIPT, name], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["True", "True"], result.stdout


def test_crf_rnn_batches_on_numbas_workqueue_layer():
    """The workqueue layer takes parallel kernels from one thread at a time: there the batch's images
    run one after another, with the same bits as side by side on the default layer."""
    script = ("import sys, numpy as np, torch, numba\n"
              "from pixseg.crf import CRFasRNN\n"
              "rng = np.random.default_rng(0)\n"
              "images = torch.from_numpy(rng.integers(0, 256, (3, 3, 40, 50), dtype=np.uint8))\n"
              "logits = torch.from_numpy(rng.normal(size=(3, 4, 40, 50)).astype(np.float32)).requires_grad_()\n"
              "out = CRFasRNN(4, iterations=2, threads=2)(logits, images)\n"
              "out.square().sum().backward()\n"
              "np.save(sys.argv[1], np.concatenate([out.detach().numpy().ravel(), logits.grad.numpy().ravel()]))\n"
              "print(numba.threading_layer())\n")
    layers = []
    with tempfile.TemporaryDirectory() as folder:
        for name, extra in (("default", {}), ("workqueue", {"NUMBA_THREADING_LAYER": "workqueue"})):
            env = {**os.environ, "NUMBA_NUM_THREADS": "2", **extra}
            result = subprocess.run([sys.executable, "-c", script, os.path.join(folder, name)], env=env,
                                    capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, result.stderr[-3000:]
            layers.append(result.stdout.strip())
        assert layers[1] == "workqueue" and layers[0] != "workqueue"
        default, workqueue = (np.load(os.path.join(folder, f"{name}.npy")) for name in ("default", "workqueue"))
    assert default.tobytes() == workqueue.tobytes()


def test_importing_the_crf_does_not_import_torch():
    script = ("import sys; import pixseg.crf; print('torch' in sys.modules); "
              "from pixseg.crf import CRFasRNN; print('torch' in sys.modules, CRFasRNN.__name__)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["False", "True", "CRFasRNN"], result.stdout
