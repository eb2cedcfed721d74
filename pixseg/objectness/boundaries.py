"""Boundary maps for the proposals: texture-aware Lab colour gradients, a learned model, a user's map,
or OpenCV SED.

A boundary map is float32 HxW in [0, 1]: 0 inside smooth regions, towards 1 on strong boundaries.
GOP uses a trained structured-forest edge detector; the default here needs no training (see
`boundary_map`), "learned" uses a model trained on a dataset's own masks (`pixseg.objectness.learned`),
and the image checks shared by the objectness stages live here too.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.color import rgb2lab
from skimage.transform import resize

METHODS = ("gradient", "learned", "sed")


def as_rgb(image, name: str = "image") -> np.ndarray:
    """`image` as contiguous uint8 HxWx3.

    Grey HxW (or HxWx1) images are repeated to three channels and an alpha channel is dropped:
    proposals are computed from colour alone, so a transparent pixel keeps its stored colour.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must have dtype uint8 (0..255), got {image.dtype}; "
                         f"convert it first, e.g. (x * 255).round().astype(np.uint8) for floats in [0, 1]")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"{name} must be HxW, HxWx3 (RGB) or HxWx4 (RGBA), got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def check_boundaries(boundaries, shape: tuple[int, int]) -> np.ndarray:
    """A user-supplied boundary map as float32, checked against the image `shape` and [0, 1]."""
    boundaries = np.asarray(boundaries)
    if boundaries.shape != tuple(shape):
        raise ValueError(f"boundary map has shape {boundaries.shape}, expected the image's {tuple(shape)}")
    if not np.issubdtype(boundaries.dtype, np.floating):
        raise ValueError(f"boundary map must be a float array in [0, 1], got dtype {boundaries.dtype}")
    boundaries = boundaries.astype(np.float32)
    if not np.isfinite(boundaries).all() or boundaries.min() < 0 or boundaries.max() > 1:
        raise ValueError(f"boundary map values must be finite and in [0, 1], got "
                         f"{np.nanmin(boundaries):.3g}..{np.nanmax(boundaries):.3g}")
    return boundaries


def boundary_map(image, *, method: str = "gradient", sigmas: tuple[float, ...] = (1.0, 2.0),
                 coarse_sigma: float = 10.0, texture_sigma: float = 6.0, inhibition: float = 1.0,
                 noise_floor: float = 3.0, contrast: float = 32.0, model: str | None = None) -> np.ndarray:
    """Boundary strength of `image` (uint8 HxWx3), float32 HxW in [0, 1].

    method "gradient" (no training): colour edges in CIE Lab at the fine Gaussian scales `sigmas`,
    measured as the height of the colour step they would come from, are kept by two cues that
    separate object outlines from texture, averaged:
    - surround inhibition (Grigorescu et al. 2003): each edge loses `inhibition` times the mean edge
      strength around it, so isolated contours survive and the dense edges of a texture cancel;
    - coarse confirmation: an edge counts at most as much as the change, at scale `coarse_sigma`, of
      the local mean colour and of the local colour spread (texture energy, at `texture_sigma`);
      inside a uniform texture both are flat.
    The result is thinned to one-pixel ridges and mapped to [0, 1] by
    1 - exp(-max(height - noise_floor, 0) / contrast), in Lab units: steps below `noise_floor` (about
    the just-noticeable colour difference; sensor and JPEG noise) count as none, and a clean step of
    noise_floor + contrast gives 0.63. A single-colour image gives zeros.
    method "learned": the boundary model file `model` (`pixseg train-boundaries`).
    method "sed": OpenCV's structured edge detector with the model file `model` (needs cv2 with the
    ximgproc contrib module).
    """
    image = as_rgb(image)
    if method == "sed":
        return _structured_edges(image, model)
    if method == "learned":
        from pixseg.objectness.learned import load_boundary_model

        if model is None:
            raise ValueError("boundary method 'learned' needs model=<a file from `pixseg train-boundaries`>")
        return load_boundary_model(model).boundaries(image)
    if method != "gradient":
        raise ValueError(f"boundary method {method!r} is not one of {', '.join(METHODS)}")
    if model is not None:
        raise ValueError("a model file is only used by the methods 'learned' and 'sed'")
    if not sigmas or min(sigmas) <= 0 or coarse_sigma <= 0 or texture_sigma <= 0:
        raise ValueError(f"scales must be positive (pixels), got sigmas={sigmas}, "
                         f"coarse_sigma={coarse_sigma}, texture_sigma={texture_sigma}")
    if contrast <= 0 or inhibition < 0 or noise_floor < 0:
        raise ValueError(f"contrast must be positive, inhibition and noise_floor non-negative, got "
                         f"{contrast}, {inhibition} and {noise_floor}")
    lab = rgb2lab(image).astype(np.float32)
    channels = [lab[..., c] for c in range(3)]
    fine = np.zeros(lab.shape[:2], np.float32)
    inhibited = np.zeros_like(fine)
    tensor = np.zeros((3,) + fine.shape, np.float32)
    for sigma in sigmas:
        height, parts = _step_height(channels, sigma)
        fine += height / len(sigmas)
        surround = ndimage.gaussian_filter(height, 3 * sigma, mode="nearest")
        inhibited += np.maximum(height - inhibition * surround, 0) / len(sigmas)
        tensor += parts
    confirmed = np.minimum(fine, _coarse_step_height(lab, coarse_sigma, texture_sigma))
    angle = 0.5 * np.arctan2(2 * tensor[2], tensor[0] - tensor[1])
    thin = _non_maximum_suppression(0.5 * (inhibited + confirmed), angle)
    return (1.0 - np.exp(-np.maximum(thin - noise_floor, 0) / contrast)).astype(np.float32)


def _step_height(channels, sigma) -> tuple[np.ndarray, np.ndarray]:
    """Colour step height at scale `sigma` and the colour structure tensor (xx, yy, xy) of the channels."""
    # A unit step blurred by sigma has peak slope 1 / (sigma sqrt(2 pi)); scaling the derivative by
    # the inverse turns the response at any scale into the height of the step.
    scale = 0.5 * sigma * math.sqrt(2 * math.pi)
    tensor = np.zeros((3,) + channels[0].shape, np.float32)
    for channel in channels:
        smooth = ndimage.gaussian_filter(channel, sigma, mode="nearest")
        gx = np.zeros_like(smooth)
        gy = np.zeros_like(smooth)
        gx[:, 1:-1] = (smooth[:, 2:] - smooth[:, :-2]) * scale
        gy[1:-1, :] = (smooth[2:, :] - smooth[:-2, :]) * scale
        tensor[0] += gx * gx
        tensor[1] += gy * gy
        tensor[2] += gx * gy
    # Largest eigenvalue of the structure tensor: the squared rate of colour change along the
    # direction in which colour changes fastest (Di Zenzo), so hue changes count like lightness.
    xx, yy, xy = tensor
    root = np.sqrt((xx - yy) ** 2 + 4 * xy * xy)
    return np.sqrt(np.maximum(0.5 * (xx + yy + root), 0)), tensor


def _coarse_step_height(lab, coarse_sigma, texture_sigma) -> np.ndarray:
    """Step height at `coarse_sigma` of the local mean colour and twice the local colour spread
    (a two-colour texture of contrast C has spread C / 2), computed at reduced resolution."""
    # Everything here is smooth at the scale of texture_sigma, so a quarter of it in pixels loses
    # nothing and saves most of the cost.
    factor = max(1, int(min(coarse_sigma, texture_sigma) // 3))
    small = _downsample(lab, factor)
    features = [small[..., c] for c in range(3)]
    for c in range(3):
        mean = ndimage.gaussian_filter(small[..., c], texture_sigma / factor, mode="nearest")
        square = ndimage.gaussian_filter(small[..., c] ** 2, texture_sigma / factor, mode="nearest")
        features.append(2 * np.sqrt(np.maximum(square - mean * mean, 0)))
    height, _ = _step_height(features, coarse_sigma / factor)
    return resize(height, lab.shape[:2], order=1, mode="edge", anti_aliasing=False).astype(np.float32)


def _downsample(array, factor) -> np.ndarray:
    """Block means over factor x factor pixels (the last blocks padded by repeating the edge)."""
    if factor == 1:
        return array
    h, w = array.shape[:2]
    pad = ((0, -h % factor), (0, -w % factor)) + ((0, 0),) * (array.ndim - 2)
    array = np.pad(array, pad, mode="edge")
    blocks = array.reshape(array.shape[0] // factor, factor, array.shape[1] // factor, factor, *array.shape[2:])
    return blocks.mean(axis=(1, 3))


def _non_maximum_suppression(height: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Keep pixels that are maxima of `height` across the edge (direction quantised to 45 degrees)."""
    # Direction index 0: horizontal gradient, 1: diagonal down-right (rows grow downwards),
    # 2: vertical, 3: diagonal up-right.
    degrees = np.mod(np.degrees(angle), 180.0)
    direction = (np.floor((degrees + 22.5) / 45.0).astype(np.int8)) % 4
    padded = np.pad(height, 1, mode="constant")
    h, w = height.shape
    keep = np.zeros(height.shape, bool)
    for index, (oy, ox) in enumerate(((0, 1), (1, 1), (1, 0), (-1, 1))):
        ahead = padded[1 + oy:1 + oy + h, 1 + ox:1 + ox + w]
        behind = padded[1 - oy:1 - oy + h, 1 - ox:1 - ox + w]
        # >= on one side and > on the other keeps exactly one pixel of a two-pixel plateau.
        keep |= (direction == index) & (height >= ahead) & (height > behind)
    return np.where(keep, height, 0).astype(np.float32)


def _structured_edges(image: np.ndarray, model: str | None) -> np.ndarray:
    if model is None:
        raise ValueError("method='sed' needs model=<path to an OpenCV structured-edge model, .yml.gz>")
    try:
        import cv2
    except ImportError:
        raise ValueError("method='sed' requires OpenCV with the contrib modules (import cv2 failed); "
                         "install opencv-contrib-python or use method='gradient'") from None
    if not Path(model).is_file():
        raise ValueError(f"structured-edge model file {model} does not exist")
    detector = cv2.ximgproc.createStructuredEdgeDetection(str(model))
    edges = detector.detectEdges(image.astype(np.float32) / 255.0)
    return np.clip(np.asarray(edges, np.float32), 0.0, 1.0)
