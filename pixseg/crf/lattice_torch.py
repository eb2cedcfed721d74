"""The permutohedral lattice in torch tensor operations, so that building and filtering run on CUDA.

The same lattice as pixseg.crf.lattice (same float32 embedding, rounding, packed int64 vertex keys and
blur), built with tensor operations instead of loops: torch.unique numbers the vertices (in sorted
key order) and torch.searchsorted finds each vertex's neighbours along the d+1 axes. Splat is an
index_add_, blur a gather per axis and slice a gather. Values are N x C, channel innermost.
"""

import numpy as np
import torch

from pixseg.crf.lattice import key_packing, neighbour_deltas, scale_factors


class TorchLattice:
    """The lattice of N feature vectors (an N x d tensor, coordinates already divided by their
    bandwidths), on the features' device. Same interface as PermutohedralLattice: `filter`,
    `offsets`, `weights`, `neighbours`, `num_vertices`, `alpha`, `num_points`, `dim`."""

    def __init__(self, features):
        features = torch.as_tensor(features).to(torch.float32).contiguous()
        if features.ndim != 2 or features.shape[0] == 0 or features.shape[1] == 0:
            raise ValueError(f"lattice features must be a non-empty N x d array, got shape {tuple(features.shape)}")
        if not bool(torch.isfinite(features).all()):
            raise ValueError("lattice features must be finite (no NaN or inf)")
        n, d = features.shape
        self.num_points, self.dim = n, d
        device = features.device
        scale = scale_factors(d)
        lows, shifts, _ = key_packing(features.min(0).values.cpu().numpy(), features.max(0).values.cpu().numpy(),
                                      scale)
        rem0, rank, self.weights = _embed(features, torch.as_tensor(scale, device=device))
        # Vertex r of a point's simplex: the canonical simplex's vertex r, permuted by rank.
        r = torch.arange(d + 1, device=device)[None, :, None]
        coordinates = rem0[:, None, :d] + torch.where(rank[:, None, :d] <= d - r, r, r - (d + 1))
        fields = (coordinates - torch.as_tensor(lows, device=device)) << torch.as_tensor(shifts, device=device)
        keys, vertex_of = torch.unique(fields.sum(2).reshape(-1), sorted=True, return_inverse=True)
        self.offsets = vertex_of.reshape(n, d + 1)
        self.num_vertices = m = keys.numel()
        neighbours = []
        for delta in neighbour_deltas(shifts).tolist():
            sides = []
            for target in (keys + delta, keys - delta):
                found = torch.searchsorted(keys, target).clamp_(max=m - 1)
                sides.append(torch.where(keys[found] == target, found, m))
            neighbours.append(torch.stack(sides, dim=1))
        self.neighbours = torch.stack(neighbours)
        self.alpha = np.float32(1.0 / (1.0 + 2.0 ** -d))

    @staticmethod
    def merge_blur(lattices):
        """The blur plan (neighbours, rows) of several lattices, deepest first, whose vertices are
        numbered one after another: neighbours D x M x 2 in the shared numbering (M, the total, is
        the zero row meaning "none"); pass j applies to the first rows[j] vertices. A lattice whose
        pass count has the other parity than the deepest's gets one extra identity pass (both
        neighbours "none"), so every lattice's result ends up in the same tensor of the ping-pong."""
        total = sum(lattice.num_vertices for lattice in lattices)
        depth = lattices[0].neighbours.shape[0]
        neighbours, rows, base = [], [0] * depth, 0
        for lattice in lattices:
            own = lattice.neighbours
            shifted = torch.where(own == lattice.num_vertices, total, own + base)
            passes = own.shape[0] + (depth - own.shape[0]) % 2
            none = torch.full_like(shifted[:1], total)
            neighbours.append(torch.cat([shifted] + [none] * (depth - own.shape[0]), dim=0))
            for j in range(passes):
                rows[j] += lattice.num_vertices
            base += lattice.num_vertices
        return torch.cat(neighbours, dim=1).contiguous(), rows

    def filter(self, values):
        """Gaussian-filter C x N values (numpy array or tensor); returns a C x N float32 tensor."""
        values = torch.as_tensor(values, device=self.offsets.device).to(torch.float32)
        if values.ndim != 2 or values.shape[1] != self.num_points:
            raise ValueError(f"values to filter must be C x {self.num_points}, got shape {tuple(values.shape)}")
        rows = values.T
        blurred = blur(splat(rows, self.offsets, self.weights, self.num_vertices), self.neighbours,
                       [self.num_vertices] * self.neighbours.shape[0])
        return slice_rows(blurred, self.offsets, self.weights * float(self.alpha)).T.contiguous()


def _embed(features, scale):
    """Per point: the remainder-0 lattice point, the rank of each coordinate and the barycentric
    weights, in the reference's float32 order (see lattice._embed)."""
    n, d = features.shape
    cf = features * scale
    # elevated[j] = sum_{i >= j} cf_i - j * cf_{j-1}, summed from the last feature down.
    tail = torch.flip(torch.cumsum(torch.flip(cf, [1]), 1), [1])
    steps = torch.arange(1, d + 1, device=features.device, dtype=torch.float32)
    elevated = torch.cat([tail[:, :1], torch.cat([tail[:, 1:], cf.new_zeros(n, 1)], 1) - steps * cf], 1)
    down = np.float32(1.0 / (d + 1))
    rounded = torch.round(elevated * down)
    rem0 = rounded * (d + 1)
    difference = elevated - rem0
    # rank[i]: over pairs i < j, i gains one if its remainder is smaller, else j does.
    smaller = difference[:, :, None] < difference[:, None, :]
    later = torch.ones(d + 1, d + 1, dtype=torch.bool, device=features.device).triu(1)
    rank = (smaller & later).sum(2) + (~smaller & later).sum(1) + rounded.sum(1, keepdim=True).long()
    low, high = rank < 0, rank > d
    rank = rank + (d + 1) * low - (d + 1) * high
    rem0 = rem0 + (d + 1) * low - (d + 1) * high
    v = (elevated - rem0) * down
    bary = v.new_zeros(n, d + 2)
    bary.scatter_add_(1, d - rank, v)
    bary.scatter_add_(1, d - rank + 1, -v)
    bary[:, 0] += 1.0 + bary[:, d + 1]
    return rem0.long(), rank, bary[:, :d + 1].contiguous()


def splat(rows, offsets, weights, num_vertices):
    """(M+1) x C vertex values: sum over each vertex's entries of weight * row; the last row is zero."""
    channels = rows.shape[1]
    out = rows.new_zeros(num_vertices + 1, channels)
    out.index_add_(0, offsets.reshape(-1), (weights[:, :, None] * rows[:, None, :]).reshape(-1, channels))
    return out


def blur(values, neighbours, rows):
    """Pass j: [1/2, 1, 1/2] along neighbours[j] on the first rows[j] vertices (index M = zero row)."""
    for j, count in enumerate(rows):
        near = neighbours[j, :count]
        sides = torch.index_select(values, 0, near[:, 0]).add_(torch.index_select(values, 0, near[:, 1]))
        values = torch.cat([sides.mul_(0.5).add_(values[:count]), values[count:]])
    return values


def slice_rows(values, offsets, weights):
    """N x C: sum over each point's entries of weight * the entry's vertex values."""
    gathered = torch.index_select(values, 0, offsets.reshape(-1)).reshape(*offsets.shape, -1)
    return (weights[:, :, None] * gathered).sum(1)
