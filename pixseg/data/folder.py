"""Bring your own data: images in one folder, masks in another, matched by file stem."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixseg.data.base import VOID, SegmentationDataset, read_split_file, require_folders
from pixseg.io import open_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
CLASSES_FILE = "classes.txt"


def _by_stem(folder: Path, suffixes) -> dict:
    files = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in suffixes and path.is_file():
            if path.stem in files:
                raise ValueError(f"{files[path.stem]} and {path} share the stem {path.stem!r}; "
                                 f"masks are matched to images by stem")
            files[path.stem] = path
    return files


class FolderDataset(SegmentationDataset):
    """`root`/images/ (jpg, png, ...) and `root`/masks/<stem>.png (palette or grey PNG of class
    indices, 255 = ignore), matched by stem.

    A split is either a list of stems (`root`/<split>.txt or `root`/splits/<split>.txt) or
    subfolders images/<split>/ and masks/<split>/. Class names come from `root`/classes.txt (one per
    line, in index order) or, without that file, from `num_classes` (named class_0, class_1, ...).
    Colours are those of the masks when they are palette PNGs, else VOC's.
    """

    name = "folder"
    layout = (f"images/*, masks/*.png (same stems), {CLASSES_FILE} or the option num_classes, and "
              "<split>.txt / splits/<split>.txt or images/<split>/ + masks/<split>/")
    markers = ("images", "masks")

    def __init__(self, root, split: str = "train", transform=None, num_classes: int | None = None,
                 images: str = "images", masks: str = "masks"):
        root = Path(root)
        require_folders(root, (root, root / images, root / masks), self.layout)
        super().__init__(root, split, transform, self._classes(root, num_classes))
        image_dir, mask_dir = root / images, root / masks
        lists = [root / f"{split}.txt", root / "splits" / f"{split}.txt"]
        split_file = next((path for path in lists if path.is_file()), None)
        if (image_dir / split).is_dir() and split_file is None:
            image_dir, mask_dir = image_dir / split, mask_dir / split
            require_folders(root, (mask_dir,), self.layout)
        elif split_file is None:
            looked = ", ".join(str(p) for p in (*lists, image_dir / split))
            raise FileNotFoundError(f"folder dataset {root} has no split {split!r}: looked for {looked}")
        image_files, mask_files = _by_stem(image_dir, IMAGE_SUFFIXES), _by_stem(mask_dir, (".png",))
        if split_file is not None:
            stems = read_split_file(split_file, split)
            unknown = [s for s in stems if s not in image_files or s not in mask_files]
            if unknown:
                raise FileNotFoundError(f"split file {split_file} names {len(unknown)} stem(s) without both an "
                                        f"image in {image_dir} and a mask in {mask_dir}: {', '.join(unknown[:5])}")
            image_files = {s: image_files[s] for s in stems}
            mask_files = {s: mask_files[s] for s in stems}
        self.set_pairs(image_files, mask_files, image_dir, mask_dir)
        self.palette = self._mask_palette(self.label_paths[0], self.palette)

    def _mask_palette(self, path: Path, default: np.ndarray) -> np.ndarray:
        """The class colours of palette-PNG masks (those of the first mask), else `default`."""
        mask = open_image(path, "label file")
        colours = mask.getpalette() if mask.mode == "P" else None
        if not colours or len(colours) < 3 * self.num_classes:
            return default
        return np.array(colours[:3 * self.num_classes], dtype=np.uint8).reshape(-1, 3)

    @staticmethod
    def _classes(root: Path, num_classes: int | None) -> tuple[str, ...]:
        path = root / CLASSES_FILE
        if path.is_file():
            classes = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
            if not 2 <= len(classes) <= VOID:
                raise ValueError(f"{path} names {len(classes)} classes; expected 2..{VOID}, one per line")
            if num_classes is not None and num_classes != len(classes):
                raise ValueError(f"num_classes = {num_classes}, but {path} names {len(classes)} classes")
            return classes
        if num_classes is None:
            raise ValueError(f"folder dataset {root}: no {CLASSES_FILE} (one class name per line); write one "
                             f"or give the option num_classes")
        if not 2 <= num_classes <= VOID:
            raise ValueError(f"num_classes must be in 2..{VOID}, got {num_classes}")
        return tuple(f"class_{k}" for k in range(num_classes))
