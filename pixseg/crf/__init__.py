"""Fully connected CRF (Krähenbühl & Koltun 2011) on a permutohedral lattice: numba CPU and torch backends.

How a call runs, file by file (numba backend; the torch backend has the same steps in
`lattice_torch.py` and `meanfield.mean_field_torch`):

    inference.dense_crf        checks the inputs, then per kernel:
      features.py              the per-pixel features (positions, colours) over the bandwidths
      lattice.py               PermutohedralLattice: each pixel's simplex vertices and weights, the
                               distinct vertices numbered, the blur's chains along each axis
      grid_lattice.py          GridLattice: the same lattice for a narrow smoothness kernel, whose
                               vertices form a dense array filtered in one pass down the image
      kernels.message_operator normalises each kernel (D^-1/2 K D^-1/2) and merges the general
                               lattices into one splat / blur / slice table
    meanfield.mean_field_numba per iteration: lattice.splat, the grid filter, lattice.blur, and one
                               pass over the pixels that slices, adds the unary and takes the softmax
                               (on small lattices that pass also splats the next iteration's Q)

Beside it: `lanes` and `prefetch` (vector and prefetch intrinsics for the lattice's row loops),
`exact` (O(N^2) ground truth), `crfrnn` (CRF as RNN: mean field as a trainable torch layer;
`crfrnn_passes` holds its per-pixel numba passes),
`densecrf` (pydensecrf's API), `pos` (the POS-CRF), `params` (named settings), `heap` (an opt-in:
glibc keeps freed memory for the next call). Importing the package changes
nothing in the host process, and does not import torch: `CRFasRNN`, a torch layer, is imported on
first use.
"""

from pixseg.crf.exact import exact_filter
from pixseg.crf.heap import keep_freed_memory
from pixseg.crf.inference import dense_crf, dense_crf_batch
from pixseg.crf.lattice import PermutohedralLattice
from pixseg.crf.params import CRF_PRESETS, DEFAULT_PRESET
from pixseg.crf.pos import pos_crf

__all__ = ["CRFasRNN", "CRF_PRESETS", "DEFAULT_PRESET", "PermutohedralLattice", "dense_crf", "dense_crf_batch",
           "exact_filter", "keep_freed_memory", "pos_crf"]


def __getattr__(name):
    if name == "CRFasRNN":
        from pixseg.crf.crfrnn import CRFasRNN

        return CRFasRNN
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
