"""The Stanford Background dataset (iccv09Data): 715 outdoor scenes, 8 classes as integer text matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixseg.data.base import VOID, SegmentationDataset, pair_by_key

STANFORD_BACKGROUND_CLASSES = ("sky", "tree", "road", "grass", "water", "building", "mountain", "foreground object")
REGIONS_SUFFIX = ".regions.txt"
# The release has no split; these are the sizes commonly used (572 + 143 = 715), here as fractions
# so a partial copy splits in the same proportion.
TRAIN_SIZE, TOTAL_SIZE = 572, 715


def read_regions(path) -> np.ndarray:
    """A *.regions.txt file: one row of whitespace-separated integers per image row."""
    try:
        values = np.loadtxt(path, dtype=np.int64, ndmin=2)
    except (OSError, ValueError) as error:
        raise ValueError(f"label file {path} is not a readable integer matrix ({error})") from None
    if values.size == 0:
        raise ValueError(f"label file {path} is empty; expected one row of integers per image row")
    return values


class StanfordBackground(SegmentationDataset):
    """images/<id>.jpg with labels/<id>.regions.txt (0..7, negative = unknown, ignored).

    The split is drawn once from `seed`: a fixed 572 / 143 (train / val) of the 715 images.
    """

    name = "stanford_background"
    layout = f"images/<id>.jpg, labels/<id>{REGIONS_SUFFIX}"
    markers = ("images", "labels")
    subfolders = ("iccv09Data",)

    def __init__(self, root, split: str = "train", transform=None, seed: int = 0):
        root = self.resolve_root(root)
        super().__init__(root, split, transform, STANFORD_BACKGROUND_CLASSES)
        self.check_split(("train", "val"))
        image_dir, label_dir = root / "images", root / "labels"
        images = {p.stem: p for p in image_dir.glob("*.jpg")}
        labels = {p.name[:-len(REGIONS_SUFFIX)]: p for p in label_dir.glob(f"*{REGIONS_SUFFIX}")}
        ids = pair_by_key(images, labels, image_dir, label_dir)
        order = np.random.default_rng(seed).permutation(len(ids))
        train_count = round(len(ids) * TRAIN_SIZE / TOTAL_SIZE)
        chosen = order[:train_count] if split == "train" else order[train_count:]
        self.ids = [ids[i] for i in sorted(chosen)]
        self.image_paths = [images[k] for k in self.ids]
        self.label_paths = [labels[k] for k in self.ids]
        self.label_values = "0..7 and negative values (unknown)"

    def read_label(self, path: Path) -> np.ndarray:
        regions = read_regions(path)
        bad = np.unique(regions[regions >= self.num_classes])
        if bad.size:
            raise ValueError(f"label {path} has values {bad[:10].tolist()} outside {self.label_values}")
        return np.where(regions < 0, VOID, regions).astype(np.uint8)
