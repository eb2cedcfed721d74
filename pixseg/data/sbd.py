"""SBD (Hariharan et al.'s semantic boundaries set) and VOC-aug, the 10,582 images FCN and DeepLab
train on: VOC 2012 train + SBD train + SBD val, minus VOC 2012 val."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixseg.data.base import (SegmentationDataset, apply_table, files_for_ids, read_split_file, require_folders,
                              shown)
from pixseg.data.palette import VOC_CLASSES, read_label_png
from pixseg.data.voc import VOCSegmentation


def read_sbd_mat(path) -> np.ndarray:
    """The class map of an SBD cls/*.mat file (GTcls.Segmentation: 0 background, 1..20 VOC classes)."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as error:  # scipy raises several types for truncated or foreign files
        raise ValueError(f"label file {path} is not a readable .mat file ({type(error).__name__}: {error})") from None
    try:
        segmentation = np.asarray(mat["GTcls"][0]["Segmentation"][0])
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"label file {path} has no GTcls.Segmentation; expected an SBD cls/*.mat file") from None
    if segmentation.ndim != 2 or not np.issubdtype(segmentation.dtype, np.integer):
        raise ValueError(f"label file {path}: GTcls.Segmentation is {segmentation.dtype} of shape "
                         f"{segmentation.shape}; expected an integer H x W class map")
    return segmentation


class SBD(SegmentationDataset):
    """benchmark_RELEASE/dataset: img/<id>.jpg, cls/<id>.mat, train.txt / val.txt."""

    name = "sbd"
    layout = "img/<id>.jpg, cls/<id>.mat (GTcls.Segmentation), train.txt / val.txt"
    markers = ("img", "cls")
    subfolders = ("dataset", "benchmark_RELEASE/dataset")

    def __init__(self, root, split: str = "train", transform=None):
        root = self.resolve_root(root)
        super().__init__(root, split, transform, VOC_CLASSES)
        self.split_file = root / f"{split}.txt"
        self.ids = read_split_file(self.split_file, split)
        self.image_paths = files_for_ids(self.ids, root / "img", ".jpg", self.split_file)
        self.label_paths = files_for_ids(self.ids, root / "cls", ".mat", self.split_file)

    def read_label(self, path: Path) -> np.ndarray:
        return apply_table(read_sbd_mat(path), self.table, f"label {path}", self.label_values)


class VOCAug(SegmentationDataset):
    """train: VOC 2012 train + SBD train + SBD val - VOC 2012 val (10,582 images with the full sets);
    val: VOC 2012 val. VOC's own annotations win where an image has both."""

    name = "voc_aug"
    layout = ("a VOC 2012 folder (VOCdevkit/VOC2012) and an SBD folder (benchmark_RELEASE/dataset) side by side, "
              "or the VOC folder with the option sbd_root")

    def __init__(self, root, split: str = "train", transform=None, sbd_root=None):
        voc_root, sbd_root = self._roots(root, sbd_root)
        super().__init__(voc_root, split, transform, VOC_CLASSES)
        self.check_split(("train", "val"))
        if split == "val":
            voc = VOCSegmentation(voc_root, "val")
            self.ids, self.image_paths, self.label_paths = voc.ids, voc.image_paths, voc.label_paths
            return
        voc_splits = voc_root / "ImageSets" / "Segmentation"
        voc_train = read_split_file(voc_splits / "train.txt", "train")
        voc_val = read_split_file(voc_splits / "val.txt", "val")
        sbd = [i for name in ("train", "val") for i in read_split_file(sbd_root / f"{name}.txt", name)]
        self.ids = sorted(set(voc_train) | set(sbd) - set(voc_val))
        from_voc = set(voc_train)
        voc_images = {p.name for p in (voc_root / "JPEGImages").iterdir()}
        for image_id in self.ids:
            in_voc = f"{image_id}.jpg" in voc_images
            self.image_paths.append((voc_root / "JPEGImages" if in_voc else sbd_root / "img") / f"{image_id}.jpg")
            self.label_paths.append(voc_root / "SegmentationClass" / f"{image_id}.png" if image_id in from_voc
                                    else sbd_root / "cls" / f"{image_id}.mat")
        missing = [str(p) for p in (*self.image_paths, *self.label_paths) if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"voc_aug: {len(missing)} listed file(s) do not exist: {shown(missing)}")

    @classmethod
    def _roots(cls, root, sbd_root) -> tuple[Path, Path]:
        root = Path(root)
        require_folders(root, (root,), cls.layout)
        voc_root = VOCSegmentation.find_root(root)
        sbd = SBD.resolve_root(sbd_root) if sbd_root is not None else SBD.find_root(root)
        if voc_root is None or sbd is None:
            raise FileNotFoundError(f"dataset folder {root}: voc_aug expects {cls.layout}; found "
                                    f"{'no' if voc_root is None else 'a'} VOC folder and "
                                    f"{'no' if sbd is None else 'an'} SBD folder")
        return voc_root, sbd

    @classmethod
    def find_root(cls, root) -> Path | None:
        root = Path(root)
        return root if VOCSegmentation.find_root(root) and SBD.find_root(root) else None

    def read_label(self, path: Path) -> np.ndarray:
        stored = read_sbd_mat(path) if path.suffix == ".mat" else read_label_png(path)
        return apply_table(stored, self.table, f"label {path}", self.label_values)
