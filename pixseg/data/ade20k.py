"""ADE20K as the SceneParsing challenge ships it (ADEChallengeData2016): 150 classes, 0 = "other"."""

from __future__ import annotations

from pixseg.data.base import SegmentationDataset, lookup_table, require_folders

# The 150 classes of annotation values 1..150, in order (short names of objectInfo150).
ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass", "clock", "flag",
)
FOLDERS = {"train": "training", "val": "validation"}


class ADE20K(SegmentationDataset):
    """images/{training,validation}/*.jpg with annotations/.../*.png; value 0 (other) is ignored
    and 1..150 become train ids 0..149."""

    name = "ade20k"
    layout = "images/{training,validation}/*.jpg, annotations/{training,validation}/*.png"
    markers = ("images", "annotations")
    subfolders = ("ADEChallengeData2016",)

    def __init__(self, root, split: str = "train", transform=None):
        root = self.resolve_root(root)
        super().__init__(root, split, transform, ADE20K_CLASSES)
        self.check_split(FOLDERS)
        image_dir, label_dir = root / "images" / FOLDERS[split], root / "annotations" / FOLDERS[split]
        require_folders(root, (image_dir, label_dir), self.layout)
        images = {p.stem: p for p in image_dir.glob("*.jpg")}
        labels = {p.stem: p for p in label_dir.glob("*.png")}
        self.set_pairs(images, labels, image_dir, label_dir)
        self.table = lookup_table({0: 255, **{k: k - 1 for k in range(1, len(ADE20K_CLASSES) + 1)}})
        self.label_values = "0 (other) .. 150"
