"""The permutohedral lattice of the pixel grid, for the smoothness kernel (features (x, y) / theta).

Same lattice, simplices, barycentric weights, blur and slice as `PermutohedralLattice` on
`smoothness_features` (the per-pixel arithmetic, `block_simplices`, is shared, so pixels land in
the same simplices), but the regular grid lets it skip the general machinery. In d = 2 a vertex
key (k0, k1) has t = k0 + k1 growing with the image row and s = (k0 - k1) / 3 with the column,
s = t mod 2, and its blur neighbours are (t + 1, s + 1) (axis 0), (t + 1, s - 1) (axis 1) and
(t - 2, s) (axis 2), the opposite steps included. So the vertices are cells of a dense array:
row r = t - t_lo and column (s - s_lo - r mod 2) / 2 + 1 (one zero column of padding each side),
with a mask of the cells some pixel touches (the rest stay zero, as absent vertices are in the
reference's hash table).

Filtering streams through the image instead of sweeping a whole vertex table once per axis: a front
moves down the lattice rows; at each step it splats the pixel rows whose vertices start there,
blurs axis 0 on the row behind it, axis 1 two rows behind and axis 2 four rows behind (each in
place, keeping the old rows its neighbours still need), and slices the pixel rows whose vertices are
all final. Only a ring of lattice rows is alive, small enough to stay in cache, so the lattice
costs one read of the values and one write of the result instead of five passes over a table the
size of the image. Horizontal bands of the image are filtered in parallel, each starting a few rows
early so that its own rows come out exact; the rows it reads from its neighbours are copied first,
so the result may overwrite the values in place.
"""

import numpy as np
from numba import get_num_threads, prange

from pixseg.crf.features import smoothness_features
from pixseg.crf.lanes import add_scaled
from pixseg.crf.lattice import FASTMATH, block_simplices, key_packing, scale_factors
from pixseg.jit import jit

# Lattice rows each blur stage lags the front: axis 0 needs row r + 1 splatted, axis 1 row r + 1
# blurred along axis 0, axis 2 row r + 2 blurred along axis 1.
_LAG0, _LAG1, _LAG2 = 1, 2, 4
# Rows a band starts before the first row it must get exact: a row next to a missing one is off
# by one row per stage (1 + 1 + 2).
_WARMUP = _LAG2 + 1
_CELL = 8  # a cell's values are padded to whole 8-lane vectors (C' of the mean field is one already)
# Fewest image rows per band. Bands splat the image rows around them again (about 8 on each side
# at theta = 1 to 3), so there are only as many bands as threads.
_ROWS_PER_BAND = 32
_SIMPLEX_BLOCK = 128  # pixels of a row whose simplices are found together (see block_simplices)


@jit(parallel=True)
def _grid_simplices(features, width, scale, lows, shifts, t_of, s_of, weights, row_bounds):
    """For every pixel (row-major) the (t, s) of its 3 simplex vertices and their barycentric
    weights, from its `smoothness_features` (packed as `key_packing` gives lows and shifts; field 1
    holds the low bits); row_bounds[y] = the least and greatest t and s of image row y."""
    height = features.shape[0] // width
    ones = (np.int64(1) << shifts[0]) + (np.int64(1) << shifts[1])
    low_bits = (np.int64(1) << shifts[0]) - 1
    for y in prange(height):
        columns = np.empty((2, _SIMPLEX_BLOCK), np.float32)
        elevated = np.empty((3, _SIMPLEX_BLOCK), np.float32)
        rem0 = np.empty((3, _SIMPLEX_BLOCK), np.float32)
        rank = np.empty((4, _SIMPLEX_BLOCK), np.int64)
        bary = np.empty((4, _SIMPLEX_BLOCK), np.float32)
        keys = np.empty((3, _SIMPLEX_BLOCK), np.int64)
        t_min, t_max, s_min, s_max = 2147483647, -2147483647, 2147483647, -2147483647
        for start in range(y * width, (y + 1) * width, _SIMPLEX_BLOCK):
            count = min(_SIMPLEX_BLOCK, (y + 1) * width - start)
            block_simplices(features, start, count, scale, lows, shifts, ones, columns, elevated, rem0, rank, bary,
                            keys)
            for p in range(count):
                i = start + p
                for r in range(3):
                    k0 = (keys[r, p] >> shifts[0]) + lows[0]
                    k1 = (keys[r, p] & low_bits) + lows[1]
                    t, s = k0 + k1, (k0 - k1) // 3
                    t_of[i, r], s_of[i, r] = t, s
                    t_min, t_max = min(t_min, t), max(t_max, t)
                    s_min, s_max = min(s_min, s), max(s_max, s)
                    weights[i, r] = bary[r, p]
        row_bounds[y, 0], row_bounds[y, 1], row_bounds[y, 2], row_bounds[y, 3] = t_min, t_max, s_min, s_max


@jit(parallel=True)
def _grid_cells(rows, cols, width, t_lo, s_lo, present):
    """Turn (t, s) in rows, cols into array cells, in place, and mark the touched cells."""
    n = rows.shape[0]
    for y in prange(n // width):
        for i in range(y * width, (y + 1) * width):
            for e in range(3):
                r = rows[i, e] - t_lo
                c = ((cols[i, e] - s_lo - (r & 1)) >> 1) + 1
                rows[i, e], cols[i, e] = r, c
                present[r, c] = True  # rows of pixels may share a cell: equal writes


def _row_spans(present):
    """Per lattice row, the first and last touched column (an empty span past the end when
    none) and the untouched columns between them (CSR: holes[hole_starts[r]:hole_starts[r+1]]).
    Holes appear only when pixels are sparser than the lattice (theta < 1)."""
    num_rows, num_cols = present.shape
    touched = present.any(axis=1)
    first = np.where(touched, present.argmax(axis=1), 1)
    last = np.where(touched, num_cols - 1 - present[:, ::-1].argmax(axis=1), 0)
    columns = np.arange(num_cols)
    inside = (columns[None, :] >= first[:, None]) & (columns[None, :] <= last[:, None])
    hole_rows, hole_cols = np.nonzero(inside & ~present)
    hole_starts = np.searchsorted(hole_rows, np.arange(num_rows + 1)).astype(np.int64)
    return np.stack([first, last], axis=1).astype(np.int64), hole_cols.astype(np.int64), hole_starts


def _ring_size(spread):
    size = 16
    while size < spread:
        size *= 2
    return size


@jit(fastmath=FASTMATH)
def _blur_row(row, after, kept, fresh, lo, hi, after_shift, kept_shift, c, holes):
    """One axis of the blur on one lattice row (flat, C values per cell), in place over the
    touched span lo..hi: row = old + (after + kept) / 2 with the neighbour rows read `after_shift`
    and `kept_shift` cells over; `fresh` receives the old values (the next row's `kept`). Holes
    in the span are reset to zero."""
    if hi < lo:
        fresh[:] = 0.0
        return
    begin, length = lo * c, (hi - lo + 1) * c
    target = row[begin:begin + length]
    ahead = after[begin + after_shift * c:]
    behind = kept[begin + kept_shift * c:]
    save = fresh[begin:begin + length]
    half = np.float32(0.5)
    for j in range(length):
        old = target[j]
        save[j] = old
        target[j] = old + half * (ahead[j] + behind[j])
    fresh[:begin] = 0.0  # the old row was zero outside its span
    fresh[begin + length:] = 0.0
    for col in holes:
        row[col * c:(col + 1) * c] = 0.0


@jit(fastmath=FASTMATH)
def _splat_row(sources, rows, cols, weights, ring, start, wrap):
    """Add weights * sources (one image row: W x C) onto the cells of the ring at or after
    lattice row `start` (ring: rows x columns x cell; a cell holds C values and padding)."""
    c = sources.shape[1]
    for x in range(sources.shape[0]):
        source = sources[x]
        for e in range(3):
            r = rows[x, e]
            if r >= start:
                add_scaled(ring[r & wrap, cols[x, e]][:c], source, weights[x, e])


@jit(fastmath=FASTMATH)
def _slice_row(ring, rows, cols, weights, wrap, out):
    """out[x] = sum_e weights[x, e] * the ring cell of vertex e of pixel x (one image row)."""
    for x in range(out.shape[0]):
        target = out[x]
        target[:] = 0.0
        for e in range(3):
            add_scaled(target, ring[rows[x, e] & wrap, cols[x, e]], weights[x, e])


@jit(parallel=True, fastmath=FASTMATH)
def grid_filter(values, rows, cols, splat_weights, slice_weights, spans, holes, hole_starts, first_row, last_row,
                width, bands, ring_size, out):
    """out[i] = sum_e slice_weights[i, e] * blurred[rows[i, e], cols[i, e]] after splatting
    splat_weights * values (N x C rows, image row-major, rows of `width` pixels) onto the grid and
    blurring along the three axes in order. `out` may be `values` itself."""
    c = values.shape[1]
    height = first_row.size
    num_rows = spans.shape[0]
    num_cols = spans[:, 1].max() + 2  # up to the last touched column and one more
    cell = -(-c // _CELL) * _CELL
    row_length = num_cols * cell
    wrap = ring_size - 1
    # Per band: the image rows it splats, and the lattice rows it runs over.
    band_rows = np.empty((bands, 4), np.int64)
    halo_starts = np.zeros(bands + 1, np.int64)
    for band in range(bands):
        y_begin, y_end = band * height // bands, (band + 1) * height // bands
        start = max(0, first_row[y_begin] - _WARMUP)
        stop = last_row[y_end - 1] + _LAG2
        # Rows are monotone in the image (checked on building): every image row with a vertex in
        # [start, stop].
        y_lo, y_hi = y_begin, y_end
        while y_lo > 0 and last_row[y_lo - 1] >= start:
            y_lo -= 1
        while y_hi < height and first_row[y_hi] <= stop:
            y_hi += 1
        band_rows[band, 0], band_rows[band, 1], band_rows[band, 2], band_rows[band, 3] = y_lo, y_hi, start, stop
        halo_starts[band + 1] = halo_starts[band] + ((y_begin - y_lo) + (y_hi - y_end)) * width
    # Copies of the image rows each band reads from its neighbours, taken before any band writes.
    halo = np.empty((halo_starts[bands], c), np.float32)
    for band in prange(bands):
        y_begin, y_end = band * height // bands, (band + 1) * height // bands
        k = halo_starts[band]
        for y in range(band_rows[band, 0], band_rows[band, 1]):
            if y < y_begin or y >= y_end:
                halo[k:k + width] = values[y * width:(y + 1) * width]
                k += width
    for band in prange(bands):
        y_begin, y_end = band * height // bands, (band + 1) * height // bands
        y_lo, y_hi, start, stop = band_rows[band, 0], band_rows[band, 1], band_rows[band, 2], band_rows[band, 3]
        ring = np.zeros((ring_size, num_cols, cell), np.float32)
        ring_rows = ring.reshape(ring_size, row_length)  # the blur walks whole lattice rows
        # Old values of the rows behind each stage that its next rows still read: axis 0 and 1
        # need row r - 1 (kept, with a spare to swap), axis 2 rows r - 2 and r - 1.
        kept0, spare0 = np.zeros(row_length, np.float32), np.zeros(row_length, np.float32)
        kept1, spare1 = np.zeros(row_length, np.float32), np.zeros(row_length, np.float32)
        kept2 = np.zeros((3, row_length), np.float32)
        cleared = start + ring_size - 1  # the ring starts zeroed for these rows
        y_splat, y_slice = y_lo, y_begin
        halo_row = halo_starts[band]
        for front in range(start, stop + 1):
            while cleared < front:
                cleared += 1
                ring[cleared & wrap] = 0.0
            while y_splat < y_hi and first_row[y_splat] <= front:
                while cleared < last_row[y_splat]:
                    cleared += 1
                    ring[cleared & wrap] = 0.0
                first = y_splat * width
                if y_begin <= y_splat < y_end:
                    _splat_row(values[first:first + width], rows[first:first + width], cols[first:first + width],
                               splat_weights[first:first + width], ring, start, wrap)
                else:
                    _splat_row(halo[halo_row:halo_row + width], rows[first:first + width],
                               cols[first:first + width], splat_weights[first:first + width], ring, start, wrap)
                    halo_row += width
                y_splat += 1
            # Axis 0 on row r = front - 1: neighbours (r + 1, col + p), (r - 1, col + p - 1), p = r mod 2.
            r = front - _LAG0
            if start <= r < num_rows:
                p = r & 1
                _blur_row(ring_rows[r & wrap], ring_rows[(r + 1) & wrap], kept0, spare0, spans[r, 0], spans[r, 1], p,
                          p - 1, cell, holes[hole_starts[r]:hole_starts[r + 1]])
                kept0, spare0 = spare0, kept0
            # Axis 1 on row r = front - 2: neighbours (r + 1, col + p - 1), (r - 1, col + p).
            r = front - _LAG1
            if start <= r < num_rows:
                p = r & 1
                _blur_row(ring_rows[r & wrap], ring_rows[(r + 1) & wrap], kept1, spare1, spans[r, 0], spans[r, 1],
                          p - 1, p, cell, holes[hole_starts[r]:hole_starts[r + 1]])
                kept1, spare1 = spare1, kept1
            # Axis 2 on row r = front - 4: neighbours (r + 2, col), (r - 2, col); kept2 is a ring of
            # three rows' old values (r - 2, r - 1, and r's own).
            r = front - _LAG2
            if start <= r < num_rows:
                _blur_row(ring_rows[r & wrap], ring_rows[(r + 2) & wrap], kept2[(r - 2) % 3], kept2[r % 3], spans[r, 0],
                          spans[r, 1], 0, 0, cell, holes[hole_starts[r]:hole_starts[r + 1]])
            # Slice the band's image rows whose vertices are all final.
            while y_slice < y_end and last_row[y_slice] <= front - _LAG2:
                first = y_slice * width
                _slice_row(ring, rows[first:first + width], cols[first:first + width],
                           slice_weights[first:first + width], wrap, out[first:first + width])
                y_slice += 1


class GridLattice:
    """The permutohedral lattice of the features (x / theta, y / theta) of every pixel of a
    height x width image in row-major order: the same lattice as `PermutohedralLattice` on
    `smoothness_features(height, width, theta)`, stored as a dense array (see module doc).

    `filter(values)` as PermutohedralLattice's. For mean-field inference: `rows`, `cols`,
    `weights` (N x 3: each pixel's simplex vertices as array cells, and barycentric weights),
    `num_vertices`, `alpha`, `dim` (2), `ring_size` (lattice rows alive per band) and
    `filter_rows(values, splat_weights, slice_weights, out)`.
    """

    dim = 2

    def __init__(self, height, width, theta):
        if height < 1 or width < 1:
            raise ValueError(f"a grid lattice needs at least one pixel, got {height} x {width}")
        if not theta > 0:
            raise ValueError(f"the grid lattice's bandwidth theta must be positive, got {theta}")
        self.height, self.width = int(height), int(width)
        self.num_points = self.height * self.width
        n = self.num_points
        self.rows = np.empty((n, 3), np.int32)
        self.cols = np.empty((n, 3), np.int32)
        self.weights = np.empty((n, 3), np.float32)
        bounds = np.empty((self.height, 4), np.int64)
        features = smoothness_features(self.height, self.width, theta)
        scale = scale_factors(2)
        # The features grow along rows and down columns: the first and last pixels bound them.
        lows, shifts, _ = key_packing(features[0], np.maximum(features[self.width - 1], features[-1]), scale)
        _grid_simplices(features, self.width, scale, lows, shifts, self.rows, self.cols, self.weights, bounds)
        t_lo, s_lo = bounds[:, 0].min() & ~1, bounds[:, 2].min() & ~1  # even, so r = t mod 2
        present = np.zeros((int(bounds[:, 1].max() - t_lo) + 1, int(bounds[:, 3].max() - s_lo) // 2 + 3), np.bool_)
        _grid_cells(self.rows, self.cols, self.width, t_lo, s_lo, present)
        self.first_row, self.last_row = bounds[:, 0] - t_lo, bounds[:, 1] - t_lo
        if (np.diff(self.first_row) < 0).any() or (np.diff(self.last_row) < 0).any():
            raise AssertionError("grid lattice rows must not go back up the image")
        self.spans, self.holes, self.hole_starts = _row_spans(present)
        self.num_vertices = int(np.count_nonzero(present))
        self.ring_size = _ring_size(int((self.last_row - self.first_row).max()) * 2 + _LAG2 + 3)
        self.alpha = np.float32(1.0 / (1.0 + 2.0 ** -2))

    def filter_rows(self, values, splat_weights, slice_weights, out):
        """out (N x C) = slice_weights-weighted slice of the blurred splat of values (N x C rows)
        with splat_weights; out may be values."""
        bands = max(1, min(self.height // _ROWS_PER_BAND, get_num_threads()))
        grid_filter(values, self.rows, self.cols, splat_weights, slice_weights, self.spans, self.holes,
                    self.hole_starts, self.first_row, self.last_row, self.width, bands, self.ring_size, out)
        return out

    def filter(self, values):
        """Gaussian-filter C x N values (any real dtype); returns C x N float32."""
        values = np.asarray(values)
        if values.ndim != 2 or values.shape[1] != self.num_points:
            raise ValueError(f"values to filter must be C x {self.num_points}, got shape {values.shape}")
        rows = np.ascontiguousarray(values.T, dtype=np.float32)
        out = np.empty_like(rows)
        self.filter_rows(rows, self.weights, self.weights * self.alpha, out)
        return np.ascontiguousarray(out.T)
