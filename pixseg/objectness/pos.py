"""Pixel objectness (POS): the fraction of object proposals that contain each pixel, and its baseline.

pos_j = g_j / G (docs/method/objectness.md): g_j proposals contain pixel j out of G in the image. Counts are
taken per superpixel (every pixel of a superpixel is in the same proposals), never over P full masks.
"""

from __future__ import annotations

import numpy as np

from pixseg.objectness.proposals import Proposals, propose


def objectness_from_proposals(proposals: Proposals) -> np.ndarray:
    """float32 HxW in [0, 1]; all zeros when there are no proposals (G = 0)."""
    if len(proposals) == 0:
        return np.zeros(proposals.superpixels.shape, np.float32)
    fraction = proposals.membership.sum(axis=0) / len(proposals)
    return fraction.astype(np.float32)[proposals.superpixels]


def pixel_objectness(image, **options) -> np.ndarray:
    """POS of `image` (uint8 HxWx3): float32 HxW in [0, 1]. `options` go to `propose`.

    An image with no proposals (a single colour: no boundaries) gets zeros everywhere.
    """
    return objectness_from_proposals(propose(image, **options))


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
