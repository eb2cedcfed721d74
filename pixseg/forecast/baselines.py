"""Forecasts without learning: copy the last segmentation, or move it along the optical flow."""

from __future__ import annotations

import numpy as np


def copy_last(labels: np.ndarray) -> np.ndarray:
    """The last of T×H×W input label maps, as the forecast for any horizon."""
    return np.array(labels[-1])


def _gray(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) @ np.array([0.2125, 0.7154, 0.0721], np.float32) / 255


def estimate_motion(previous_image: np.ndarray, last_image: np.ndarray) -> np.ndarray:
    """Per-pixel motion (2×H×W: rows, columns) of the last image's content since the previous one,
    by TV-L1 optical flow (scikit-image)."""
    from skimage.registration import optical_flow_tvl1

    # last(x) ~ previous(x + flow): content moved by -flow between the two images.
    return -optical_flow_tvl1(_gray(last_image), _gray(previous_image))


def flow_forecast(last_labels: np.ndarray, motion: np.ndarray, ratio: float) -> np.ndarray:
    """Move `last_labels` along `motion` extrapolated at constant velocity: `ratio` is the horizon
    over the frames the motion was measured across.

    Every pixel's label is carried to where its motion takes it; pixels nothing lands on (uncovered
    background) take the label found by following the motion backwards from them.
    """
    motion = ratio * motion
    h, w = last_labels.shape
    rows, cols = np.mgrid[:h, :w]
    back_r = np.clip(np.rint(rows - motion[0]), 0, h - 1).astype(np.intp)
    back_c = np.clip(np.rint(cols - motion[1]), 0, w - 1).astype(np.intp)
    forecast = last_labels[back_r, back_c]
    to_r, to_c = np.rint(rows + motion[0]).astype(np.intp), np.rint(cols + motion[1]).astype(np.intp)
    inside = (to_r >= 0) & (to_r < h) & (to_c >= 0) & (to_c < w)
    # Where several pixels land on one, the fastest wins: moving objects pass in front of the
    # slowly panning background far more often than behind it.
    order = np.argsort(np.hypot(motion[0], motion[1])[inside], kind="stable")
    forecast[to_r[inside][order], to_c[inside][order]] = last_labels[inside][order]
    return forecast
