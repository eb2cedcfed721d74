"""Pascal Context in the widely used converted layout (a VOC2010 folder with SegmentationClassContext/)."""

from __future__ import annotations

from pathlib import Path

from pixseg.data.base import SegmentationDataset, files_for_ids, lookup_table, read_split_file

# Value 0 is background; 1..59 the context classes (VOC's 20 objects among them).
PASCAL_CONTEXT_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "table",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor", "bag", "bed",
    "bench", "book", "building", "cabinet", "ceiling", "cloth", "computer", "cup", "door", "fence", "floor",
    "flower", "food", "grass", "ground", "keyboard", "light", "mountain", "mouse", "curtain", "platform", "sign",
    "plate", "road", "rock", "shelves", "sidewalk", "sky", "snow", "bedclothes", "track", "tree", "truck", "wall",
    "water", "window", "wood",
)


class PascalContext(SegmentationDataset):
    """JPEGImages/, SegmentationClassContext/*.png (0..59), ImageSets/SegmentationContext/<split>.txt.

    num_classes=60 keeps background as class 0; num_classes=59 ignores it and the 59 classes
    become 0..58.
    """

    name = "pascal_context"
    layout = ("JPEGImages/<id>.jpg, SegmentationClassContext/<id>.png, "
              "ImageSets/SegmentationContext/<split>.txt")
    markers = ("JPEGImages", "SegmentationClassContext", "ImageSets/SegmentationContext")
    subfolders = ("VOC2010", "VOCdevkit/VOC2010")

    def __init__(self, root, split: str = "train", transform=None, num_classes: int = 60):
        if num_classes not in (59, 60):
            raise ValueError(f"pascal_context num_classes must be 60 (background counted) or 59 "
                             f"(background ignored), got {num_classes!r}")
        root = self.resolve_root(root)
        super().__init__(root, split, transform, PASCAL_CONTEXT_CLASSES[60 - num_classes:])
        self.split_file: Path = root / "ImageSets" / "SegmentationContext" / f"{split}.txt"
        self.ids = read_split_file(self.split_file, split)
        self.image_paths = files_for_ids(self.ids, root / "JPEGImages", ".jpg", self.split_file)
        self.label_paths = files_for_ids(self.ids, root / "SegmentationClassContext", ".png", self.split_file)
        if num_classes == 59:
            self.table = lookup_table({0: 255, **{k: k - 1 for k in range(1, 60)}})
        self.label_values = "0..59 and 255"
