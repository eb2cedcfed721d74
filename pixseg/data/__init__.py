"""Datasets as they ship on disk (Pascal VOC layout, real or synthetic) and their transforms."""

from pixseg.data.palette import VOC_CLASSES, read_label_png, save_label_png, voc_colormap
from pixseg.data.synthetic import make_synthetic_voc
from pixseg.data.transforms import EvalTransform, TrainTransform, normalize_image
from pixseg.data.voc import VOCSegmentation, read_image

__all__ = [
    "VOC_CLASSES", "EvalTransform", "TrainTransform", "VOCSegmentation", "make_synthetic_voc",
    "normalize_image", "read_image", "read_label_png", "save_label_png", "voc_colormap",
]
