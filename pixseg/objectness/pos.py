"""Pixel objectness (POS): the fraction of object proposals that contain each pixel, and its baseline.

pos_j = g_j / G (docs/method/objectness.md): g_j proposals contain pixel j out of G in the image. With a
learned model that ranks proposals, the fraction is weighted: each proposal counts with its weight
(`ranking.proposal_weights`). Counts are taken per superpixel (every pixel of a superpixel is in the
same proposals), never over P full masks.
"""

from __future__ import annotations

import numpy as np

from pixseg.objectness.boundaries import as_rgb
from pixseg.objectness.proposals import Proposals, propose


def objectness_from_proposals(proposals: Proposals, weights: np.ndarray | None = None) -> np.ndarray:
    """float32 HxW in [0, 1]: the fraction of `proposals` covering each pixel, each proposal counting
    with its entry of `weights` (P, non-negative) when given. All zeros when there are no proposals or
    no weight."""
    if weights is None:
        weights = np.ones(len(proposals))
    weights = np.asarray(weights, np.float64)
    if weights.shape != (len(proposals),) or not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"proposal weights must be {len(proposals)} finite values >= 0, got shape {weights.shape}")
    total = weights.sum()
    if total <= 0:
        return np.zeros(proposals.superpixels.shape, np.float32)
    fraction = np.clip(weights @ proposals.membership / total, 0.0, 1.0)
    return fraction.astype(np.float32)[proposals.superpixels]


def pixel_objectness(image, **options) -> np.ndarray:
    """POS of `image` (uint8 HxWx3): float32 HxW in [0, 1]. `options` go to `propose`.

    With `boundary_method="learned"` the model file `boundary_model` gives the boundaries and, when it
    holds a proposal ranker, the proposals' weights (`learned_objectness`).
    An image with no proposals (a single colour: no boundaries) gets zeros everywhere.
    """
    if options.get("boundary_method") == "learned":
        from pixseg.objectness.learned import load_boundary_model

        if options.get("boundary_model") is None:
            raise ValueError("boundary method 'learned' needs boundary_model=<a file from `pixseg train-boundaries`>")
        options = dict(options)
        del options["boundary_method"]
        model = load_boundary_model(options.pop("boundary_model"))
        return learned_objectness(image, model, **options)[1]
    return objectness_from_proposals(propose(image, **options))


def learned_objectness(image, model, **options) -> tuple[Proposals, np.ndarray]:
    """The proposals on a learned model's boundaries (`options` go to `propose`) and their POS,
    weighted by the model's ranker when it has one."""
    from pixseg.objectness.ranking import proposal_weights

    image = as_rgb(image)
    boundaries = model.boundaries(image)
    proposals = propose(image, boundaries=boundaries, **options)
    weights = None if model.ranker is None else proposal_weights(model.ranker, proposals, image, boundaries)
    return proposals, objectness_from_proposals(proposals, weights)


def center_prior(shape: tuple[int, int], sigma: float = 0.25) -> np.ndarray:
    """The content-free baseline: a centred Gaussian, float32 HxW, 1 at the centre.

    `sigma` is a fraction of each side (the Gaussian stretches with the image's aspect ratio).
    Objectness from proposals earns its cost only where it beats this prior (docs/method/objectness.md).
    """
    height, width = shape
    if height < 1 or width < 1 or sigma <= 0:
        raise ValueError(f"center_prior needs a non-empty shape and sigma > 0, got {shape} and {sigma}")
    y = (np.arange(height) + 0.5) / height - 0.5
    x = (np.arange(width) + 0.5) / width - 0.5
    return np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma ** 2)).astype(np.float32)
