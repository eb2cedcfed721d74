"""The permutohedral lattice (Adams, Baek & Davis 2010) in numba: Gaussian filtering of N points in d-D.

Build once per feature set, filter many times. Building lifts every feature vector (already divided
by its bandwidths) onto the hyperplane of the (d+1)-D permutohedral lattice, finds the enclosing
simplex and its barycentric weights, and numbers the distinct simplex vertices. Filtering splats
values onto the vertices, blurs with [1/2, 1, 1/2] along each of the d+1 lattice axes and slices
back. The arithmetic follows Krähenbühl's reference code (float32, the same scale factors, rounding
and `alpha` correction), so results match pydensecrf's closely.

Vertices are found without a hash table: every vertex key (its integer lattice coordinates) is
packed into one int64; keys that a small cache of recent keys does not already match (nearby pixels
share most vertices) are radix-sorted, and equal neighbours in that order are one vertex. The
lattice neighbour of a vertex along axis j has packed key `key + delta_j`, and adding a constant
keeps the sorted order, so one sweep of the sorted keys per axis finds every vertex's successor
and, meeting each vertex after its predecessor, its place in the blur's chains. Vertices
are numbered in order of first appearance in the points, so consecutive pixels touch nearby rows
in the splat and slice.

Values are N x C with the channel innermost, so a vertex's C values are one contiguous row; a
filter holds one M x C table. The splat is a gather (each vertex sums the rows of the points that
touch it, listed by `splat_table`), the slice a gather over each point's vertices, both parallel.
The blur is done in place along chains: the successors along one axis form disjoint runs, and
walking a run while keeping the previous old row gives exactly [1/2, 1, 1/2] of the old values,
touching only vertices that have a neighbour along that axis (on large, sparse lattices most have
none) and needing no second table. Chains are blurred in parallel. The gathers prefetch the rows
they will read a few steps ahead (`pixseg.crf.prefetch`): lattices of tens of megabytes miss the
caches on nearly every row.

Reading order: `PermutohedralLattice._build` (`_embed`: simplices and weights; `_number_vertices`:
distinct vertices; `_chains`: the blur's plan), then `PermutohedralLattice._filter` (`splat_table`
and `splat`, `blur`, `slice_rows`), which mean-field inference calls piece by piece.
"""

import math

import numpy as np
from numba import get_num_threads, prange

from pixseg.crf.lanes import add_scaled, blur_step
from pixseg.crf.prefetch import prefetch_row
from pixseg.jit import check_threads, jit, numba_threads

# Reassociation and contraction only: energies may legitimately be +-inf, so no "ninf"/"nnan".
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
_CHUNK = 4096  # fewest items worth a parallel range of their own (splat_table, the radix sort)
_RADIX_BITS = 11  # 2048 buckets: fewest passes over 40- to 50-bit keys while the buckets stay in L2
# _embed's cache of recent vertex keys: the more keys it matches, the fewer are sorted. A vertex
# recurs at pixels up to a few image rows apart (colour cells are scattered), so each cache serves
# a long run of points; 65536 slots (1 MB) are enough to catch those recurrences and still fit in L2.
_EMBED_CHUNK = 32768
_EMBED_BLOCK = 128  # points whose simplices are found together, step by step (64 to 256 equally fast)
_CACHE = 65536
# How many table reads ahead the gathers prefetch: far enough that a row arrives before it is read.
_BLUR_AHEAD = 16
_BLUR_PARTS = 64
_SPLAT_AHEAD = 32


def scale_factors(d):
    """Per-feature scale onto the lattice (p. 6 of Adams et al.), rounded exactly as the reference
    does (its inverse standard deviation is a float): a last-bit difference moves the odd point
    that lies on a simplex boundary into the neighbouring simplex."""
    inv_std = float(np.float32(math.sqrt(2.0 / 3.0) * (d + 1)))
    return np.array([1.0 / math.sqrt((i + 2.0) * (i + 1.0)) * inv_std for i in range(d)], np.float32)


def key_packing(low, high, scale):
    """Lower bounds and bit shifts packing a vertex key's d coordinates into one int64, given the
    per-feature minimum and maximum.

    Bounds come from interval arithmetic on the elevated coordinates, widened by enough lattice
    steps to cover rounding, the simplex's vertices and their blur neighbours, so every key and
    neighbour key packs without overflowing into the next field.
    """
    d = scale.size
    low, high = np.asarray(low, np.float64) * scale, np.asarray(high, np.float64) * scale
    margin = 4 * (d + 1)
    lows, shifts, used = np.empty(d, np.int64), np.empty(d, np.int64), 0
    for j in range(d - 1, -1, -1):  # field j holds elevated coordinate j; field 0 is most significant
        # elevated[j] = sum_{i >= j} cf_i - j * cf_{j-1}, with cf_i = feature_i * scale_i.
        lo, hi = low[j:].sum(), high[j:].sum()
        if j > 0:
            lo, hi = lo - j * high[j - 1], hi - j * low[j - 1]
        lows[j] = math.floor(lo) - margin
        shifts[j] = used
        used += int(math.ceil(hi) + margin - lows[j]).bit_length()
    if used > 63:
        raise ValueError(
            f"the lattice coordinates of these features need {used} bits, more than the 63 of a packed "
            f"key: the image is too large for these bandwidths; use larger bandwidths (theta) or a "
            f"smaller image")
    return lows, shifts, used


def neighbour_deltas(shifts):
    """Packed-key offsets of the lattice neighbours along each of the d+1 axes.

    Along axis j < d a neighbour adds d+1 to coordinate j and subtracts 1 from the others (the
    implicit coordinate d included); along axis d it subtracts 1 from all d stored coordinates.
    """
    d = len(shifts)
    ones = int(sum(1 << int(s) for s in shifts))
    return np.array([((d + 1) << int(shifts[j])) - ones for j in range(d)] + [-ones], np.int64)


@jit()
def _feature_bounds(features):
    """Per-column minimum and maximum, as float64 (numpy's column reductions are slow on N x d)."""
    low = features[0].astype(np.float64)
    high = low.copy()
    for p in range(features.shape[0]):
        for j in range(features.shape[1]):
            low[j] = min(low[j], features[p, j])
            high[j] = max(high[j], features[p, j])
    return low, high


@jit()
def block_simplices(features, start, count, scale, lows, shifts, ones, columns, elevated, rem0, rank, bary, keys):
    """The enclosing simplices of the `count` feature vectors (d values each) from row `start`, in
    float32 arithmetic in the reference's order, so that points land in the same simplices: per
    point the packed key of each simplex vertex (keys[r], vertex r; vertex 0 is the nearest point
    of the 0-coloured sublattice, adjusted) and the barycentric weights (bary[r]).

    Each step is a loop over the points, so that it vectorises (one point at a time is a chain of
    scalar steps). Scratch arrays
    have the point index last: columns d rows, elevated and rem0 d+1, rank d+2 (the last for the
    rounded sums), bary d+2 (the last doubles as a running total before the weights)."""
    d = features.shape[1]
    d1 = d + 1
    down = np.float32(1.0 / d1)
    up = np.float32(d1)
    for p in range(count):
        point = features[start + p]
        for j in range(d):
            columns[j, p] = point[j] * scale[j]
    total = bary[d + 1]  # scratch until the weights are computed
    total[:count] = 0.0
    for j in range(d, 0, -1):
        cf, out = columns[j - 1], elevated[j]
        jf = np.float32(j)
        for p in range(count):
            out[p] = total[p] - jf * cf[p]
            total[p] += cf[p]
    elevated[0, :count] = total[:count]
    rounded_sum = rank[d1]
    rounded_sum[:count] = 0
    for i in range(d1):
        el, rem, rk = elevated[i], rem0[i], rank[i]
        for p in range(count):
            v = np.rint(down * el[p])
            rem[p] = v * up
            rounded_sum[p] += np.int64(v)
            rk[p] = 0
    for i in range(d):
        el_i, rem_i, rank_i = elevated[i], rem0[i], rank[i]
        for j in range(i + 1, d1):
            el_j, rem_j, rank_j = elevated[j], rem0[j], rank[j]
            for p in range(count):
                smaller = np.int64(el_i[p] - rem_i[p] < el_j[p] - rem_j[p])
                rank_i[p] += smaller
                rank_j[p] += 1 - smaller
    for i in range(d1):
        rem, rk = rem0[i], rank[i]
        for p in range(count):
            r = rk[p] + rounded_sum[p]
            low, high = r < 0, r > d
            rk[p] = r + d1 if low else (r - d1 if high else r)
            rem[p] = rem[p] + up if low else (rem[p] - up if high else rem[p])
    for k in range(d + 2):
        out = bary[k]
        out[:count] = 0.0
        for i in range(d1):
            el, rem, rk = elevated[i], rem0[i], rank[i]
            for p in range(count):
                v = (el[p] - rem[p]) * down
                slot = d - rk[p]
                acc = out[p]
                acc = acc + v if slot == k else acc
                out[p] = acc - v if slot + 1 == k else acc
    top, first_weight = bary[d + 1], bary[0]
    for p in range(count):
        first_weight[p] += np.float32(1.0) + top[p]
    # Vertex 0 is rem0 itself; vertex r adds 1 to every coordinate but those ranked above d - r,
    # which lose d (the canonical simplex, permuted by rank).
    key0 = keys[0]
    key0[:count] = 0
    for i in range(d):
        rem, low, shift = rem0[i], lows[i], shifts[i]
        for p in range(count):
            key0[p] += (np.int64(rem[p]) - low) << shift
    for r in range(1, d1):
        previous, current = keys[r - 1], keys[r]
        for p in range(count):
            current[p] = previous[p] + ones
        for i in range(d):
            rk, lost = rank[i], np.int64(d1) << shifts[i]
            for p in range(count):
                current[p] -= lost if rk[p] == d - r + 1 else 0


@jit(parallel=True)
def _embed(features, scale, lows, shifts, keys, weights, first):
    """Per point: the packed keys of the d+1 vertices of its enclosing simplex and its barycentric
    weights. Float32 arithmetic in the reference's order, so points land in the same simplices.

    first[row] is an earlier row known to hold the same key (found through a direct-mapped
    cache of the keys recently seen in this chunk of points: nearby pixels share most vertices),
    else the row itself. Only rows that are their own `first` need sorting."""
    n, d = features.shape
    d1 = d + 1
    ones = np.int64(0)
    for i in range(d):
        ones += np.int64(1) << shifts[i]
    for chunk in prange((n + _EMBED_CHUNK - 1) // _EMBED_CHUNK):
        columns = np.empty((d, _EMBED_BLOCK), np.float32)
        elevated = np.empty((d1, _EMBED_BLOCK), np.float32)
        rem0 = np.empty((d1, _EMBED_BLOCK), np.float32)
        rank = np.empty((d1 + 1, _EMBED_BLOCK), np.int64)
        bary = np.empty((d + 2, _EMBED_BLOCK), np.float32)
        block_keys = np.empty((d1, _EMBED_BLOCK), np.int64)
        cached = np.full((_CACHE, 2), -1, np.int64)  # (key, row) side by side: one cache line per probe
        stop = min(n, (chunk + 1) * _EMBED_CHUNK)
        for start in range(chunk * _EMBED_CHUNK, stop, _EMBED_BLOCK):
            count = min(_EMBED_BLOCK, stop - start)
            block_simplices(features, start, count, scale, lows, shifts, ones, columns, elevated, rem0, rank, bary,
                             block_keys)
            for p in range(count):
                for r in range(d1):
                    row = (start + p) * d1 + r
                    key = block_keys[r, p]
                    keys[row] = key
                    weights[start + p, r] = bary[r, p]
                    slot = ((key * np.int64(-7046029254386353131)) >> 40) & (_CACHE - 1)
                    if cached[slot, 0] == key:
                        first[row] = cached[slot, 1]
                    else:
                        cached[slot, 0] = key
                        cached[slot, 1] = row
                        first[row] = row


@jit(parallel=True)
def _radix_argsort(keys, bits, parts):
    """Stable LSD radix sort of non-negative int64 keys below 2**bits: (sorted keys, order). Each
    pass counts and scatters `parts` ranges of the keys in parallel, every range into its own
    slots of each bucket, which keeps the sort stable."""
    n = keys.size
    src_keys, dst_keys = keys.copy(), np.empty_like(keys)
    src_order, dst_order = np.arange(n).astype(np.int32), np.empty(n, np.int32)
    buckets = 1 << _RADIX_BITS
    for shift in range(0, bits, _RADIX_BITS):
        slots = np.zeros((parts, buckets), np.int64)
        for part in prange(parts):
            for i in range(part * n // parts, (part + 1) * n // parts):
                slots[part, (src_keys[i] >> shift) & (buckets - 1)] += 1
        position = 0
        for b in range(buckets):
            for part in range(parts):
                count = slots[part, b]
                slots[part, b] = position
                position += count
        for part in prange(parts):
            fill = slots[part]
            for i in range(part * n // parts, (part + 1) * n // parts):
                b = (src_keys[i] >> shift) & (buckets - 1)
                dst_keys[fill[b]] = src_keys[i]
                dst_order[fill[b]] = src_order[i]
                fill[b] += 1
        src_keys, dst_keys = dst_keys, src_keys
        src_order, dst_order = dst_order, src_order
    return src_keys, src_order


@jit()
def _part_bounds(size, parts):
    """Boundaries of `parts` near-equal ranges of 0..size."""
    return np.array([part * size // parts for part in range(parts + 1)], np.int64)


@jit(parallel=True)
def _run_bases(sorted_keys, bounds):
    """bases[p] = how many runs of equal keys start before range p of sorted_keys; bases[-1] = all."""
    parts = bounds.size - 1
    bases = np.zeros(parts + 1, np.int64)
    for part in prange(parts):
        for k in range(bounds[part], bounds[part + 1]):
            bases[part + 1] += k == 0 or sorted_keys[k] != sorted_keys[k - 1]
    return np.cumsum(bases)


@jit(parallel=True)
def _first_seen_numbers(sorted_keys, order, bounds):
    """number_at[c] = the vertex number of candidate c if it is the first appearance of its key
    (the sort is stable, so that is the first candidate of each run), numbered in candidate order."""
    count = sorted_keys.size
    parts = bounds.size - 1
    is_first = np.zeros(count, np.bool_)
    for part in prange(parts):
        for k in range(bounds[part], bounds[part + 1]):
            if k == 0 or sorted_keys[k] != sorted_keys[k - 1]:
                is_first[order[k]] = True
    bases = np.zeros(parts + 1, np.int64)
    for part in prange(parts):
        for c in range(bounds[part], bounds[part + 1]):
            bases[part + 1] += is_first[c]
    bases = np.cumsum(bases)
    number_at = np.empty(count, np.int32)
    for part in prange(parts):
        v = bases[part]
        for c in range(bounds[part], bounds[part + 1]):
            if is_first[c]:
                number_at[c] = v
                v += 1
    return number_at


@jit(parallel=True)
def _number_vertices(keys, first, bits, parts):
    """Number the distinct keys in order of first appearance. Only rows that are their own `first`
    are sorted; the others copy their first row's vertex. Returns the vertex of every row and the
    distinct keys ascending with the vertex number of each. Every pass runs over `parts` ranges in
    parallel."""
    rows = keys.size
    row_bounds = _part_bounds(rows, parts)
    own = np.zeros(parts + 1, np.int64)
    for part in prange(parts):
        for row in range(row_bounds[part], row_bounds[part + 1]):
            own[part + 1] += first[row] == row
    own = np.cumsum(own)
    candidates = np.empty(own[parts], np.int32)
    for part in prange(parts):
        c = own[part]
        for row in range(row_bounds[part], row_bounds[part + 1]):
            if first[row] == row:
                candidates[c] = row
                c += 1
    sorted_keys, order = _radix_argsort(keys[candidates], bits, parts)
    bounds = _part_bounds(candidates.size, parts)
    bases = _run_bases(sorted_keys, bounds)
    m = bases[parts]
    number_at = _first_seen_numbers(sorted_keys, order, bounds)
    sorted_vertex_keys = np.empty(m, np.int64)
    number = np.empty(m, np.int32)
    for part in prange(parts):
        g = bases[part]
        for k in range(bounds[part], bounds[part + 1]):
            if k == 0 or sorted_keys[k] != sorted_keys[k - 1]:
                sorted_vertex_keys[g] = sorted_keys[k]
                number[g] = number_at[order[k]]
                g += 1
    vertex_of = np.empty(rows, np.int32)
    for part in prange(parts):
        g = bases[part] - 1
        for k in range(bounds[part], bounds[part + 1]):
            g += k == 0 or sorted_keys[k] != sorted_keys[k - 1]
            vertex_of[candidates[order[k]]] = number[g]
    for row in prange(rows):  # a row's `first` is a candidate, numbered above
        vertex_of[row] = vertex_of[first[row]]
    return vertex_of, sorted_vertex_keys, number


@jit(parallel=True)
def _chains(sorted_keys, number, deltas):
    """The blur's chains: along each axis j, the maximal runs v, succ(v), succ(succ(v)), ... of two
    or more vertices, succ(v) the vertex whose key is key_v + deltas[j] (a vertex with no neighbour
    along j keeps its value in that blur pass, so it is in no chain). Returns (vertices, bounds,
    axis_starts): chain c is vertices[bounds[c]:bounds[c+1]] (vertex numbers), from its -delta
    end, and axis j owns chains axis_starts[j] to axis_starts[j+1], ordered by their first vertex.

    Found in the keys' sorted order (index g; the vertex number is number[g]): adding deltas[j]
    keeps the order, so one sweep in the direction of deltas[j] meets each vertex after its
    predecessor, and finds successors with a pointer that only moves forward. Each vertex gets its
    chain and its depth in it from its predecessor; no chain is walked (a walk jumps across the
    table at every step)."""
    m = sorted_keys.size
    d1 = deltas.size
    chain_of = np.empty((d1, m), np.int32)
    depth = np.empty((d1, m), np.int32)
    chain_counts = np.zeros(d1, np.int64)
    vertex_counts = np.zeros(d1, np.int64)
    for j in prange(d1):
        delta = deltas[j]
        own, deep = chain_of[j], depth[j]
        own[:] = -1
        chains = 0
        members = 0
        u = 0 if delta > 0 else m - 1
        for step in range(m):
            g = step if delta > 0 else m - 1 - step
            target = sorted_keys[g] + delta
            if delta > 0:
                while u < m and sorted_keys[u] < target:
                    u += 1
                linked = u < m and sorted_keys[u] == target
            else:
                while u >= 0 and sorted_keys[u] > target:
                    u -= 1
                linked = u >= 0 and sorted_keys[u] == target
            if linked:
                if own[g] < 0:  # no predecessor: a chain starts here
                    own[g] = chains
                    deep[g] = 0
                    chains += 1
                    members += 1
                own[u] = own[g]
                deep[u] = deep[g] + 1
                members += 1
        chain_counts[j] = chains
        vertex_counts[j] = members
    axis_starts = np.zeros(d1 + 1, np.int64)
    first_vertex = np.zeros(d1 + 1, np.int64)
    for j in range(d1):
        axis_starts[j + 1] = axis_starts[j] + chain_counts[j]
        first_vertex[j + 1] = first_vertex[j] + vertex_counts[j]
    vertices = np.empty(first_vertex[d1], np.int32)
    bounds = np.empty(axis_starts[d1] + 1, np.int64)
    bounds[axis_starts[d1]] = first_vertex[d1]
    for j in prange(d1):
        count = chain_counts[j]
        # Chains are numbered in sweep (key) order; rank them by their first vertex's number
        # instead, so that a blur pass sweeps the vertex table roughly in memory order.
        own, deep = chain_of[j], depth[j]
        chain_at = np.full(m, -1, np.int32)
        for g in range(m):
            if own[g] >= 0 and deep[g] == 0:
                chain_at[number[g]] = own[g]
        rank = np.empty(count, np.int32)
        r = 0
        for v in range(m):
            if chain_at[v] >= 0:
                rank[chain_at[v]] = r
                r += 1
        sizes = np.zeros(count, np.int64)
        for g in range(m):
            if own[g] >= 0:
                sizes[rank[own[g]]] += 1
        starts = np.empty(count, np.int64)
        position = first_vertex[j]
        for c in range(count):
            starts[c] = position
            bounds[axis_starts[j] + c] = position
            position += sizes[c]
        for g in range(m):
            if own[g] >= 0:
                vertices[starts[rank[own[g]]] + deep[g]] = number[g]
    return vertices, bounds, axis_starts


def table_parts(num_points):
    """Ranges of points (or keys) to count and fill in parallel in `splat_table` and the radix sort:
    one per thread, each of at least a chunk."""
    return max(1, min(get_num_threads(), num_points // _CHUNK))


@jit(parallel=True)
def splat_table(offsets, weights, num_vertices, parts):
    """The splat as a gather: for every vertex v, the points that touch it and their weights,
    points[starts[v]:starts[v+1]] ascending, so that each vertex's sum is accumulated in point
    order, as a scatter over the points would. A counting sort of the N x E offsets, counted and
    filled in parallel over `parts` ranges of points (each fills its own slots of every vertex)."""
    n, entries = offsets.shape
    slots = np.zeros((parts, num_vertices), np.int32)
    for part in prange(parts):
        for i in range(part * n // parts, (part + 1) * n // parts):
            for e in range(entries):
                slots[part, offsets[i, e]] += 1
    starts = np.empty(num_vertices + 1, np.int64)
    position = 0
    for v in range(num_vertices):
        starts[v] = position
        for part in range(parts):
            count = slots[part, v]
            slots[part, v] = position
            position += count
    starts[num_vertices] = position
    points = np.empty(n * entries, np.int32)
    point_weights = np.empty(n * entries, np.float32)
    for part in prange(parts):
        fill = slots[part]
        for i in range(part * n // parts, (part + 1) * n // parts):
            for e in range(entries):
                v = offsets[i, e]
                points[fill[v]] = i
                point_weights[fill[v]] = weights[i, e]
                fill[v] += 1
    return starts, points, point_weights


@jit(parallel=True, fastmath=FASTMATH)
def splat(values, starts, points, point_weights, out):
    """out[v] = sum over the points i that touch vertex v of their weight * values[i] (N x C' rows
    in, M x C' out), in parallel over the vertices: each row is written once, no private buffers."""
    total = points.size
    for v in prange(out.shape[0]):
        row = out[v]
        row[:] = 0.0
        for t in range(starts[v], starts[v + 1]):
            if t + _SPLAT_AHEAD < total:
                prefetch_row(values, points[t + _SPLAT_AHEAD])
            add_scaled(row, values[points[t]], point_weights[t])


@jit(parallel=True, fastmath=FASTMATH)
def blur(values, vertices, bounds, axis_starts):
    """Apply [1/2, 1, 1/2] along each axis in turn, in place: along a chain u, v, w the new v is
    v + (w + u) / 2 from the old values, so each chain is walked keeping the previous old row.
    A missing neighbour counts as zero, as in the reference; vertices in no chain keep their values.
    Chains of one axis are disjoint, so they are blurred in parallel, in _BLUR_PARTS runs of chains
    holding equal numbers of vertices (merged lattices put many short chains before fewer long ones:
    equal numbers of chains left one thread a quarter of the work)."""
    c = values.shape[1]
    half = np.float32(0.5)
    for j in range(axis_starts.size - 1):
        first, end = axis_starts[j], axis_starts[j + 1]
        starts = bounds[first:end]
        lo, size = bounds[first], bounds[end] - bounds[first]
        for part in prange(_BLUR_PARTS):
            begin = first + np.searchsorted(starts, lo + part * size // _BLUR_PARTS)
            stop = first + np.searchsorted(starts, lo + (part + 1) * size // _BLUR_PARTS)
            previous = np.empty(c, np.float32)
            for chain in range(begin, stop):
                previous[:] = 0.0
                last = bounds[chain + 1] - 1
                for t in range(bounds[chain], last):
                    if t + _BLUR_AHEAD < vertices.size:
                        prefetch_row(values, vertices[t + _BLUR_AHEAD])
                    blur_step(values[vertices[t]], values[vertices[t + 1]], previous, half)
                add_scaled(values[vertices[last]], previous, half)


@jit(parallel=True, fastmath=FASTMATH)
def slice_rows(blurred, offsets, slice_weights, out):
    """out[i] = sum over the entries e of point i of slice_weights[i, e] * blurred[offsets[i, e]]."""
    n, entries = offsets.shape
    for i in prange(n):
        row = out[i]
        row[:] = 0.0
        for e in range(entries):
            add_scaled(row, blurred[offsets[i, e]], slice_weights[i, e])


@jit(parallel=True, fastmath=FASTMATH)
def _filter_ones(offsets, weights, num_vertices, vertices, bounds, axis_starts, alpha):
    """The lattice filter of an all-ones signal, on scalars (the row kernels' per-row work is
    wasted on one channel); the splat in one thread, blur and slice in parallel."""
    n, d1 = offsets.shape
    values = np.zeros(num_vertices, np.float32)
    for i in range(n):
        for r in range(d1):
            values[offsets[i, r]] += weights[i, r]
    half = np.float32(0.5)
    for j in range(axis_starts.size - 1):
        for chain in prange(axis_starts[j], axis_starts[j + 1]):
            previous = np.float32(0.0)
            last = bounds[chain + 1] - 1
            for t in range(bounds[chain], last):
                old = values[vertices[t]]
                values[vertices[t]] = old + half * (values[vertices[t + 1]] + previous)
                previous = old
            values[vertices[last]] += half * previous
    out = np.empty(n, np.float32)
    for i in prange(n):
        total = np.float32(0.0)
        for r in range(d1):
            total += weights[i, r] * values[offsets[i, r]]
        out[i] = alpha * total
    return out


class PermutohedralLattice:
    """The lattice of N feature vectors (N x d, each coordinate already divided by its bandwidth).

    `filter(values)` returns, for every point i, approximately c * sum_j exp(-|f_i - f_j|^2 / 2)
    values_j, j = i included, with a constant c of the lattice's own (divide by `filter` of ones to
    remove it, as the CRF's kernel normalisation does). Attributes used by mean-field inference:
    `offsets`, `weights` (N x (d+1): each point's simplex vertices and barycentric weights),
    `chains` (the blur's (vertices, bounds, axis_starts), see `_chains`), `num_vertices` (M),
    and `alpha`. threads: how many threads building and filtering
    use (None: numba's setting for the calling thread when the lattice is made); the result is
    the same to the bit on any number.
    """

    def __init__(self, features, *, threads=None):
        self.threads = check_threads(threads)
        with numba_threads(self.threads):
            self._build(features)

    def _build(self, features):
        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[0] == 0 or features.shape[1] == 0:
            raise ValueError(f"lattice features must be a non-empty N x d array, got shape {features.shape}")
        if not np.isfinite(features).all():
            raise ValueError("lattice features must be finite (no NaN or inf)")
        n, d = features.shape
        self.num_points, self.dim = n, d
        scale = scale_factors(d)
        lows, shifts, bits = key_packing(*_feature_bounds(features), scale)
        keys = np.empty(n * (d + 1), np.int64)
        first = np.empty(n * (d + 1), np.int32)
        self.weights = np.empty((n, d + 1), np.float32)
        _embed(features, scale, lows, shifts, keys, self.weights, first)
        vertex_of, sorted_vertex_keys, number = _number_vertices(keys, first, bits, table_parts(n * (d + 1)))
        del keys, first
        self.offsets = vertex_of.reshape(n, d + 1)
        self.num_vertices = number.size
        self.chains = _chains(sorted_vertex_keys, number, neighbour_deltas(shifts))
        # The reference's correction for the blur's extra weight on the centre (see Adams et al.).
        self.alpha = np.float32(1.0 / (1.0 + 2.0 ** -d))

    def filter(self, values):
        """Gaussian-filter C x N values (any real dtype); returns C x N float32."""
        values = np.asarray(values)
        if values.ndim != 2 or values.shape[1] != self.num_points:
            raise ValueError(f"values to filter must be C x {self.num_points}, got shape {values.shape}")
        with numba_threads(self.threads):
            return self._filter(values)

    def _filter(self, values):
        if values.shape[0] == 1 and (values == 1).all():
            return _filter_ones(self.offsets, self.weights, self.num_vertices, *self.chains, self.alpha)[None]
        rows = np.ascontiguousarray(values.T, dtype=np.float32)
        vertex_values = np.empty((self.num_vertices, rows.shape[1]), np.float32)
        splat(rows, *splat_table(self.offsets, self.weights, self.num_vertices, table_parts(self.num_points)),
              vertex_values)
        blur(vertex_values, *self.chains)
        out = np.empty_like(rows)
        slice_rows(vertex_values, self.offsets, self.weights * self.alpha, out)
        return np.ascontiguousarray(out.T)

    @staticmethod
    def merge_blur(lattices):
        """One blur plan for several lattices whose vertices are numbered one after another (the
        first lattice's 0..M1-1, the next from M1, ...): pass j blurs the chains of axis j of every
        lattice that has that axis. Returns (vertices, bounds, axis_starts) as `chains`."""
        depth = max(lattice.dim + 1 for lattice in lattices)
        vertices, bounds, axis_starts = [], [], [0]
        base, position = [0], 0
        for lattice in lattices:
            base.append(base[-1] + lattice.num_vertices)
        for j in range(depth):
            for index, lattice in enumerate(lattices):
                if j > lattice.dim:
                    continue
                own_vertices, own_bounds, own_axes = lattice.chains
                first, last = own_bounds[own_axes[j]], own_bounds[own_axes[j + 1]]
                vertices.append(own_vertices[first:last] + np.int32(base[index]))
                bounds.append(own_bounds[own_axes[j]:own_axes[j + 1]] - first + position)
                position += last - first
            axis_starts.append(sum(part.size for part in bounds))
        bounds.append(np.array([position], np.int64))
        return (np.concatenate(vertices).astype(np.int32, copy=False),
                np.concatenate(bounds).astype(np.int64, copy=False), np.array(axis_starts, np.int64))
