"""Post-processing choices for eval and predict: none, the dense CRF, or the POS-CRF."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# "center" is the POS-CRF with a content-free centred Gaussian in place of objectness: the baseline
# that objectness from proposals has to beat (docs/method/objectness.md).
CRF_MODES = ("none", "dense", "pos", "center")


def make_refiner(mode: str, *, crf_options: dict | None = None, pos_scale: float | None = None,
                 pos_cache: str | Path | None = None, pos_options: dict | None = None):
    """A function (image, probs) -> labels for `mode`, or None for plain argmax.

    `crf_options` go to dense_crf / pos_crf (iterations, appearance, smoothness, ...); `pos_scale`
    None is pos_crf's default. For "pos",
    the objectness map of each image is computed once and cached under `pos_cache` by content hash.
    """
    if mode not in CRF_MODES:
        raise ValueError(f"crf mode {mode!r} is not one of {', '.join(CRF_MODES)}")
    if mode == "none":
        return None
    from pixseg.crf import dense_crf, pos_crf
    from pixseg.crf.params import DEFAULT_POS_SCALE

    crf_options = dict(crf_options or {})
    if mode == "dense":
        return lambda image, probs: np.asarray(dense_crf(image, probs, **crf_options)[0])

    from pixseg.objectness import center_prior, pixel_objectness
    from pixseg.objectness.cache import cached_pixel_objectness

    pos_options = dict(pos_options or {})
    pos_scale = DEFAULT_POS_SCALE if pos_scale is None else pos_scale

    def objectness(image):
        if mode == "center":
            return center_prior(image.shape[:2])
        if pos_cache is None:
            return pixel_objectness(image, **pos_options)
        return cached_pixel_objectness(image, pos_cache, **pos_options)

    def refine(image, probs):
        return np.asarray(pos_crf(image, probs, objectness(image), pos_scale=pos_scale, **crf_options)[0])

    return refine
