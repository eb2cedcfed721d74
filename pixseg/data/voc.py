"""Read segmentation datasets in the Pascal VOC 2012 layout (the real VOCdevkit and pixseg's synthetic)."""

from pathlib import Path

import numpy as np

from pixseg.data.palette import VOC_CLASSES, read_label_png
from pixseg.io import open_image

VOID = 255

# Modes whose pixel values Pillow's RGB conversion would clip rather than rescale.
_UNSUPPORTED_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")


def read_image(path) -> np.ndarray:
    """Read an image file as uint8 H×W×3 RGB; grayscale, palette and RGBA (alpha dropped) converted."""
    image = open_image(path)
    if image.mode in _UNSUPPORTED_MODES:
        raise ValueError(f"image file {path} has {image.mode!r} pixels (16-bit or float); "
                         f"expected an 8-bit RGB, grayscale, palette or RGBA image")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.array(image, dtype=np.uint8)


class VOCSegmentation:
    """A split of a VOC-layout folder: `root` holds JPEGImages/, SegmentationClass/, ImageSets/.

    Items are `(image uint8 H×W×3, label uint8 H×W)` as stored (255 = void), or whatever
    `transform(image, label)` returns when a transform is given.
    """

    def __init__(self, root, split: str = "train", transform=None, num_classes: int = 21):
        if not 2 <= num_classes <= VOID:
            raise ValueError(f"num_classes must be in 2..{VOID}, got {num_classes}")
        self.root = Path(root)
        self.split = split
        self.transform = transform
        self.num_classes = num_classes
        self.classes = (VOC_CLASSES if num_classes == len(VOC_CLASSES)
                        else tuple(f"class_{k}" for k in range(num_classes)))
        self.image_dir = self.root / "JPEGImages"
        self.label_dir = self.root / "SegmentationClass"
        self.split_file = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
        for folder in (self.root, self.image_dir, self.label_dir):
            if not folder.is_dir():
                raise FileNotFoundError(f"dataset folder {folder} does not exist; expected the VOC "
                                        f"layout (JPEGImages/, SegmentationClass/, ImageSets/Segmentation/)")
        if not self.split_file.is_file():
            raise FileNotFoundError(f"split file {self.split_file} does not exist (split {split!r})")
        self.ids = self._read_ids()
        self._check_files_exist()

    def _read_ids(self) -> list[str]:
        ids = [line.strip() for line in self.split_file.read_text().splitlines() if line.strip()]
        if not ids:
            raise ValueError(f"split file {self.split_file} lists no image ids")
        return ids

    def _check_files_exist(self) -> None:
        # One directory listing per folder instead of one stat per id: real VOC has 17k JPEGs.
        for folder, suffix in ((self.image_dir, ".jpg"), (self.label_dir, ".png")):
            present = {entry.name for entry in folder.iterdir()}
            missing = [i for i in self.ids if i + suffix not in present]
            if missing:
                shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
                raise FileNotFoundError(f"split file {self.split_file} names {len(missing)} id(s) "
                                        f"with no {suffix} file in {folder}: {shown}")

    def image_path(self, index: int) -> Path:
        return self.image_dir / f"{self.ids[index]}.jpg"

    def label_path(self, index: int) -> Path:
        return self.label_dir / f"{self.ids[index]}.png"

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        image_path, label_path = self.image_path(index), self.label_path(index)
        image = read_image(image_path)
        label = read_label_png(label_path)
        if label.shape != image.shape[:2]:
            raise ValueError(f"label {label_path} is {label.shape[0]}x{label.shape[1]} but image "
                             f"{image_path} is {image.shape[0]}x{image.shape[1]} (HxW)")
        counts = np.bincount(label.ravel(), minlength=VOID + 1)
        bad = [int(v) for v in np.flatnonzero(counts) if self.num_classes <= v != VOID]
        if bad:
            raise ValueError(f"label {label_path} has values {bad} outside 0..{self.num_classes - 1} "
                             f"and {VOID} (void)")
        if self.transform is None:
            return image, label
        return self.transform(image, label)

    def __repr__(self) -> str:
        return f"VOCSegmentation(root={str(self.root)!r}, split={self.split!r}, {len(self)} images)"
