"""Mean-field inference for the dense CRF given unary energies and a message operator (numba, torch).

One iteration, as in Krähenbühl's reference (densecrf.cpp, `inference`):
    Q <- softmax(-unary - compat @ message(Q)),  message(Q) = sum_k w_k D_k^-1/2 K_k D_k^-1/2 Q,
with Q = softmax(-unary) to start. Potts compatibility (compat None) is the reference's
PottsCompatibility, -w K Q: it equals the matrix 1 - I up to a per-pixel constant, which the softmax
removes. The kernel sum includes each pixel's own term, as in the reference.

Each numba iteration: splat Q onto the lattice, blur, then one pass over the pixels (slice the
blurred values, add the log-potential -unary, softmax). Q and the log-potential are kept N x C'
with C padded to a multiple of 8 (log-potential -inf, so padded labels have Q = 0), so that the
inner loops run without scalar remainders.
"""

import numpy as np
from numba import get_num_threads, njit, prange

from pixseg.crf.lattice import FASTMATH, blur, splat, splat_table, table_parts

_LANES = 8
_CHUNK = 2048  # pixels per parallel work item (scratch rows are allocated per item)
# exp(x) for x <= 0 as 2^n * p(r): the classic single-precision reduction x = n ln2 + r, |r| <= ln2/2,
# with a degree-7 polynomial (relative error ~2e-7), vectorisable where math.exp is a scalar call.
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_EXP_POLY = tuple(np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                          4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
_EXP_FLOOR = np.float32(-87.0)  # exp(-87) is still a normal float32; lower values become 0


@njit(cache=True, fastmath=FASTMATH)
def _update_row(i, potential, compat, offsets, slice_weights, blurred, do_slice, message, logit, bits, row):
    """row = softmax(potential[i] - compat @ message_i) (potential = -unary), message_i sliced from
    the blurred lattice values (M x C'; zero when not do_slice). `compat` is 0 x 0 for Potts (then
    the message enters with a plus sign, as the reference's -w K Q), else the padded C x C matrix.
    message, logit and bits are C'-long scratch rows."""
    cp = potential.shape[1]
    p0, p1, p2, p3, p4, p5 = _EXP_POLY
    if do_slice:
        message[:] = 0.0
        for e in range(offsets.shape[1]):
            source = blurred[offsets[i, e]]
            w = slice_weights[i, e]
            for k in range(cp):
                message[k] += w * source[k]
    if compat.shape[0] == 0:
        for k in range(cp):
            logit[k] = potential[i, k] + message[k]
    else:
        for k in range(cp):
            total = np.float32(0.0)
            for l in range(cp):
                total += compat[k, l] * message[l]
            logit[k] = potential[i, k] - total
    top = logit[0]
    for k in range(1, cp):
        top = max(top, logit[k])
    powers = bits.view(np.float32)
    for k in range(cp):
        x = logit[k] - top
        t = max(x, _EXP_FLOOR)
        n_pow = np.rint(t * _LOG2E)
        r = t - n_pow * _LN2_HI - n_pow * _LN2_LO
        poly = (((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5) * (r * r) + r + np.float32(1.0)
        bits[k] = (np.int32(n_pow) + 127) << 23
        row[k] = poly if x > _EXP_FLOOR else np.float32(0.0)
    total = np.float32(0.0)
    for k in range(cp):
        row[k] *= powers[k]
        total += row[k]
    inverse = np.float32(1.0) / total
    for k in range(cp):
        row[k] *= inverse


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _pixel_pass(potential, compat, offsets, slice_weights, blurred, q, do_slice):
    """q[i] = the updated row of every pixel i (see `_update_row`), in parallel over the pixels."""
    n, cp = potential.shape
    for chunk in prange((n + _CHUNK - 1) // _CHUNK):
        message = np.zeros(cp, np.float32)
        logit = np.empty(cp, np.float32)
        bits = np.empty(cp, np.int32)
        for i in range(chunk * _CHUNK, min(n, (chunk + 1) * _CHUNK)):
            _update_row(i, potential, compat, offsets, slice_weights, blurred, do_slice, message, logit, bits, q[i])


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _pixel_pass_splat(potential, compat, offsets, slice_weights, blurred, do_slice, splat_weights, tables, into,
                      shares):
    """The pixel pass with the next splat fused in: each pixel's updated row is scattered onto its
    vertices at once instead of being stored and read back. The pixels are cut into `shares`
    ranges: share 0 splats into tables[into], share s > 0 into its own tables[s + 1]; all are
    zeroed here and summed by `_sum_shares`."""
    n, cp = potential.shape
    for share in prange(shares):
        target = tables[into if share == 0 else share + 1]
        target[:] = 0.0
        message = np.zeros(cp, np.float32)
        logit = np.empty(cp, np.float32)
        bits = np.empty(cp, np.int32)
        row = np.empty(cp, np.float32)
        for i in range(share * n // shares, (share + 1) * n // shares):
            _update_row(i, potential, compat, offsets, slice_weights, blurred, do_slice, message, logit, bits, row)
            for e in range(offsets.shape[1]):
                vertex = target[offsets[i, e]]
                w = splat_weights[i, e]
                for k in range(cp):
                    vertex[k] += w * row[k]


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _sum_shares(tables, into):
    """tables[into] += tables[2] + tables[3] + ... (the other shares' splats)."""
    for v in prange(tables.shape[1]):
        row = tables[into, v]
        for share in range(2, tables.shape[0]):
            part = tables[share, v]
            for k in range(row.size):
                row[k] += part[k]


def splat_shares(num_points, num_vertices):
    """How many ranges of pixels splat in parallel inside the pixel pass, or 0 to splat as a
    separate gather. Fusing pays while the lattice is small next to the image: its tables, one per
    thread, then stay in cache. On large lattices the scattered updates miss on every vertex and the
    private tables cost more than the gather."""
    threads = get_num_threads()
    return threads if threads * num_vertices <= num_points else 0


@njit(cache=True, parallel=True)
def _to_channels(q, q_out, labels):
    """q_out (C x N) = the first C columns of q (N x C'), and labels = their argmax, in blocks of
    pixels so that every store stream stays sequential."""
    n = q.shape[0]
    channels = q_out.shape[0]
    block = 64
    for b in prange((n + block - 1) // block):
        lo, hi = b * block, min(n, (b + 1) * block)
        for k in range(channels):
            for i in range(lo, hi):
                q_out[k, i] = q[i, k]
        for i in range(lo, hi):
            # Branch-free running maximum: with uncertain pixels a branch mispredicts constantly.
            best, top = 0, q[i, 0]
            for k in range(1, channels):
                better = q[i, k] > top
                top = q[i, k] if better else top
                best = k if better else best
            labels[i] = best


def mean_field_numba(values, is_unary, operator, compat, iterations, label_dtype):
    """values: C x N unary energies (is_unary; +inf allowed, not -inf or NaN) or probabilities;
    operator: a MessageOperator of numba lattices (unused when iterations == 0); compat: C x C or
    None (Potts). Returns (labels N of `label_dtype`, Q C x N float32)."""
    channels, n = values.shape
    cp = -(-channels // _LANES) * _LANES
    # The log-potential -unary = log p, laid out N x C' and written in place (no C x N copy).
    potential = np.empty((n, cp), np.float32)
    potential[:, channels:] = -np.inf
    if is_unary:
        np.negative(values.T, out=potential[:, :channels])
    else:
        with np.errstate(divide="ignore"):
            np.log(values.T, out=potential[:, :channels])
    matrix = np.zeros((cp, cp) if compat is not None else (0, 0), np.float32)
    if compat is not None:
        matrix[:channels, :channels] = compat
    q = np.empty((n, cp), np.float32)
    no_entries = np.zeros((n, 0), np.int32)
    shares = splat_shares(n, operator.num_vertices) if iterations > 0 else 0
    if iterations == 0 or not shares:
        _pixel_pass(potential, matrix, no_entries, no_entries.astype(np.float32), q, q, False)
    if iterations > 0:
        offsets = np.ascontiguousarray(operator.offsets, dtype=np.int32)
        slice_weights = np.ascontiguousarray(operator.slice_weights, dtype=np.float32)
        splat_weights = np.ascontiguousarray(operator.splat_weights, dtype=np.float32)
        if shares:
            _fused_iterations(potential, matrix, offsets, slice_weights, splat_weights, operator, iterations, shares, q)
        else:
            table = splat_table(offsets, splat_weights, operator.num_vertices, table_parts(n))
            vertex_values = np.empty((operator.num_vertices, cp), np.float32)
            for _ in range(iterations):
                splat(q, *table, vertex_values)
                blur(vertex_values, *operator.blur)
                _pixel_pass(potential, matrix, offsets, slice_weights, vertex_values, q, True)
            del vertex_values, table
    del potential
    q_out = np.empty((channels, n), np.float32)
    labels = np.empty(n, label_dtype)
    _to_channels(q, q_out, labels)
    return labels, q_out


def _fused_iterations(potential, matrix, offsets, slice_weights, splat_weights, operator, iterations, shares, q):
    """Mean field with the splat fused into the pixel pass (small lattices): two tables alternate,
    one sliced while the other receives the next splat; the last pass writes Q."""
    tables = np.empty((max(2, shares + 1), operator.num_vertices, potential.shape[1]), np.float32)
    current = 0
    _pixel_pass_splat(potential, matrix, offsets, slice_weights, tables[0], False, splat_weights, tables, current,
                      shares)
    for iteration in range(iterations):
        _sum_shares(tables, current)
        blur(tables[current], *operator.blur)
        if iteration == iterations - 1:
            _pixel_pass(potential, matrix, offsets, slice_weights, tables[current], q, True)
        else:
            _pixel_pass_splat(potential, matrix, offsets, slice_weights, tables[current], True, splat_weights,
                              tables, 1 - current, shares)
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
