"""A streaming confusion matrix over label maps and the segmentation scores derived from it.

Scores are computed from one matrix accumulated over a whole split, never averaged per image.
Class 0 is background; classes 1..C-1 are objects.
"""

import numpy as np
import torch


def _as_labels(value, name: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        if not np.issubdtype(value.dtype, np.integer):
            raise ValueError(f"{name} must hold integer labels, got dtype {value.dtype}")
        # int64 is what update counts in anyway; the copy also handles flipped views and foreign byte order.
        value = torch.from_numpy(np.ascontiguousarray(value, dtype=np.int64))
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor or numpy array of labels, got {type(value).__name__}")
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer labels, got dtype {value.dtype}")
    return value


class ConfusionMatrix:
    """Counts of (ground truth, prediction) label pairs, accumulated with ``update`` over many images.

    ``matrix[t, p]`` is the number of pixels of ground-truth class t predicted as class p, an int64 tensor
    kept on ``device``, or else on the device of the first tensor passed to ``update``. Pixels whose
    ground truth is ``ignore_index`` are skipped whatever their prediction.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, device=None):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise ValueError(f"ignore_index must be an integer, got {ignore_index!r}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} is a class label (0..{num_classes - 1}); "
                             "it must lie outside that range")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.device = None if device is None else torch.device(device)
        self.matrix = None
        self.reset()

    def reset(self) -> None:
        """Forget every pixel counted so far."""
        shape = (self.num_classes, self.num_classes)
        self.matrix = None if self.device is None else torch.zeros(shape, dtype=torch.int64, device=self.device)

    def _zeros_on(self, device) -> None:
        self.device = torch.device(device)
        self.reset()

    def update(self, pred, target) -> None:
        """Count one batch: ``pred`` and ``target`` are label maps of the same shape (tensors or arrays)."""
        pred = _as_labels(pred, "pred")
        target = _as_labels(target, "target")
        if pred.shape != target.shape:
            raise ValueError(f"pred shape {tuple(pred.shape)} does not match target shape {tuple(target.shape)}")
        if self.matrix is None:
            self._zeros_on(target.device)
        pred = pred.to(self.device, torch.int64).reshape(-1)
        target = target.to(self.device, torch.int64).reshape(-1)
        valid = target != self.ignore_index
        pred, target = pred[valid], target[valid]
        c = self.num_classes
        for name, labels in (("target", target), ("pred", pred)):
            bad = (labels < 0) | (labels >= c)
            if bad.any():
                values = torch.unique(labels[bad])[:10].tolist()
                void = f" and not the ignore index {self.ignore_index}" if name == "target" else ""
                raise ValueError(f"{name} labels {values} are outside 0..{c - 1}{void}")
        self.matrix += torch.bincount(target * c + pred, minlength=c * c).reshape(c, c)

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        """Add another matrix's counts to this one (for example from a parallel worker); returns self."""
        if not isinstance(other, ConfusionMatrix) or (other.num_classes, other.ignore_index) != (
                self.num_classes, self.ignore_index):
            raise ValueError("can only merge a ConfusionMatrix with the same num_classes and ignore_index")
        if other.matrix is not None:
            if self.matrix is None:
                self._zeros_on(other.device)
            self.matrix += other.matrix.to(self.device)
        return self

    def compute(self) -> dict:
        """Scores as Python floats in 0..1 (NaN where undefined).

        pixel_acc: correct pixels / all pixels. mean_acc: per-class accuracy averaged over the classes in
        the ground truth. iou: per class TP / (TP + FP + FN), NaN for a class absent from both ground
        truth and prediction. miou: mean of iou over the classes that are not NaN. fwiou: iou weighted by
        each class's share of ground-truth pixels. fg_recall: object pixels (ground truth >= 1) labelled
        with their correct class / all object pixels, NaN when there are none.
        """
        if self.matrix is None or int(self.matrix.sum()) == 0:
            raise ValueError("the confusion matrix is empty: update it with at least one non-void pixel")
        m = self.matrix.double().cpu().numpy()
        tp = np.diag(m)
        truth, predicted = m.sum(axis=1), m.sum(axis=0)
        total = m.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            class_acc = np.where(truth > 0, tp / truth, np.nan)
            union = truth + predicted - tp
            iou = np.where(union > 0, tp / union, np.nan)
        object_pixels = truth[1:].sum()
        return {
            "pixel_acc": float(tp.sum() / total),
            "mean_acc": float(np.nanmean(class_acc)),
            "iou": [float(v) for v in iou],
            "miou": float(np.nanmean(iou)),
            "fwiou": float(np.nansum(truth / total * iou)),
            "fg_recall": float(tp[1:].sum() / object_pixels) if object_pixels > 0 else float("nan"),
        }


class RegionMatches:
    """How many connected regions of the prediction match one of the ground truth, over many images.

    A region is an 8-connected set of pixels of one class; a predicted region matches a ground-truth
    region of the same class when their IoU exceeds 0.5, which makes the matching one to one.
    Pixels whose ground truth is ``ignore_index`` belong to no region of either map (VOC's void
    outlines split them as they split the ground truth's). Pixel scores barely move when a
    prediction scatters small spurious blobs or breaks an object into pieces; region precision
    drops with each such piece.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.predicted = self.truth = self.matched = 0

    def update(self, pred, target) -> None:
        """Count one image: ``pred`` and ``target`` are H x W label maps (arrays or tensors)."""
        from scipy import ndimage

        pred, target = np.asarray(pred), np.asarray(target)
        if pred.shape != target.shape or pred.ndim != 2:
            raise ValueError(f"pred {pred.shape} and target {target.shape} must be H x W label maps of one shape")
        valid = target != self.ignore_index
        eight = np.ones((3, 3), dtype=bool)
        for label in range(self.num_classes):
            mine, count_p = ndimage.label((pred == label) & valid, eight)
            theirs, count_t = ndimage.label(target == label, eight)
            self.predicted += count_p
            self.truth += count_t
            if not count_p or not count_t:
                continue
            size_p = np.bincount(mine.ravel(), minlength=count_p + 1)
            size_t = np.bincount(theirs.ravel(), minlength=count_t + 1)
            both = (mine > 0) & (theirs > 0)
            pairs = np.bincount(mine[both] * (count_t + 1) + theirs[both], minlength=(count_p + 1) * (count_t + 1))
            overlap = pairs.reshape(count_p + 1, count_t + 1)
            union = size_p[:, None] + size_t[None, :] - overlap
            self.matched += int((overlap[1:, 1:] > 0.5 * union[1:, 1:]).sum())

    def compute(self) -> dict:
        """region_precision: matched / predicted regions; region_recall: matched / ground-truth
        regions (NaN where there are none); the three counts."""
        def ratio(count):
            return self.matched / count if count else float("nan")

        return {"region_precision": ratio(self.predicted), "region_recall": ratio(self.truth),
                "regions_predicted": self.predicted, "regions_truth": self.truth, "regions_matched": self.matched}
