"""The dense CRF's entry points, dense_crf and dense_crf_batch: input checks, then mean field.

The model (Krähenbühl & Koltun 2011, docs/method/crf.md): unary energies theta_j(l) = -log p_j(l)
(or given directly), an appearance kernel w1 exp(-|p_i - p_j|^2 / 2 theta_a^2 - |I_i - I_j|^2 /
2 theta_b^2) and a smoothness kernel w2 exp(-|p_i - p_j|^2 / 2 theta_g^2) with positions p in pixels
and colours I in 0..255, Potts compatibility unless a C x C matrix is given. Inference, lattice and
normalisation follow the reference implementation (pydensecrf), whose labels it reproduces.
"""

import numbers
import sys

import numpy as np
from numba import prange
from tqdm import tqdm

from pixseg.crf.features import appearance_features, smoothness_features
from pixseg.crf.kernels import message_operator
from pixseg.crf.grid_lattice import GridLattice
from pixseg.crf.lattice import PermutohedralLattice
from pixseg.crf.meanfield import mean_field_numba, mean_field_torch
from pixseg.crf.params import DEFAULT_APPEARANCE, DEFAULT_ITERATIONS, DEFAULT_SMOOTHNESS
from pixseg.jit import check_threads, jit, numba_threads

BACKENDS = ("auto", "numba", "torch")
SUM_TOLERANCE = 1e-3  # |sum_c p_c - 1| allowed per pixel; more is an error, never renormalised
# Below this many points a parallel region costs more than it saves (waking the threads), so small
# images run in the calling thread. The result does not depend on it: Q is the same to the bit on
# any number of threads.
SERIAL_BELOW = 32768
# The smoothness kernel's bandwidth below which its lattice is built in grid form (numba_operator).
GRID_BELOW_THETA = 2.0


def dense_crf(image, probs=None, *, iterations=DEFAULT_ITERATIONS, appearance=DEFAULT_APPEARANCE,
              smoothness=DEFAULT_SMOOTHNESS, unary=None, compat=None, backend="auto", device=None, threads=None):
    """Mean-field inference in the fully connected CRF. Returns (labels H x W, Q C x H x W float32).

    image: uint8 H x W x 3 RGB (numpy, torch or anything np.asarray takes). Grayscale H x W or
        H x W x 1 is replicated to three channels (so colour distances are sqrt(3) times the grey
        difference); the alpha channel of H x W x 4 is dropped.
    probs: float C x H x W class probabilities summing to 1 over C at every pixel (within 1e-3;
        no silent renormalisation). The unary energy is -log(probs); a zero rules the label out.
    unary: float C x H x W energies used instead of -log(probs) (+inf rules a label out); then
        probs may be None, and if given is only checked for shape.
    iterations: mean-field iterations; 0 returns the unary's argmax and softmax(-unary).
    appearance: (w1, theta_a, theta_b); smoothness: (w2, theta_g). A zero weight drops the kernel.
        Defaults: DeepLab v2's setting (see pixseg.crf.params for why, and CRF_PRESETS).
    compat: None for Potts (cost 1 between different labels), or a symmetric C x C matrix mu of
        label compatibilities, mu[l, l'] the cost of labels l and l' at similar pixels.
    backend: "numba" (CPU), "torch" (on `device`, default the input tensor's device or CPU) or
        "auto": torch when probs/unary is a CUDA tensor or a device is given, else numba.
    threads: how many threads the numba backend uses; None: numba's setting for the calling
        thread (numba.get_num_threads(), which numba.set_num_threads or NUMBA_NUM_THREADS set).
        Images under SERIAL_BELOW pixels run in the calling thread. The numba backend's labels and
        Q are the same to the bit whatever the thread count and the machine's load. On a machine
        shared with other work, start Python with OMP_WAIT_POLICY=PASSIVE (the pixseg command sets
        it): numba's OpenMP threads otherwise spin while they wait, against the other work. The
        torch backend uses torch's own thread setting, which dense_crf leaves alone.

    labels are uint8 when C <= 256, else int32, and argmax_c Q. Results are numpy arrays, or
    torch tensors on the input's device when probs/unary was a tensor.
    """
    backend = _choose_backend(backend, probs, unary, device)
    threads = _check_threads(threads, backend)
    iterations = _check_iterations(iterations)
    w1, theta_a, theta_b = _check_kernel("appearance", appearance, ("w1", "theta_a", "theta_b"))
    w2, theta_g = _check_kernel("smoothness", smoothness, ("w2", "theta_g"))
    image = _rgb_image(image)
    height, width = image.shape[:2]
    values, is_unary = _checked_potentials(probs, unary, (height, width))
    channels = values.shape[0]
    compat = _compatibility(compat, channels)
    label_dtype = np.uint8 if channels <= 256 else np.int32
    kernels = [("appearance", lambda: appearance_features(image, theta_a, theta_b), w1),
               ("smoothness", lambda: smoothness_features(height, width, theta_g), w2)]
    kernels = [kernel for kernel in kernels if kernel[2] > 0] if iterations > 0 else []

    if backend == "numba":
        with numba_threads(1 if height * width < SERIAL_BELOW else threads):
            operator = numba_operator(kernels, height, width, theta_g)
            labels, q = mean_field_numba(_to_numpy(values).reshape(channels, -1), is_unary, operator, compat,
                                         iterations if kernels else 0, label_dtype)
        labels, q = labels.reshape(height, width), q.reshape(channels, height, width)
        if _is_tensor(values):
            return _to_tensor(labels, values.device), _to_tensor(q, values.device)
        return labels, q

    import torch

    from pixseg.crf.lattice_torch import TorchLattice

    device = torch.device(device if device is not None else values.device if _is_tensor(values) else "cpu")
    lattices = [(TorchLattice(torch.as_tensor(f(), device=device)), w) for _, f, w in kernels]
    operator = message_operator(lattices) if lattices else None
    del lattices
    labels, q = mean_field_torch(torch.as_tensor(values, device=device).reshape(channels, -1), is_unary,
                                 operator, None if compat is None else torch.as_tensor(compat, device=device),
                                 iterations if kernels else 0)
    labels = labels.to(torch.uint8 if label_dtype == np.uint8 else torch.int32).reshape(height, width)
    q = q.reshape(channels, height, width)
    if _is_tensor(values):
        return labels, q
    return labels.cpu().numpy(), q.cpu().numpy()


def numba_operator(kernels, height, width, theta_g):
    """The numba backend's message operator for [(name, features function, weight), ...] (None
    when empty). Its smoothness kernel's lattice has about 1.15 N / theta_g^2 vertices: for narrow
    kernels (DeepLab v2's theta_g = 1) that is more than the image, and the grid form's one streaming
    pass beats the general lattice's passes over a table that size; for wide ones the general
    lattice is small enough to stay in cache beside the appearance kernel's and costs less. The
    choice depends on the bandwidth alone, never on the thread count, so Q does not either."""
    grid = theta_g < GRID_BELOW_THETA and any(name == "smoothness" for name, _, _ in kernels)
    # Each lattice is dropped once merged.
    lattices = [(GridLattice(height, width, theta_g) if grid and name == "smoothness"
                 else PermutohedralLattice(features()), weight) for name, features, weight in kernels]
    return message_operator(lattices) if lattices else None


def dense_crf_batch(images, probs_list=None, *, unary=None, progress=False, **options):
    """dense_crf on each image: `probs_list` and `unary` are sequences (or None) as long as `images`;
    the other keyword arguments go to every call. Returns the list of (labels, Q)."""
    count = len(images)
    probs_list = [None] * count if probs_list is None else probs_list
    unaries = [None] * count if unary is None else unary
    if len(probs_list) != count or len(unaries) != count:
        raise ValueError(f"dense_crf_batch: {count} images but {len(probs_list)} probability maps and "
                         f"{len(unaries) if unary is not None else 'no'} unaries; expected one per image")
    results = []
    for index in tqdm(range(count), desc="dense crf", unit="img", disable=not progress, dynamic_ncols=True):
        try:
            results.append(dense_crf(images[index], probs_list[index], unary=unaries[index], **options))
        except ValueError as error:
            raise ValueError(f"batch item {index}: {error}") from None
    return results


def _check_threads(threads, backend):
    if backend == "torch":
        if threads is not None:
            raise ValueError(f"threads={threads!r} applies to the numba backend; the torch backend uses "
                             f"torch.set_num_threads")
        return None
    return check_threads(threads)


def _is_tensor(value):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _to_numpy(array):
    return array.detach().cpu().numpy() if _is_tensor(array) else np.asarray(array)


def _to_tensor(array, device):
    import torch

    return torch.from_numpy(array).to(device)


def _choose_backend(backend, probs, unary, device):
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "numba" and device is not None:
        raise ValueError(f"device={device!r} applies to the torch backend, not numba")
    if backend != "auto":
        return backend
    given = unary if unary is not None else probs
    on_cuda = _is_tensor(given) and given.device.type == "cuda"
    return "torch" if on_cuda or device is not None else "numba"


def _check_iterations(iterations):
    if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 0:
        raise ValueError(f"iterations must be a whole number >= 0, got {iterations!r}")
    return int(iterations)


def _check_kernel(name, values, names):
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {len(names)} numbers ({', '.join(names)}), got {values!r}") from None
    if len(values) != len(names):
        raise ValueError(f"{name} must be {len(names)} numbers ({', '.join(names)}), got {values!r}")
    if not np.isfinite(values).all() or values[0] < 0 or min(values[1:]) <= 0:
        raise ValueError(f"{name} = {values}: expected a weight >= 0 and bandwidths > 0, all finite")
    return values


def _rgb_image(image):
    """uint8 H x W x 3: grayscale replicated, alpha dropped."""
    image = _to_numpy(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image has dtype {image.dtype}; expected uint8 RGB values 0..255 "
                         f"(for floats in 0..1: (image * 255).round().astype(np.uint8))")
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        image = image[:, :, :3] if image.shape[2] != 1 else image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image has shape {image.shape}; expected H x W x 3 RGB "
                         f"(or H x W grayscale, H x W x 1, H x W x 4 RGBA)")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image has shape {image.shape}; expected at least one pixel")
    return np.ascontiguousarray(image)


def _checked_potentials(probs, unary, size):
    """(values, is_unary): the checked C x H x W unary energies if given, else the probabilities
    (numpy array or tensor, as given)."""
    if probs is None and unary is None:
        raise ValueError("give probs (C x H x W probabilities) or unary (C x H x W energies)")
    if probs is not None:
        probs = _float_array("probs", probs, size)
    if unary is not None:
        unary = _float_array("unary", unary, size)
        _check_unary(unary)
        return unary, True
    _check_probabilities(probs)
    return probs, False


def _float_array(name, array, size):
    if not _is_tensor(array):
        array = np.asarray(array)
    kind = str(array.dtype)
    if "float" not in kind:
        raise ValueError(f"{name} has dtype {kind}; expected floating-point values")
    shape = tuple(array.shape)
    if len(shape) != 3 or shape[1:] != tuple(size) or shape[0] == 0:
        hint = ""
        if len(shape) == 3 and shape[:2] == tuple(size):
            hint = f"; it looks like H x W x C: transpose it to C x H x W, e.g. {name}.transpose(2, 0, 1)"
        raise ValueError(f"{name} has shape {shape}; expected C x {size[0]} x {size[1]} "
                         f"(labels x image height x image width){hint}")
    return array


def _where(mask):
    """'label c, row y, column x' of the first True entry of a C x H x W mask."""
    first = mask.nonzero()
    c, y, x = (int(axis[0]) for axis in first) if isinstance(first, tuple) else (int(v) for v in first[0])
    return f"label {c}, row {y}, column {x}"


@jit(parallel=True)
def _probabilities_pass(probs):
    """True when C x H x W probs hold no NaN and no negative value and every pixel's sum over the
    labels (added label by label in probs' dtype, as numpy's sum over the first axis) is within
    SUM_TOLERANCE of 1. One parallel pass instead of numpy's four."""
    channels, height, width = probs.shape
    good = np.ones(height, np.bool_)
    for y in prange(height):
        total = np.zeros(width, probs.dtype)
        for c in range(channels):
            row = probs[c, y]
            for x in range(width):
                if not row[x] >= 0:  # NaN or negative
                    good[y] = False
                total[x] += row[x]
        for x in range(width):
            if not abs(total[x] - 1) <= SUM_TOLERANCE:
                good[y] = False
    return good.all()


def _check_probabilities(probs):
    if not _is_tensor(probs) and probs.dtype.kind == "f" and probs.dtype.itemsize >= 4 and _probabilities_pass(probs):
        return
    xp = sys.modules["torch"] if _is_tensor(probs) else np
    bad = xp.isnan(probs)
    if bool(bad.any()):
        raise ValueError(f"probs has {int(bad.sum())} NaN values (first at {_where(bad)})")
    bad = probs < 0
    if bool(bad.any()):
        raise ValueError(f"probs has {int(bad.sum())} negative values (first at {_where(bad)}: "
                         f"{float(probs[bad].min()):g} is the smallest)")
    # Summed in float32 at least: float16 (as networks export probabilities) cannot hold 1 +- 1e-3
    # after adding 21 labels.
    total = probs.sum(0, dtype=xp.float64 if probs.dtype == xp.float64 else xp.float32)
    deviation = xp.abs(total - 1)
    worst = float(deviation.max())
    if not worst <= SUM_TOLERANCE:
        y, x = np.unravel_index(int(deviation.argmax()), tuple(deviation.shape))
        raise ValueError(f"probs must sum to 1 over the labels at every pixel (tolerance {SUM_TOLERANCE:g}); "
                         f"at row {y}, column {x} they sum to {float(total[y, x]):.6g}. Take a "
                         f"softmax over the label axis; dense_crf does not renormalise")


def _check_unary(energies):
    xp = sys.modules["torch"] if _is_tensor(energies) else np
    bad = xp.isnan(energies)
    if bool(bad.any()):
        raise ValueError(f"unary has {int(bad.sum())} NaN values (first at {_where(bad)})")
    bad = xp.isneginf(energies)
    if bool(bad.any()):
        raise ValueError(f"unary has {int(bad.sum())} values of -inf (first at {_where(bad)}); "
                         f"energies may be +inf (label ruled out) but not -inf")
    ruled_out = ~xp.isfinite(energies).any(0)
    if bool(ruled_out.any()):
        y, x = (int(v) for v in np.argwhere(_to_numpy(ruled_out))[0])
        raise ValueError(f"unary is +inf for every label at {int(ruled_out.sum())} pixels (first at "
                         f"row {y}, column {x}); at least one label must stay possible")


def _compatibility(compat, channels):
    if compat is None:
        return None
    matrix = _to_numpy(compat).astype(np.float64)
    if matrix.shape != (channels, channels):
        raise ValueError(f"compat has shape {matrix.shape}; expected {channels} x {channels} "
                         f"(one row and column per label) or None for Potts")
    if not np.isfinite(matrix).all():
        raise ValueError("compat must be finite")
    if not np.allclose(matrix, matrix.T, rtol=1e-6, atol=1e-6 * np.abs(matrix).max()):
        raise ValueError("compat must be symmetric: mu[l, l'] is the cost of the pair (l, l') either way")
    return matrix.astype(np.float32)
