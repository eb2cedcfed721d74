"""What every dataset reader shares: its metadata, its (image, label) file pairs and the checks on each item."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixseg.data.palette import read_label_png, voc_colormap
from pixseg.io import open_image

VOID = 255

# Modes whose pixel values Pillow's RGB conversion would clip rather than rescale.
_UNSUPPORTED_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")


def read_image(path) -> np.ndarray:
    """Read an image file as uint8 H×W×3 RGB; grayscale, palette and RGBA (alpha dropped) converted."""
    image = open_image(path)
    if image.mode in _UNSUPPORTED_MODES:
        raise ValueError(f"image file {path} has {image.mode!r} pixels (16-bit or float); "
                         f"expected an 8-bit RGB, grayscale, palette or RGBA image")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.array(image, dtype=np.uint8)


def lookup_table(mapping: dict[int, int]) -> np.ndarray:
    """A 256-entry table from stored label values to train ids: the given pairs, 255 stays void and
    every other value is -1 (not a value the format may hold)."""
    table = np.full(256, -1, dtype=np.int16)
    for stored, train_id in mapping.items():
        table[stored] = train_id
    table[VOID] = VOID
    return table


def apply_table(stored, table: np.ndarray, source: str, accepted: str) -> np.ndarray:
    """Stored label values -> uint8 train ids through a `lookup_table`; values the table does not
    accept are an error naming them and `source` (e.g. "label /path/x.png")."""
    stored = np.asarray(stored)
    outside = (stored < 0) | (stored > VOID)
    if not outside.any():
        mapped = table[stored.astype(np.uint8)]
        outside = mapped < 0
        if not outside.any():
            return mapped.astype(np.uint8)
    raise ValueError(f"{source} has values {np.unique(stored[outside])[:10].tolist()} outside {accepted}")


def shown(names, limit: int = 5) -> str:
    names = [str(n) for n in names]
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def dataset_folder(root) -> Path:
    """`root` as a Path; a missing folder, or a file given in its place, is an error naming it."""
    root = Path(root)
    if root.is_file():
        raise ValueError(f"dataset folder {root} is a file; expected the folder a dataset unpacks into")
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    return root


def require_folders(root: Path, folders, layout: str) -> None:
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"dataset folder {folder} does not exist; expected {layout} under {root}")


def read_split_file(path: Path, split: str) -> list[str]:
    if not path.is_file():
        others = sorted(p.stem for p in path.parent.glob("*.txt")) if path.parent.is_dir() else []
        raise FileNotFoundError(f"split file {path} does not exist (split {split!r}; "
                                f"split files there: {', '.join(others) or 'none'})")
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"split file {path} lists no image ids")
    return ids


def files_for_ids(ids, folder: Path, suffix: str, split_file: Path) -> list[Path]:
    """The file of each id in `folder`; every missing one is named in the error."""
    # One directory listing instead of one stat per id: real datasets have tens of thousands of files.
    present = {entry.name for entry in folder.iterdir()}
    missing = [i for i in ids if i + suffix not in present]
    if missing:
        raise FileNotFoundError(f"split file {split_file} names {len(missing)} id(s) with no {suffix} "
                                f"file in {folder}: {shown(missing)}")
    return [folder / f"{i}{suffix}" for i in ids]


def pair_by_key(images: dict, labels: dict, image_dir: Path, label_dir: Path) -> list[str]:
    """The keys present on both sides, sorted; an image without its label (or the reverse) is an error."""
    for have, other, folder, what in ((images, labels, label_dir, "label"), (labels, images, image_dir, "image")):
        orphans = sorted(set(have) - set(other))
        if orphans:
            raise FileNotFoundError(f"{len(orphans)} file(s) have no {what} in {folder}: "
                                    f"{shown(str(have[k]) for k in orphans)}")
    if not images:
        raise FileNotFoundError(f"no images in {image_dir}")
    return sorted(images)


class SegmentationDataset:
    """One split of a dataset: (image file, label file) pairs and the dataset's metadata.

    Subclasses name the dataset and its layout (`name`, `layout`, `markers`: folders that identify
    it, `subfolders`: where its archive nests the root), call `__init__` with the class names and
    palette, fill `ids`, `image_paths`, `label_paths`, and say how a label file becomes train ids
    (`read_label`; by default a PNG through `self.table`, see `lookup_table`).

    Items are `(image uint8 H×W×3, label uint8 H×W)` with 255 = ignore, or whatever
    `transform(image, label)` returns when a transform is given.
    """

    name = ""
    layout = ""
    markers: tuple[str, ...] = ()
    subfolders: tuple[str, ...] = ()
    ignore_index = VOID

    def __init__(self, root: Path, split: str, transform, classes, palette=None):
        self.root, self.split, self.transform = root, split, transform
        self.classes = tuple(classes)
        self.palette = np.asarray(voc_colormap(len(self.classes)) if palette is None else palette, np.uint8)
        self.ids: list[str] = []
        self.image_paths: list[Path] = []
        self.label_paths: list[Path] = []
        self.table = lookup_table({k: k for k in range(self.num_classes)})
        self.label_values = f"0..{self.num_classes - 1} and {VOID} (void)"

    def check_split(self, splits) -> None:
        if self.split not in splits:
            raise ValueError(f"{self.name} split {self.split!r}: expected one of {', '.join(splits)}")

    def set_pairs(self, images: dict, labels: dict, image_dir: Path, label_dir: Path) -> None:
        """Items from {key: image path} and {key: label path}, sorted by key; see pair_by_key."""
        self.ids = pair_by_key(images, labels, image_dir, label_dir)
        self.image_paths = [images[k] for k in self.ids]
        self.label_paths = [labels[k] for k in self.ids]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def find_root(cls, root) -> Path | None:
        """`root` or the folder inside it that holds this dataset's layout, or None."""
        root = Path(root)
        for candidate in (root, *(root / sub for sub in cls.subfolders)):
            if cls.markers and all((candidate / marker).is_dir() for marker in cls.markers):
                return candidate
        return None

    @classmethod
    def resolve_root(cls, root) -> Path:
        """Like find_root, but a folder without the layout is an error naming what is missing."""
        root = dataset_folder(root)
        found = cls.find_root(root)
        if found is None:
            missing = [m for m in cls.markers if not (root / m).is_dir()]
            raise FileNotFoundError(f"dataset folder {root / missing[0]} does not exist; {cls.name} expects "
                                    f"{cls.layout} under {root}")
        return found

    def read_label(self, path: Path) -> np.ndarray:
        return apply_table(read_label_png(path), self.table, f"label {path}", self.label_values)

    def metadata(self) -> dict:
        """The metadata as plain values (JSON and checkpoint friendly)."""
        return {"dataset": self.name, "num_classes": self.num_classes, "classes": list(self.classes),
                "palette": self.palette.tolist(), "ignore_index": self.ignore_index}

    def image_path(self, index: int) -> Path:
        return self.image_paths[index]

    def label_path(self, index: int) -> Path:
        return self.label_paths[index]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        image_path, label_path = self.image_paths[index], self.label_paths[index]
        image = read_image(image_path)
        label = self.read_label(label_path)
        if label.shape != image.shape[:2]:
            raise ValueError(f"label {label_path} is {label.shape[0]}x{label.shape[1]} but image "
                             f"{image_path} is {image.shape[0]}x{image.shape[1]} (HxW)")
        if self.transform is None:
            return image, label
        return self.transform(image, label)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, {len(self)} images)"
