"""Class frequency statistics of a segmentation dataset and the loss weights derived from them.

``class_frequencies`` returns an int64 array of shape (2, C):

- row ``PIXELS``: the number of pixels labelled with each class over the dataset;
- row ``IMAGE_PIXELS``: the number of non-void pixels of the images in which each class occurs, the
  denominator of Eigen & Fergus's class frequency (ICCV 2015).

A class that never occurs in the labels gets weight 0 from both weightings: it is never a target, so
its weight never multiplies a loss term, and 0 keeps the weights finite (1 / 0 would not be).
"""

import numpy as np
from tqdm import tqdm

PIXELS, IMAGE_PIXELS = 0, 1


def _item_name(dataset, index: int) -> str:
    ids = getattr(dataset, "ids", None)
    return f"item {index} (id {ids[index]})" if ids is not None else f"item {index}"


def class_frequencies(dataset, num_classes: int, progress: bool = True, ignore_index: int = 255) -> np.ndarray:
    """Count label pixels over a dataset whose items are ``(image, label)``, labels as stored.

    Pixels labelled ``ignore_index`` (void) are skipped; any other label outside 0..C-1 is an error that
    names the item.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    counts = np.zeros((2, num_classes), dtype=np.int64)
    for index in tqdm(range(len(dataset)), desc="class frequencies", unit="img", disable=not progress,
                      dynamic_ncols=True):
        label = np.asarray(dataset[index][1])
        if not np.issubdtype(label.dtype, np.integer):
            raise ValueError(f"{_item_name(dataset, index)}: label has dtype {label.dtype}, expected integers")
        valid = label[label != ignore_index]
        bad = valid[(valid < 0) | (valid >= num_classes)]
        if bad.size:
            raise ValueError(f"{_item_name(dataset, index)}: label values {np.unique(bad)[:10].tolist()} are "
                             f"outside 0..{num_classes - 1} and not the ignore index {ignore_index}")
        per_class = np.bincount(valid.astype(np.int64, copy=False), minlength=num_classes)
        counts[PIXELS] += per_class
        counts[IMAGE_PIXELS, per_class > 0] += valid.size
    return counts


def _check_frequencies(freq) -> np.ndarray:
    freq = np.asarray(freq)
    if freq.ndim != 2 or freq.shape[0] != 2 or not np.issubdtype(freq.dtype, np.number):
        raise ValueError(f"class frequencies must be the (2, C) array class_frequencies returns, "
                         f"got shape {freq.shape} and dtype {freq.dtype}")
    if (freq < 0).any() or (freq[PIXELS] > freq[IMAGE_PIXELS]).any():
        raise ValueError("class frequencies must be counts >= 0 with pixels <= image pixels for each class")
    if not (freq[PIXELS] > 0).any():
        raise ValueError("class frequencies are all zero: the dataset has no labelled (non-void) pixel")
    return freq.astype(np.float64)


def inverse_frequency(freq) -> np.ndarray:
    """w_c proportional to 1 / (share of all labelled pixels in class c), scaled so that the average
    weight per labelled pixel is 1 (a weighted loss then keeps the scale of the unweighted one)."""
    pixels = _check_frequencies(freq)[PIXELS]
    present = pixels > 0
    weights = np.zeros_like(pixels)
    weights[present] = pixels.sum() / (present.sum() * pixels[present])
    return weights


def median_frequency(freq) -> np.ndarray:
    """Median frequency balancing (Eigen & Fergus): w_c = median(f) / f_c, with f_c the pixels of class c
    divided by the pixels of the images in which c occurs and the median over the classes that occur."""
    freq = _check_frequencies(freq)
    present = freq[PIXELS] > 0
    f = freq[PIXELS, present] / freq[IMAGE_PIXELS, present]
    weights = np.zeros(freq.shape[1])
    weights[present] = np.median(f) / f
    return weights


METHODS = {"inverse_frequency": inverse_frequency, "median_frequency": median_frequency}
