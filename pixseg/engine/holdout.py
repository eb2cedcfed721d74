"""A fixed held-out part of a training split, for choosing CRF parameters without touching val."""

from __future__ import annotations

import numpy as np


class DatasetView:
    """The items of `dataset` at `indices`, with its metadata."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        self.name, self.num_classes, self.classes = dataset.name, dataset.num_classes, dataset.classes
        self.palette, self.ignore_index = dataset.palette, dataset.ignore_index
        self.ids = [dataset.ids[i] for i in self.indices]

    def metadata(self) -> dict:
        return self.dataset.metadata()

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[self.indices[index]]


def split_holdout(dataset, fraction: float):
    """(fit, held_out): a fraction of the split, drawn with a fixed seed so every run agrees."""
    if not 0 <= fraction < 1:
        raise ValueError(f"data.holdout = {fraction!r}; expected a fraction in [0, 1)")
    count = int(round(fraction * len(dataset)))
    if fraction > 0 and count == 0:
        count = 1
    order = np.random.default_rng(0).permutation(len(dataset))
    held = np.sort(order[:count])
    fit = np.sort(order[count:])
    return DatasetView(dataset, fit), DatasetView(dataset, held)
