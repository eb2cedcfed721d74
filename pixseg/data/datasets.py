"""Datasets by name: `create_dataset(name, root, split, transform, **options)` and the DATASETS dict."""

from __future__ import annotations

import inspect

from pixseg.data.ade20k import ADE20K
from pixseg.data.base import dataset_folder
from pixseg.data.camvid import CamVid
from pixseg.data.cityscapes import Cityscapes
from pixseg.data.folder import FolderDataset
from pixseg.data.pascal_context import PascalContext
from pixseg.data.sbd import SBD, VOCAug
from pixseg.data.stanford_background import StanfordBackground
from pixseg.data.voc import VOCSegmentation

# Name -> reader class(root, split, transform, *options). Readers take the dataset folder as its
# archive unpacks and split names train / val (/ test), and carry the metadata (num_classes,
# classes, palette, ignore_index).
DATASETS = {
    "voc": VOCSegmentation,
    "sbd": SBD,
    "voc_aug": VOCAug,
    "cityscapes": Cityscapes,
    "ade20k": ADE20K,
    "pascal_context": PascalContext,
    "stanford_background": StanfordBackground,
    "camvid": CamVid,
    "folder": FolderDataset,
}
_POSITIONAL = ("self", "root", "split", "transform")


def dataset_options(name: str) -> dict:
    """The options dataset `name` accepts beyond root, split and transform, with their defaults."""
    parameters = inspect.signature(DATASETS[name].__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.name not in _POSITIONAL}


def detect_dataset(root) -> str:
    """The name of the one layout `root` matches; no match or several is an error saying what was looked for."""
    root = dataset_folder(root)
    matches = [name for name, reader in DATASETS.items() if reader.find_root(root) is not None]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(f"dataset folder {root} matches the layouts of {', '.join(matches)}; "
                         f"name one with --dataset (or data.dataset in a config)")
    looked_for = "; ".join(f"{name}: {reader.layout}" for name, reader in DATASETS.items())
    raise ValueError(f"dataset folder {root} matches no known layout; looked for {looked_for}")


def create_dataset(name: str | None, root, split: str = "train", transform=None, **options):
    """Split `split` of dataset `name` (detected from the layout of `root` when None).

    `num_classes`, when given and not None, must agree with a dataset whose classes are fixed; the
    others (voc, pascal_context, folder) take it as an option.
    """
    if root is None:
        raise ValueError("no dataset given: pass --data DIR (or set data.root in the config)")
    if name is None:
        name = detect_dataset(root)
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of: {', '.join(DATASETS)}")
    valid = dataset_options(name)
    num_classes = options.pop("num_classes", None)
    if num_classes is not None and "num_classes" in valid:
        options["num_classes"] = num_classes
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option {', '.join(unknown)} for dataset {name!r}; valid options: "
                         f"{', '.join(valid) or 'none'}")
    dataset = DATASETS[name](root, split, transform, **options)
    if num_classes is not None and num_classes != dataset.num_classes:
        raise ValueError(f"num_classes = {num_classes}, but {name} has {dataset.num_classes} classes")
    return dataset
