"""Fully connected CRF (Krähenbühl & Koltun 2011) on a permutohedral lattice: numba CPU and torch backends.

Pieces: `lattice` / `lattice_torch` (the permutohedral lattice, built once per feature set and
filtered many times), `grid_lattice` (the same lattice on the pixel grid, for the smoothness kernel
on the numba backend), `features` (per-pixel lattice features), `kernels` (normalisation, the summed
message operator), `meanfield` (the inference loop), `inference` (dense_crf, input checks), `exact`
(O(N^2) ground truth), `crfrnn` (CRF as RNN: mean field as a trainable torch layer), `params`,
`heap` (an opt-in: glibc keeps freed memory for the next call). Importing the package changes
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
