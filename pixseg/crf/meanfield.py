"""Mean-field inference for the dense CRF given unary energies and a message operator (numba, torch).

One iteration, as in Krähenbühl's reference (densecrf.cpp, `inference`):
    Q <- softmax(-unary - compat @ message(Q)),  message(Q) = sum_k w_k D_k^-1/2 K_k D_k^-1/2 Q,
with Q = softmax(-unary) to start. Potts compatibility (compat None) is the reference's
PottsCompatibility, -w K Q: it equals the matrix 1 - I up to a per-pixel constant, which the softmax
removes. The kernel sum includes each pixel's own term, as in the reference.

Each numba iteration (`mean_field_numba`):
1. `splat` Q onto the merged lattice's vertices (a gather per vertex, lattice.py);
2. the grid kernel, if any, filters Q on its own (`GridLattice.filter_rows`), writing its message
   over Q, which is not read again;
3. `blur` the vertex values;
4. `_pixel_pass`: per pixel, the message is the slice of the blurred values plus the grid
   message; the new Q is softmax(-unary - compat @ message) (Potts: softmax(-unary + message)).
On a lattice small next to the image (at most half as many vertices as pixels, `splat_shares`),
steps 4 and 1 are fused: the pixel pass scatters each pixel's new row of Q onto its vertices at
once (`_pixel_pass_splat`, into a table per range of pixels), so Q is not read back for the next
splat; this pays about a fifth of a call on photos with the reference preset's wide kernels.
Q and the log-potential are N x C' with C padded to a multiple of 8 (log-potential -inf, so
padded labels have Q = 0): every row is whole 8-float vectors.

Why the pixel pass looks the way it does (read off the generated code): numba leaves LLVM's SLP
vectoriser off, so only loops vectorise, never unrolled straight-line code. math.exp and math.log
are scalar calls, so exp and log are polynomials on bit patterns, evaluated in one flat loop over a
block of 64 pixels' logits; a float max reduction does not vectorise without the no-NaN flag (and
energies may be +inf), an integer one does; indexing from a slice's 0 avoids the wraparound test
that turns vector loads into gathers.
"""

import numpy as np
from numba import prange

from pixseg.crf.lanes import add_scaled
from pixseg.crf.lattice import FASTMATH, blur, splat, splat_table, table_parts
from pixseg.crf.prefetch import prefetch_row
from pixseg.jit import jit

_LANES = 8
# Ranges of pixels whose fused splats run in parallel (see `splat_shares`): at least two, so the
# fused pass has parallel work; at most 4: each share zeroes and sums a table of its own, work that
# fewer threads than shares do in turn.
MIN_SHARES, MAX_SHARES = 2, 4
_CHUNK = 2048  # pixels per parallel work item (scratch rows are allocated per item)
_BLOCK = 64  # pixels whose logits are exponentiated in one flat loop
# Pixels ahead whose lattice rows the slice prefetches: on large lattices nearly every row misses.
_SLICE_AHEAD = 4
# exp(x) for x <= 0 as 2^n * p(r): the classic single-precision reduction x = n ln2 + r, |r| <= ln2/2,
# with a degree-7 polynomial (relative error ~2e-7).
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_EXP_POLY = tuple(np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                          4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
_EXP_FLOOR = np.float32(-87.0)  # exp(-87) is still a normal float32; lower values become 0
# log(m) for m in [sqrt(1/2), sqrt(2)): Cephes' single-precision polynomial (error about 1 ulp).
_LOG_POLY = tuple(np.float32(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
                                          1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
                                          3.3333331174e-1))
_SQRT_HALF = np.float32(0.70710678118654752)
_FLOAT32_MIN = np.float32(1.17549435e-38)  # the smallest normal float32


@jit(fastmath=FASTMATH)
def _exp_nonpositive(x):
    """exp(x) for x <= 0 (0 below _EXP_FLOOR)."""
    p0, p1, p2, p3, p4, p5 = _EXP_POLY
    t = max(x, _EXP_FLOOR)
    n = np.rint(t * _LOG2E)
    r = t - n * _LN2_HI - n * _LN2_LO
    poly = (((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5) * (r * r) + r + np.float32(1.0)
    # 2^n from its bit pattern (n >= -126 keeps it normal); a view of a scalar, not of a scratch
    # array, so that the loop stays vectorisable.
    power = np.int32((np.int32(n) + np.int32(127)) << np.int32(23)).view(np.float32)
    return poly * power if x > _EXP_FLOOR else np.float32(0.0)


@jit(fastmath=FASTMATH)
def _log_nonnegative(x):
    """log(x) for float32 x >= 0 (log 0 = -inf): x = m 2^e with m in [sqrt(1/2), sqrt(2))."""
    p0, p1, p2, p3, p4, p5, p6, p7, p8 = _LOG_POLY
    # Subnormals are scaled by 2^23 first: their exponent field does not hold their exponent.
    tiny = x < _FLOAT32_MIN
    scaled = x * np.float32(8388608.0) if tiny else x
    bits = np.float32(scaled).view(np.int32)
    shift = np.float32(23.0) if tiny else np.float32(0.0)
    m = np.int32((bits & 0x007FFFFF) | 0x3F000000).view(np.float32)  # in [1/2, 1)
    small = m < _SQRT_HALF
    e = np.float32((bits >> 23) - (127 if small else 126)) - shift
    f = (m + m if small else m) - np.float32(1.0)
    z = f * f
    poly = ((((((((p0 * f + p1) * f + p2) * f + p3) * f + p4) * f + p5) * f + p6) * f + p7) * f + p8) * f * z
    y = f + (poly + e * _LN2_LO - np.float32(0.5) * z) + e * _LN2_HI
    return y if x > np.float32(0.0) else -np.inf


@jit(fastmath=FASTMATH)
def _row_max(row):
    """max(row) through integer keys that order like the floats (a negative float's magnitude
    bits flipped): an integer max reduction vectorises, a float one is a chain of C' - 1 compares."""
    best = np.int32(-2147483648)
    for k in range(row.shape[0]):
        bits = np.float32(row[k]).view(np.int32)
        best = max(best, np.int32(bits ^ ((bits >> 31) & 0x7FFFFFFF)))
    return np.int32(best ^ ((best >> 31) & 0x7FFFFFFF)).view(np.float32)


@jit(fastmath=FASTMATH)
def _softmax_rows(flat, count, out, start):
    """out[start + p] = softmax(flat[p]) for the first `count` rows of C' logits laid end to end
    in `flat` (overwritten). The exp runs as one loop over all rows, in full vectors (row by row,
    C' = 24 is one 16-lane vector and a leftover 8)."""
    cp = out.shape[1]
    for p in range(count):
        row = flat[p * cp:(p + 1) * cp]
        top = _row_max(row)
        for k in range(cp):
            row[k] -= top
    for t in range(count * cp):
        flat[t] = _exp_nonpositive(flat[t])
    for p in range(count):
        row = flat[p * cp:(p + 1) * cp]
        total = np.float32(0.0)
        for k in range(cp):
            total += row[k]
        inverse = np.float32(1.0) / total
        target = out[start + p]
        for k in range(cp):
            target[k] = row[k] * inverse


@jit(fastmath=FASTMATH)
def _block_logits(start, count, stop, potential, compat, offsets, slice_weights, blurred, grid_message, with_message,
                  message, flat):
    """flat[p] = potential[i] - compat @ message_i for the `count` pixels i from `start`, message_i
    sliced from the blurred lattice values (M x C') plus grid_message[i] (N x C', or 0 rows when
    there is no grid kernel); no message at all when not with_message (the start, Q = softmax(-unary)).
    `compat` is 0 x 0 for Potts (then the message enters with a plus sign, as the reference's
    -w K Q), else the padded C' x C' matrix. The lattice rows of pixels up to `stop` are prefetched
    a few pixels ahead: on large lattices nearly every row would otherwise miss the caches."""
    cp = potential.shape[1]
    entries = offsets.shape[1]
    for p in range(count):
        i = start + p
        logit = flat[p * cp:(p + 1) * cp]
        if with_message:
            if i + _SLICE_AHEAD < stop:
                for e in range(entries):
                    prefetch_row(blurred, offsets[i + _SLICE_AHEAD, e])
            if grid_message.shape[0] > 0:
                given = grid_message[i]
                for k in range(cp):
                    message[k] = given[k]
            else:
                for k in range(cp):
                    message[k] = 0.0
            for e in range(entries):
                add_scaled(message, blurred[offsets[i, e]], slice_weights[i, e])
        if compat.shape[0] == 0:
            for k in range(cp):
                logit[k] = potential[i, k] + message[k]
        else:
            for k in range(cp):
                total = np.float32(0.0)
                for l in range(cp):
                    total += compat[k, l] * message[l]
                logit[k] = potential[i, k] - total


@jit(parallel=True, fastmath=FASTMATH)
def _pixel_pass(potential, compat, offsets, slice_weights, blurred, grid_message, q, with_message):
    """q[i] = softmax(potential[i] - compat @ message_i) for every pixel i (see `_block_logits`);
    grid_message may be q itself."""
    n, cp = potential.shape
    for chunk in prange((n + _CHUNK - 1) // _CHUNK):
        message = np.zeros(cp, np.float32)
        flat = np.empty(_BLOCK * cp, np.float32)
        stop = min(n, (chunk + 1) * _CHUNK)
        for start in range(chunk * _CHUNK, stop, _BLOCK):
            count = min(_BLOCK, stop - start)
            _block_logits(start, count, stop, potential, compat, offsets, slice_weights, blurred, grid_message,
                          with_message, message, flat)
            _softmax_rows(flat, count, q, start)


@jit(parallel=True, fastmath=FASTMATH)
def _pixel_pass_splat(potential, compat, offsets, slice_weights, blurred, grid_message, with_message, splat_weights,
                      tables, into, shares, q):
    """The pixel pass with the next splat fused in: each pixel's new row of Q is scattered onto
    its vertices at once instead of being read back. The pixels are cut into `shares`
    ranges: share 0 splats into tables[into], share s > 0 into its own tables[s + 1]; all are
    zeroed here and summed by `_sum_shares`. The rows of Q are stored only when q has rows (a
    grid kernel reads them); grid_message may be q."""
    n, cp = potential.shape
    for share in prange(shares):
        target = tables[into if share == 0 else share + 1]
        target[:] = 0.0
        message = np.zeros(cp, np.float32)
        flat = np.empty(_BLOCK * cp, np.float32)
        rows = np.empty((_BLOCK, cp), np.float32)
        stop = (share + 1) * n // shares
        for start in range(share * n // shares, stop, _BLOCK):
            count = min(_BLOCK, stop - start)
            _block_logits(start, count, stop, potential, compat, offsets, slice_weights, blurred, grid_message,
                          with_message, message, flat)
            _softmax_rows(flat, count, rows, 0)
            if q.shape[0] > 0:
                q[start:start + count] = rows[:count]
            for p in range(count):
                for e in range(offsets.shape[1]):
                    add_scaled(target[offsets[start + p, e]], rows[p], splat_weights[start + p, e])


@jit(parallel=True, fastmath=FASTMATH)
def _sum_shares(tables, into):
    """tables[into] += tables[2] + tables[3] + ... (the other shares' splats)."""
    for v in prange(tables.shape[1]):
        row = tables[into, v]
        for share in range(2, tables.shape[0]):
            add_scaled(row, tables[share, v], np.float32(1.0))


@jit(fastmath=FASTMATH)
def _transpose_rows(values, start, count, padding, flat):
    """flat[p * C' + c] = values[c, start + p] for the `count` pixels from `start` (values C x N),
    padding columns = `padding`. Read down values' columns, the loop stays scalar; the other loop
    order vectorises into gathers or scatters, several times slower."""
    channels = values.shape[0]
    cp = flat.shape[0] // _BLOCK
    for p in range(count):
        row = flat[p * cp:(p + 1) * cp]
        for c in range(channels):
            row[c] = values[c, start + p]
        for c in range(channels, cp):
            row[c] = padding


@jit(parallel=True, fastmath=FASTMATH)
def _potential_from_probabilities(probs, potential):
    """potential (N x C') = log(probs) transposed (log 0 = -inf, padding columns -inf), for C x N
    float32 probabilities."""
    n = probs.shape[1]
    cp = potential.shape[1]
    # Blocks of pixels are contiguous in potential: one flat loop takes a whole block's logs.
    potential_flat = potential.reshape(n * cp)
    for chunk in prange((n + _CHUNK - 1) // _CHUNK):
        flat = np.empty(_BLOCK * cp, np.float32)
        stop = min(n, (chunk + 1) * _CHUNK)
        for start in range(chunk * _CHUNK, stop, _BLOCK):
            count = min(_BLOCK, stop - start)
            _transpose_rows(probs, start, count, 0.0, flat)
            rows = potential_flat[start * cp:(start + count) * cp]
            for t in range(count * cp):
                rows[t] = _log_nonnegative(flat[t])


@jit(parallel=True)
def _potential_from_energies(unary, potential):
    """potential (N x C') = -unary transposed (padding columns -inf), for C x N energies."""
    channels, n = unary.shape
    for i in prange(n):
        row = potential[i]
        for c in range(channels):
            row[c] = -unary[c, i]
        row[channels:] = -np.inf


@jit(parallel=True, fastmath=FASTMATH)
def _to_channels(q, q_out, labels):
    """q_out (C x N) = the first C columns of q (N x C'), and labels = their argmax (the first on
    ties), in blocks of pixels."""
    n = q.shape[0]
    channels = q_out.shape[0]
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        top = np.empty(_BLOCK, np.float32)
        best = np.empty(_BLOCK, np.int32)
        lo, hi = b * _BLOCK, min(n, (b + 1) * _BLOCK)
        # Read along q's rows, write across: the other way round the reads become gathers.
        for i in range(lo, hi):
            for k in range(channels):
                q_out[k, i] = q[i, k]
        # The argmax over the rows just written, pixels side by side: vectorised selects, where a
        # running maximum along one pixel's labels is a chain of dependent compares.
        count = hi - lo
        first = q_out[0, lo:hi]
        for p in range(count):
            top[p] = first[p]
            best[p] = 0
        for k in range(1, channels):
            row = q_out[k, lo:hi]
            for p in range(count):
                better = row[p] > top[p]
                top[p] = row[p] if better else top[p]
                best[p] = k if better else best[p]
        out = labels[lo:hi]
        for p in range(count):
            out[p] = best[p]


def splat_shares(num_points, num_vertices):
    """How many ranges of pixels splat in parallel inside the pixel pass, each into a table of its
    own, or 0 to splat as a separate gather. Fusing pays while the lattice is small next to the
    image: the private tables then stay in cache, and Q is not read back for the splat. On large
    lattices the scattered updates miss on every vertex and the private tables cost more than the
    gather. The count depends on the sizes alone, never on the threads, because the tables' sum is
    added in share order: a thread-dependent count would change Q's last bits with the thread
    count. Zeroing and summing the tables costs at most one pass over Q (shares x vertices <= pixels)."""
    if num_vertices <= 0:
        return 0
    shares = min(MAX_SHARES, num_points // num_vertices)
    return shares if shares >= MIN_SHARES else 0


def mean_field_numba(values, is_unary, operator, compat, iterations, label_dtype):
    """values: C x N unary energies (is_unary; +inf allowed, not -inf or NaN) or probabilities;
    operator: a MessageOperator of numba lattices (unused when iterations == 0); compat: C x C or
    None (Potts). Returns (labels N of `label_dtype`, Q C x N float32)."""
    channels, n = values.shape
    cp = -(-channels // _LANES) * _LANES
    # float32 throughout, as the reference: a probability below float32's range counts as 0, which
    # changes no Q (its exp underflows whatever the message) and keeps one compiled kernel.
    values = np.ascontiguousarray(values, dtype=np.float32)
    potential = np.empty((n, cp), np.float32)  # -unary = log p
    q = np.empty((n, cp), np.float32)
    potential_from = _potential_from_energies if is_unary else _potential_from_probabilities
    potential_from(values, potential)
    matrix = np.zeros((cp, cp) if compat is not None else (0, 0), np.float32)
    if compat is not None:
        matrix[:channels, :channels] = compat
    shares = splat_shares(n, operator.num_vertices) if iterations > 0 else 0
    no_grid_message = np.zeros((0, cp), np.float32)
    if iterations == 0 or not shares:
        no_entries = np.zeros((n, 0), np.int32)
        _pixel_pass(potential, matrix, no_entries, no_entries.astype(np.float32), q, no_grid_message, q, False)
    if iterations > 0:
        offsets = np.ascontiguousarray(operator.offsets, dtype=np.int32)
        slice_weights = np.ascontiguousarray(operator.slice_weights, dtype=np.float32)
        splat_weights = np.ascontiguousarray(operator.splat_weights, dtype=np.float32)
        if shares:
            _fused_iterations(potential, matrix, offsets, slice_weights, splat_weights, operator, iterations, shares, q,
                              no_grid_message)
        else:
            table = splat_table(offsets, splat_weights, operator.num_vertices, table_parts(n))
            vertex_values = np.empty((operator.num_vertices, cp), np.float32)
            for _ in range(iterations):
                splat(q, *table, vertex_values)
                # Q is read for the last time: the grid kernel's message replaces it in place.
                grid_message = _grid_message(operator.grid, q, no_grid_message)
                blur(vertex_values, *operator.blur)
                _pixel_pass(potential, matrix, offsets, slice_weights, vertex_values, grid_message, q, True)
            del vertex_values, table
    del potential
    q_out = np.empty((channels, n), np.float32)
    labels = np.empty(n, label_dtype)
    _to_channels(q, q_out, labels)
    return labels, q_out


def _grid_message(grid, q, no_grid_message):
    """The grid kernel's message for Q (N x C'), written over q; no_grid_message when there is none."""
    if grid is None:
        return no_grid_message
    lattice, splat_weights, slice_weights = grid
    return lattice.filter_rows(q, splat_weights, slice_weights, q)


def _fused_iterations(potential, matrix, offsets, slice_weights, splat_weights, operator, iterations, shares, q,
                      no_grid_message):
    """Mean field with the splat fused into the pixel pass (small lattices): two tables alternate,
    one sliced while the other receives the next splat; the last pass writes Q. Q is stored on the
    way only for a grid kernel."""
    cp = potential.shape[1]
    stored = q if operator.grid is not None else no_grid_message
    tables = np.empty((max(2, shares + 1), operator.num_vertices, cp), np.float32)
    current = 0
    _pixel_pass_splat(potential, matrix, offsets, slice_weights, tables[0], no_grid_message, False, splat_weights,
                      tables, current, shares, stored)
    for iteration in range(iterations):
        _sum_shares(tables, current)
        grid_message = _grid_message(operator.grid, q, no_grid_message)
        blur(tables[current], *operator.blur)
        if iteration == iterations - 1:
            _pixel_pass(potential, matrix, offsets, slice_weights, tables[current], grid_message, q, True)
        else:
            _pixel_pass_splat(potential, matrix, offsets, slice_weights, tables[current], grid_message, True,
                              splat_weights, tables, 1 - current, shares, stored)
            current = 1 - current


def mean_field_torch(values, is_unary, operator, compat, iterations):
    """The same iteration in torch operations, on values' device. values: C x N float tensor of
    unary energies (is_unary) or probabilities; operator: a MessageOperator of TorchLattices
    (unused when iterations == 0); compat: C x C tensor or None.
    Returns (labels N int64, Q C x N float32) tensors."""
    import torch

    from pixseg.crf.lattice_torch import blur as blur_torch
    from pixseg.crf.lattice_torch import slice_rows, splat

    potential = (-values if is_unary else values.log()).T.float()  # -unary = log p
    q = torch.softmax(potential, dim=1)
    for _ in range(iterations):
        blurred = blur_torch(splat(q, operator.offsets, operator.splat_weights, operator.num_vertices),
                             *operator.blur)
        message = slice_rows(blurred, operator.offsets, operator.slice_weights)
        q = torch.softmax(potential + message if compat is None else potential - message @ compat.T, dim=1)
    return q.argmax(1), q.T.contiguous()
