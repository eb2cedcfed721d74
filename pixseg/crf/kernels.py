"""The dense CRF's pairwise kernels: lattice features, the reference's normalisation, and their sum as
one message-passing operator for mean-field inference.

A Gaussian kernel k(f_i, f_j) = exp(-|f_i - f_j|^2 / 2) on features f = position / theta (smoothness)
or (position / theta_a, RGB / theta_b) (appearance). Like the reference (pydensecrf's default
NORMALIZE_SYMMETRIC), each kernel is used as D^-1/2 K D^-1/2 with D = K 1, the lattice's own filter
of ones, so the lattice's constant factor and edge effects cancel.

Both kernels are then merged into one operator: every pixel has E = (d_a+1) + (d_s+1) vertex
entries in one shared vertex numbering, with the splat weight (barycentric weight x norm) and the
slice weight (barycentric weight x norm x alpha x kernel weight) folded in once. The message for Q is
then slice(blur(splat(Q))) with a single splat and slice per pixel, whatever the number of kernels.
Works on numpy arrays (numba backend) and torch tensors (torch backend) alike.
"""

from dataclasses import dataclass

import numpy as np


def smoothness_features(height, width, theta_g):
    """(x / theta_g, y / theta_g) per pixel in row-major order: N x 2 float32 (x = column index)."""
    y, x = np.mgrid[:height, :width]
    return (np.stack([x.ravel(), y.ravel()], axis=1) / np.float32(theta_g)).astype(np.float32)


def appearance_features(image, theta_a, theta_b):
    """(x / theta_a, y / theta_a, r / theta_b, g / theta_b, b / theta_b) per pixel: N x 5 float32."""
    height, width = image.shape[:2]
    position = smoothness_features(height, width, theta_a)
    colour = image.reshape(-1, 3).astype(np.float32) / np.float32(theta_b)
    return np.concatenate([position, colour], axis=1)


def symmetric_norm(lattice):
    """1 / sqrt(K 1): the reference's NORMALIZE_SYMMETRIC factor per point (float32, length N)."""
    filtered = lattice.filter(np.ones((1, lattice.num_points), np.float32))
    return 1.0 / (filtered[0] + 1e-20) ** 0.5


@dataclass
class MessageOperator:
    """The weighted sum of normalised Gaussian kernels as splat / blur / slice tables (see module doc).

    Per pixel (N x E): `offsets` (vertex indices), `splat_weights`, `slice_weights`. Blur: pass j
    applies `neighbours[j]` (D x M x 2, index M = `num_vertices` meaning "none") to the first
    `rows[j]` vertices. Kernels are stored deepest first and all start at pass 0; a kernel whose
    pass count has the other parity than D gets one extra identity pass (both neighbours "none"),
    so that every kernel's result ends in the same one of two ping-pong buffers.
    """

    offsets: object
    splat_weights: object
    slice_weights: object
    neighbours: object
    rows: list
    num_vertices: int


def message_operator(kernels):
    """Merge [(lattice, weight), ...] (numba or torch lattices, not mixed) into one MessageOperator."""
    if not kernels:
        raise ValueError("a message operator needs at least one kernel")
    kernels = sorted(kernels, key=lambda kernel: -kernel[0].neighbours.shape[0])
    total = sum(lattice.num_vertices for lattice, _ in kernels)
    depth = kernels[0][0].neighbours.shape[0]
    offsets, splat, slices, neighbours = [], [], [], []
    rows, base = [0] * depth, 0
    for lattice, weight in kernels:
        norm = symmetric_norm(lattice)[:, None]
        offsets.append(lattice.offsets + base)
        splat.append(lattice.weights * norm)
        slices.append(lattice.weights * (norm * float(lattice.alpha) * float(weight)))
        # Shift into the shared numbering; "none" (this lattice's M) becomes the shared zero row.
        own = lattice.neighbours
        shifted = own + base
        shifted[own == lattice.num_vertices] = total
        none = shifted[:1] * 0 + total
        passes = own.shape[0] + (depth - own.shape[0]) % 2
        neighbours.append(_concat([shifted] + [none] * (depth - own.shape[0]), axis=0))
        for j in range(passes):
            rows[j] += lattice.num_vertices
        base += lattice.num_vertices
    return MessageOperator(_concat(offsets, 1), _concat(splat, 1), _concat(slices, 1),
                           _concat(neighbours, 1), rows, total)


def _concat(arrays, axis):
    if isinstance(arrays[0], np.ndarray):
        return np.ascontiguousarray(np.concatenate(arrays, axis=axis))
    import torch

    return torch.cat(arrays, dim=axis).contiguous()
