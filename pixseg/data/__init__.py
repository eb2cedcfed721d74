"""Datasets as they ship on disk, by name (`create_dataset`), their metadata and their transforms."""

from pixseg.data.base import SegmentationDataset, read_image
from pixseg.data.datasets import DATASETS, create_dataset, dataset_options, detect_dataset
from pixseg.data.palette import VOC_CLASSES, read_label_png, save_label_png, voc_colormap
from pixseg.data.synthetic import make_synthetic_voc
from pixseg.data.transforms import EvalTransform, TrainTransform, normalize_image
from pixseg.data.voc import VOCSegmentation

__all__ = [
    "DATASETS", "VOC_CLASSES", "EvalTransform", "SegmentationDataset", "TrainTransform", "VOCSegmentation",
    "create_dataset", "dataset_options", "detect_dataset", "make_synthetic_voc", "normalize_image", "read_image",
    "read_label_png", "save_label_png", "voc_colormap",
]
