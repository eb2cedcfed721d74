"""Pictures of segmentations: colour label maps, overlays on the image, and side-by-side panels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pixseg.data.palette import full_colormap, save_atomic
from pixseg.io import atomic_path


def colorize(labels: np.ndarray, palette=None) -> np.ndarray:
    """uint8 HxWx3 picture of an integer label map in a dataset's class colours (`palette`, C x 3;
    VOC colours when None); void 255 is cream."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be HxW, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"labels must lie in 0..255, got values {labels.min()}..{labels.max()}")
    return full_colormap(palette)[labels.astype(np.uint8)]


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.55, palette=None,
            background: bool = True) -> np.ndarray:
    """The image with every labelled pixel tinted by its class colour; with `background` (class 0
    is background, as in VOC) class 0 is left untinted too."""
    if image.shape[:2] != labels.shape:
        raise ValueError(f"image {image.shape[:2]} and labels {labels.shape} differ in size")
    tinted = image.astype(np.float32)
    mask = (labels > 0 if background else labels >= 0) & (labels != 255)
    tinted[mask] = (1 - alpha) * tinted[mask] + alpha * colorize(labels, palette)[mask]
    return tinted.round().astype(np.uint8)


def heatmap(values: np.ndarray, image: np.ndarray | None = None, alpha: float = 0.6) -> np.ndarray:
    """A [0, 1] map drawn with matplotlib's 'inferno' colour map, blended over `image` if given."""
    from matplotlib import colormaps

    colours = colormaps["inferno"](np.clip(values, 0.0, 1.0))[..., :3] * 255
    if image is not None:
        colours = (1 - alpha) * image.astype(np.float32) + alpha * colours
    return colours.round().astype(np.uint8)


def save_png(path: str | Path, picture: np.ndarray) -> None:
    save_atomic(Image.fromarray(picture), path, format="PNG")


def save_panel(path: str | Path, rows: list[list[np.ndarray]], titles: list[str]) -> None:
    """Save a grid of same-height pictures, one row per example and one titled column per view."""
    from matplotlib.figure import Figure  # a figure of its own: pyplot's global backend is left alone

    if not rows or any(len(row) != len(titles) for row in rows):
        raise ValueError(f"every row needs {len(titles)} pictures, one per title")
    height, width = rows[0][0].shape[:2]
    figure = Figure(figsize=(len(titles) * 2.2 * width / height, len(rows) * 2.2 + 0.3))
    axes = figure.subplots(len(rows), len(titles), squeeze=False)
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            axis = axes[r][c]
            axis.imshow(picture, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if r == 0:
                axis.set_title(titles[c], fontsize=9)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
