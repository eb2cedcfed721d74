"""The Pascal VOC class names and colour map, and label maps stored as palette PNGs."""

from pathlib import Path

import numpy as np
from PIL import Image

from pixseg.io import atomic_path, open_image

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


def voc_colormap(n: int = 256) -> np.ndarray:
    """The VOC colour map: entry i spreads the bits of i over R, G, B from the high bit down."""
    if not 1 <= n <= 256:
        raise ValueError(f"colour map size must be in 1..256, got {n}")
    index = np.arange(n)
    cmap = np.zeros((n, 3), dtype=np.int64)
    for bit in range(8):
        for channel in range(3):
            cmap[:, channel] |= ((index >> (3 * bit + channel)) & 1) << (7 - bit)
    return cmap.astype(np.uint8)


def full_colormap(palette=None) -> np.ndarray:
    """256 colours: a dataset's palette (C x 3) for its classes, the VOC colours for the values above
    (so 255, void, stays cream)."""
    cmap = voc_colormap(256)
    if palette is not None:
        palette = np.asarray(palette)
        if palette.ndim != 2 or palette.shape[1] != 3 or not 1 <= len(palette) <= 255:
            raise ValueError(f"a palette must be C x 3 RGB colours with 1 <= C <= 255, got shape {palette.shape}")
        cmap[:len(palette)] = palette
    return cmap


def save_atomic(image: Image.Image, path, **params) -> None:
    """Save a PIL image so that `path` is either absent, the old file, or the complete new file."""
    path = Path(path)
    image_format = params.pop("format", None) or _format_of(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format=image_format, **params)


def _format_of(path: Path) -> str:
    formats = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
    if path.suffix.lower() not in formats:
        raise ValueError(f"{path}: cannot tell the image format from the suffix {path.suffix!r}; "
                         f"expected one of {sorted(formats)}")
    return formats[path.suffix.lower()]


def save_label_png(path, labels, palette=None) -> None:
    """Write an integer H×W label map (values 0..255, 255 = void) as a palette PNG, in the colours of
    `palette` (a dataset's C x 3 class colours; VOC colours when None)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.size == 0:
        raise ValueError(f"{path}: a label map must be a non-empty H×W array, got shape {labels.shape}")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(f"{path}: a label map must hold integers, got dtype {labels.dtype}")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high > 255:
        raise ValueError(f"{path}: label values must be in 0..255, got values in {low}..{high}")
    image = Image.fromarray(labels.astype(np.uint8))
    image.putpalette(full_colormap(palette).ravel().tolist())
    save_atomic(image, path, format="PNG")


def read_label_png(path) -> np.ndarray:
    """Read a label map stored as a palette ('P') or grayscale ('L') PNG: uint8 H×W of indices."""
    image = open_image(path, "label file")
    if image.mode not in ("P", "L"):
        raise ValueError(f"label file {path} has image mode {image.mode!r}; expected a palette ('P') "
                         f"or grayscale ('L') PNG whose pixel values are class indices")
    return np.array(image, dtype=np.uint8)
