"""Pascal VOC 2012 as VOCdevkit unpacks it (and pixseg's synthetic set, which copies the layout)."""

from pathlib import Path

from pixseg.data.base import VOID, SegmentationDataset, files_for_ids, read_split_file, require_folders
from pixseg.data.palette import VOC_CLASSES


class VOCSegmentation(SegmentationDataset):
    """A split of a VOC-layout folder: `root` holds JPEGImages/, SegmentationClass/, ImageSets/.

    Labels are palette PNGs of class indices (255 = the void band). `num_classes` other than 21
    reads the same layout with other classes (named class_0, class_1, ...).
    """

    name = "voc"
    layout = "JPEGImages/<id>.jpg, SegmentationClass/<id>.png, ImageSets/Segmentation/<split>.txt"
    markers = ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation")
    subfolders = ("VOC2012", "VOCdevkit/VOC2012")

    def __init__(self, root, split: str = "train", transform=None, num_classes: int | None = None):
        num_classes = len(VOC_CLASSES) if num_classes is None else num_classes
        if not 2 <= num_classes <= VOID:
            raise ValueError(f"num_classes must be in 2..{VOID}, got {num_classes}")
        classes = VOC_CLASSES if num_classes == len(VOC_CLASSES) else tuple(f"class_{k}" for k in range(num_classes))
        root = Path(root)
        found = self.find_root(root) if root.is_dir() else None
        root = found or root
        super().__init__(root, split, transform, classes)
        self.image_dir = root / "JPEGImages"
        self.label_dir = root / "SegmentationClass"
        self.split_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        require_folders(root, (root, self.image_dir, self.label_dir), f"the VOC layout ({self.layout})")
        self.ids = read_split_file(self.split_file, split)
        self.image_paths = files_for_ids(self.ids, self.image_dir, ".jpg", self.split_file)
        self.label_paths = files_for_ids(self.ids, self.label_dir, ".png", self.split_file)
