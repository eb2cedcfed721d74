"""The per-pixel halves of a CRF-as-RNN step in numba, forward and backward (see `pixseg.crf.crfrnn`).

A step's lattice work (splat, label mixing and blur of both kernels) is done on the lattices' vertex
tables; everything else a step does to a pixel happens in one pass over the pixels here, so that no
N x C temporary is made, written and read again per operation: in the forward, slicing both
kernels' (already mixed) messages, adding the unary and the softmax; in the backward, slicing both
transposed kernels' outputs, the softmax's backward and adding to the unary's gradient. Rows are
N x C float32, C unpadded. Every pixel is computed on its own, so the result does not depend on
the number of threads.
"""

import numpy as np
from numba import prange

from pixseg.crf.lanes import add_scaled
from pixseg.crf.lattice import FASTMATH
from pixseg.crf.meanfield import _softmax_rows
from pixseg.crf.prefetch import prefetch_row
from pixseg.jit import jit

_CHUNK = 2048  # pixels per parallel work item (scratch rows are allocated per item)
_BLOCK = 64  # pixels whose logits are exponentiated together (see `_softmax_rows`)
_SLICE_AHEAD = 4  # pixels ahead whose lattice rows are prefetched: large lattices miss the caches


@jit(fastmath=FASTMATH, inline="always")
def _add_slices(row, i, stop, offsets_a, weights_a, blurred_a, offsets_s, weights_s, blurred_s):
    """row += both kernels' slices at pixel i: sum over its entries e of weights[i, e] *
    blurred[offsets[i, e]], for each kernel."""
    if i + _SLICE_AHEAD < stop:
        for e in range(offsets_a.shape[1]):
            prefetch_row(blurred_a, offsets_a[i + _SLICE_AHEAD, e])
        for e in range(offsets_s.shape[1]):
            prefetch_row(blurred_s, offsets_s[i + _SLICE_AHEAD, e])
    for e in range(offsets_a.shape[1]):
        add_scaled(row, blurred_a[offsets_a[i, e]], weights_a[i, e])
    for e in range(offsets_s.shape[1]):
        add_scaled(row, blurred_s[offsets_s[i, e]], weights_s[i, e])


@jit(parallel=True)
def to_channels(rows, out):
    """out (C x N) = rows (N x C) transposed, a block of pixels at a time: each block writes C runs
    of _BLOCK floats, where numpy's transposed copy writes one float per row of out in turn."""
    n, c = rows.shape
    for block in prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(block * _BLOCK, min(n, (block + 1) * _BLOCK)):
            for k in range(c):
                out[k, i] = rows[i, k]


@jit(parallel=True, fastmath=FASTMATH)
def forward_pass(unary, offsets_a, weights_a, blurred_a, offsets_s, weights_s, blurred_s, out, probabilities):
    """For every pixel i: logits = unary[i] + both kernels' slices of their blurred, mixed vertex
    tables; out[i] = softmax(logits) if probabilities, else the logits."""
    n, c = unary.shape
    for chunk in prange((n + _CHUNK - 1) // _CHUNK):
        flat = np.empty(_BLOCK * c, np.float32)
        stop = min(n, (chunk + 1) * _CHUNK)
        for start in range(chunk * _CHUNK, stop, _BLOCK):
            count = min(_BLOCK, stop - start)
            for p in range(count):
                i = start + p
                logits = flat[p * c:(p + 1) * c] if probabilities else out[i]
                source = unary[i]
                for k in range(c):
                    logits[k] = source[k]
                _add_slices(logits, i, stop, offsets_a, weights_a, blurred_a, offsets_s, weights_s, blurred_s)
            if probabilities:
                _softmax_rows(flat, count, out, start)


@jit(parallel=True, fastmath=FASTMATH)
def backward_pass(q, offsets_a, weights_a, blurred_a, offsets_s, weights_s, blurred_s, grad, grad_unary):
    """For every pixel i, given both kernels' transposed filters of a step's message gradients up
    to their slices: dq = the sum of the slices; grad[i] = q[i] * (dq - <q[i], dq>), the gradient
    of the logits that the step's softmax took (q[i] its output); grad_unary[i] += grad[i]."""
    n, c = q.shape
    for chunk in prange((n + _CHUNK - 1) // _CHUNK):
        total = np.empty(c, np.float32)
        stop = min(n, (chunk + 1) * _CHUNK)
        for i in range(chunk * _CHUNK, stop):
            for k in range(c):
                total[k] = 0.0
            _add_slices(total, i, stop, offsets_a, weights_a, blurred_a, offsets_s, weights_s, blurred_s)
            probabilities, out, into = q[i], grad[i], grad_unary[i]
            inner = np.float32(0.0)
            for k in range(c):
                inner += probabilities[k] * total[k]
            for k in range(c):
                out[k] = probabilities[k] * (total[k] - inner)
                into[k] += out[k]
