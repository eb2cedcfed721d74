"""Cityscapes as its archives unpack (leftImg8bit/, gtFine/), and its official label table.

The table, class names and colours are public here so that every reader of Cityscapes files (the
fine annotations below, the video sequences) maps ids the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixseg.data.base import SegmentationDataset, apply_table, lookup_table, require_folders
from pixseg.data.palette import read_label_png

# The 19 evaluated classes in train-id order, with the colours of the official label table.
CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)
CITYSCAPES_PALETTE = np.array([
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
], dtype=np.uint8)
# Label id (the values of *_gtFine_labelIds.png, 0..33) -> train id; ids not listed are ignored (255).
LABEL_ID_TO_TRAIN_ID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                        25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
NUM_LABEL_IDS = 34
LABEL_ID_TABLE = lookup_table({i: LABEL_ID_TO_TRAIN_ID.get(i, 255) for i in range(NUM_LABEL_IDS)})
LABEL_IDS_ACCEPTED = f"the Cityscapes label ids 0..{NUM_LABEL_IDS - 1} and 255"
TRAIN_ID_TABLE = lookup_table({k: k for k in range(len(CITYSCAPES_CLASSES))})

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_ID_SUFFIX = "_gtFine_labelIds.png"
TRAIN_ID_SUFFIX = "_gtFine_labelTrainIds.png"


def label_ids_to_train_ids(label_ids: np.ndarray, source: str = "Cityscapes labels") -> np.ndarray:
    """Cityscapes label ids (0..33, as in *_labelIds.png) -> uint8 train ids 0..18, 255 for the rest."""
    return apply_table(label_ids, LABEL_ID_TABLE, source, LABEL_IDS_ACCEPTED)


def _files(folder: Path, suffix: str) -> dict:
    """{city/name-without-suffix: path} for every file of the form <city>/<name><suffix>."""
    return {f"{path.parent.name}/{path.name[:-len(suffix)]}": path for path in folder.glob(f"*/*{suffix}")}


class Cityscapes(SegmentationDataset):
    """Fine annotations: labelIds mapped to the 19 train ids, or labelTrainIds read as they are."""

    name = "cityscapes"
    layout = (f"leftImg8bit/<split>/<city>/*{IMAGE_SUFFIX}, gtFine/<split>/<city>/*{LABEL_ID_SUFFIX} "
              f"(or *{TRAIN_ID_SUFFIX})")
    markers = ("leftImg8bit", "gtFine")
    subfolders = ("cityscapes", "Cityscapes")

    def __init__(self, root, split: str = "train", transform=None):
        root = self.resolve_root(root)
        super().__init__(root, split, transform, CITYSCAPES_CLASSES, CITYSCAPES_PALETTE)
        self.check_split(("train", "val", "test"))
        image_dir, label_dir = root / "leftImg8bit" / split, root / "gtFine" / split
        require_folders(root, (image_dir, label_dir), self.layout)
        images = _files(image_dir, IMAGE_SUFFIX)
        labels = {**_files(label_dir, TRAIN_ID_SUFFIX), **_files(label_dir, LABEL_ID_SUFFIX)}
        for key in sorted(set(images) - set(labels)):
            stem = Path(key).name
            raise FileNotFoundError(f"image {images[key]} has no label: neither {stem}{LABEL_ID_SUFFIX} nor "
                                    f"{stem}{TRAIN_ID_SUFFIX} is in {label_dir / Path(key).parent}")
        self.set_pairs(images, labels, image_dir, label_dir)

    def read_label(self, path: Path) -> np.ndarray:
        if path.name.endswith(LABEL_ID_SUFFIX):
            return label_ids_to_train_ids(read_label_png(path), f"label {path}")
        return apply_table(read_label_png(path), TRAIN_ID_TABLE, f"label {path}",
                           "the Cityscapes train ids 0..18 and 255")
