"""The dataset a config's `data` section names, opened by split."""

from __future__ import annotations

from pixseg.data import create_dataset


def open_split(data, split: str, transform=None):
    """Split `split` of the dataset `data` (a DataConfig) describes: data.dataset at data.root
    (detected from the layout when data.dataset is None), with data.num_classes and data.options."""
    options = dict(data.options)
    if data.num_classes is not None:
        if options.setdefault("num_classes", data.num_classes) != data.num_classes:
            raise ValueError(f"data.num_classes = {data.num_classes} and data.options.num_classes = "
                             f"{options['num_classes']} disagree")
    return create_dataset(data.dataset, data.root, split, transform, **options)


def resolved(data, dataset):
    """`data` with the dataset's name and class count filled in, as a checkpoint records them."""
    import dataclasses

    return dataclasses.replace(data, dataset=dataset.name, num_classes=dataset.num_classes)


def check_model_classes(dataset, num_classes: int, checkpoint) -> None:
    """A model scores a dataset only when it predicts the dataset's classes."""
    if dataset.num_classes != num_classes:
        raise ValueError(f"{checkpoint} predicts {num_classes} classes, but {dataset.name} at {dataset.root} "
                         f"has {dataset.num_classes}")
