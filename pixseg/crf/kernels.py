"""The dense CRF's pairwise kernels: lattice features, the reference's normalisation, and their sum as
one message-passing operator for mean-field inference.

A Gaussian kernel k(f_i, f_j) = exp(-|f_i - f_j|^2 / 2) on features f = position / theta (smoothness)
or (position / theta_a, RGB / theta_b) (appearance), see `pixseg.crf.features`. Like the reference (pydensecrf's default
NORMALIZE_SYMMETRIC), each kernel is used as D^-1/2 K D^-1/2 with D = K 1, the lattice's own filter
of ones, so the lattice's constant factor and edge effects cancel.

Kernels on general lattices are merged into one operator: every pixel has E = sum (d_k+1) vertex
entries in one shared vertex numbering, with the splat weight (barycentric weight x norm) and the
slice weight (barycentric weight x norm x alpha x kernel weight) folded in once. The message for Q is
then slice(blur(splat(Q))) with a single splat and slice per pixel, whatever the number of kernels.
Works on numpy arrays (numba backend) and torch tensors (torch backend) alike. The numba backend's
smoothness kernel comes as a `GridLattice` instead, kept beside the merged one with its own weights
(`MessageOperator.grid`): it filters in one streaming pass of its own.
"""

from dataclasses import dataclass

import numpy as np
from numba import prange

from pixseg.crf.grid_lattice import GridLattice
from pixseg.jit import jit


def symmetric_norm(lattice):
    """1 / sqrt(K 1): the reference's NORMALIZE_SYMMETRIC factor per point (float32, length N)."""
    filtered = lattice.filter(np.ones((1, lattice.num_points), np.float32))
    return 1.0 / (filtered[0] + 1e-20) ** 0.5


@dataclass
class MessageOperator:
    """The weighted sum of normalised Gaussian kernels as splat / blur / slice tables (see module doc).

    Per pixel (N x E): `offsets` (vertex indices in one numbering shared by all kernels),
    `splat_weights`, `slice_weights`. `blur`: the lattice backend's plan for blurring all kernels'
    vertices at once (`merge_blur` of the lattice class). Kernels are stored deepest first.
    `grid`: None, or (GridLattice, splat weights, slice weights) (N x 3 each) for a kernel on
    the pixel grid, filtered on its own (`GridLattice.filter_rows`).
    """

    offsets: object
    splat_weights: object
    slice_weights: object
    blur: tuple
    num_vertices: int
    grid: tuple = None


def message_operator(kernels):
    """Merge [(lattice, weight), ...] (numba or torch lattices, not mixed) into one MessageOperator."""
    if not kernels:
        raise ValueError("a message operator needs at least one kernel")
    grids = [(lattice, weight) for lattice, weight in kernels if isinstance(lattice, GridLattice)]
    if len(grids) > 1:
        raise ValueError("a message operator takes at most one grid lattice kernel")
    grid = _grid_entries(*grids[0]) if grids else None
    kernels = sorted([kernel for kernel in kernels if not isinstance(kernel[0], GridLattice)],
                     key=lambda kernel: -kernel[0].dim)
    if not kernels:
        n = grids[0][0].num_points
        no_entries = np.zeros((n, 0), np.float32)
        no_blur = (np.zeros(0, np.int32), np.zeros(1, np.int64), np.zeros(1, np.int64))
        return MessageOperator(no_entries.astype(np.int32), no_entries, no_entries, no_blur, 0, grid)
    lattices = [lattice for lattice, _ in kernels]
    blur = type(lattices[0]).merge_blur(lattices)
    total = sum(lattice.num_vertices for lattice in lattices)
    if not isinstance(lattices[0].offsets, np.ndarray):
        return MessageOperator(*_merged_entries_torch(kernels), blur, total, grid)
    return MessageOperator(*_merged_entries_numpy(kernels), blur, total, grid)


def _grid_entries(lattice, weight):
    """(lattice, splat weights, slice weights) of a grid kernel, normalised as the others."""
    norm = symmetric_norm(lattice)[:, None]
    splat = lattice.weights * norm
    return lattice, splat, splat * (lattice.alpha * np.float32(weight))


def _merged_entries_torch(kernels):
    """The N x E offsets, splat and slice weights of torch lattices, side by side."""
    import torch

    offsets, splat, slices, base = [], [], [], 0
    for lattice, weight in kernels:
        norm = symmetric_norm(lattice)[:, None]
        offsets.append(lattice.offsets + base)
        splat.append(lattice.weights * norm)
        slices.append(lattice.weights * (norm * float(lattice.alpha) * float(weight)))
        base += lattice.num_vertices
    return (torch.cat(offsets, 1).contiguous(), torch.cat(splat, 1).contiguous(),
            torch.cat(slices, 1).contiguous())


def _merged_entries_numpy(kernels):
    """The N x E offsets, splat and slice weights of numba lattices, filled in one pass per kernel
    (a chain of numpy operations over these tables costs more than the rest of the set-up)."""
    n = kernels[0][0].num_points
    entries = sum(lattice.dim + 1 for lattice, _ in kernels)
    offsets = np.empty((n, entries), np.int32)
    splat = np.empty((n, entries), np.float32)
    slices = np.empty((n, entries), np.float32)
    base = column = 0
    for lattice, weight in kernels:
        _fill_entries(lattice.offsets, lattice.weights, symmetric_norm(lattice), base,
                      np.float32(lattice.alpha), np.float32(weight), column, offsets, splat, slices)
        base += lattice.num_vertices
        column += lattice.dim + 1
    return offsets, splat, slices


@jit(parallel=True)
def _fill_entries(own_offsets, weights, norm, base, alpha, weight, column, offsets, splat, slices):
    """One kernel's columns of the merged tables."""
    n = own_offsets.shape[0]
    for i in prange(n):
        scale = norm[i] * alpha * weight
        for r in range(own_offsets.shape[1]):
            offsets[i, column + r] = own_offsets[i, r] + base
            splat[i, column + r] = weights[i, r] * norm[i]
            slices[i, column + r] = weights[i, r] * scale

