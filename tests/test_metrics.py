import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, jaccard_score

from pixseg.metrics import ConfusionMatrix

VOID = 255


def test_seed_003_example_gives_miou_47_5():
    # Class 0: 0 correct pixels out of a union of 5; class 1: 95 correct out of a union of 100.
    target = np.array([0] * 3 + [1] * 2 + [1] * 95)
    pred = np.array([1] * 3 + [0] * 2 + [1] * 95)
    cm = ConfusionMatrix(2)
    cm.update(pred.reshape(10, 10), target.reshape(10, 10))
    scores = cm.compute()
    assert scores["iou"] == [0.0, pytest.approx(0.95)]
    assert scores["miou"] == pytest.approx(0.475)


def test_hand_computed_three_class_case_with_void():
    target = np.array([[0, 0, 0, 1], [1, 1, 2, VOID]])
    pred = np.array([[0, 0, 1, 1], [1, 2, 2, 0]])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    assert cm.matrix.tolist() == [[2, 1, 0], [0, 2, 1], [0, 0, 1]]
    s = cm.compute()
    assert s["pixel_acc"] == pytest.approx(5 / 7)
    assert s["mean_acc"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert s["iou"] == pytest.approx([2 / 3, 2 / 4, 1 / 2])
    assert s["miou"] == pytest.approx((2 / 3 + 1 / 2 + 1 / 2) / 3)
    assert s["fwiou"] == pytest.approx(3 / 7 * 2 / 3 + 3 / 7 * 1 / 2 + 1 / 7 * 1 / 2)
    assert s["fg_recall"] == pytest.approx(3 / 4)


def test_foreground_recall_counts_object_pixels_labelled_with_their_own_class():
    # Object pixels: 4 of class 1 (2 right, 1 as background, 1 as class 2), 2 of class 2 (1 right).
    target = np.array([1, 1, 1, 1, 2, 2, 0, 0])
    pred = np.array([1, 1, 0, 2, 2, 0, 1, 0])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    assert cm.compute()["fg_recall"] == pytest.approx(3 / 6)


def test_fg_recall_is_nan_without_object_pixels():
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 1]), np.array([0, 0]))
    assert math.isnan(cm.compute()["fg_recall"])


def test_class_absent_from_truth_and_prediction_has_nan_iou_and_is_left_out_of_miou():
    cm = ConfusionMatrix(4)
    cm.update(torch.tensor([0, 1, 1, 3]), torch.tensor([0, 1, 3, 3]))
    s = cm.compute()
    assert math.isnan(s["iou"][2])
    assert s["iou"][:2] + s["iou"][3:] == pytest.approx([1.0, 0.5, 0.5])
    assert s["miou"] == pytest.approx(2 / 3)
    assert s["mean_acc"] == pytest.approx((1 + 1 + 0.5) / 3)
    # A class predicted but absent from the ground truth has IoU 0, not NaN.
    cm.update(torch.tensor([2]), torch.tensor([0]))
    assert cm.compute()["iou"][2] == 0.0


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_matches_scikit_learn_on_random_data_with_void(kind):
    rng = np.random.default_rng(3)
    num_classes = 6
    cm = ConfusionMatrix(num_classes)
    all_pred, all_target = [], []
    for _ in range(3):
        target = rng.integers(0, num_classes, size=(2, 17, 13)).astype(np.uint8)
        target[rng.random(target.shape) < 0.15] = VOID
        pred = np.where(rng.random(target.shape) < 0.6, target, rng.integers(0, num_classes, target.shape))
        pred[target == VOID] = rng.integers(0, num_classes, (target == VOID).sum())
        if kind == "numpy":
            cm.update(pred, target)
        else:
            cm.update(torch.from_numpy(pred), torch.from_numpy(target))
        valid = target != VOID
        all_pred.append(pred[valid])
        all_target.append(target[valid])
    y_pred, y_true = np.concatenate(all_pred), np.concatenate(all_target)
    labels = list(range(num_classes))
    np.testing.assert_array_equal(cm.matrix.numpy(), confusion_matrix(y_true, y_pred, labels=labels))
    s = cm.compute()
    assert s["pixel_acc"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert s["mean_acc"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    iou = jaccard_score(y_true, y_pred, labels=labels, average=None)
    assert s["iou"] == pytest.approx(iou.tolist())
    assert s["miou"] == pytest.approx(iou.mean())
    share = np.bincount(y_true, minlength=num_classes) / y_true.size
    assert s["fwiou"] == pytest.approx((share * iou).sum())
    objects = y_true >= 1
    assert s["fg_recall"] == pytest.approx((y_pred[objects] == y_true[objects]).mean())
    assert all(isinstance(s[k], float) and 0 <= s[k] <= 1 for k in s if k != "iou")


def test_matrix_is_int64_on_the_first_tensors_device_and_reset_clears_it():
    cm = ConfusionMatrix(3)
    assert cm.matrix is None
    cm.update(torch.tensor([[0, 1]], dtype=torch.int32), torch.tensor([[0, 2]], dtype=torch.uint8))
    assert cm.matrix.dtype == torch.int64 and cm.matrix.device.type == "cpu"
    assert cm.matrix.sum() == 2
    cm.reset()
    assert cm.matrix.sum() == 0
    explicit = ConfusionMatrix(3, device="cpu")
    assert explicit.matrix.tolist() == [[0] * 3] * 3


def test_merge_adds_counts_of_another_matrix():
    a, b, both = ConfusionMatrix(3), ConfusionMatrix(3), ConfusionMatrix(3)
    a.update(np.array([0, 1, 2]), np.array([0, 1, 1]))
    b.update(np.array([2, 2]), np.array([2, 0]))
    both.update(np.array([0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0]))
    assert torch.equal(a.merge(b).matrix, both.matrix)
    with pytest.raises(ValueError, match="same num_classes"):
        a.merge(ConfusionMatrix(4))


def test_custom_ignore_index_and_non_contiguous_arrays():
    cm = ConfusionMatrix(2, ignore_index=-1)
    target = np.array([[0, -1, 1]])[:, ::-1]
    cm.update(np.array([[1, 1, 1]], dtype=">u2"), target)
    assert cm.matrix.tolist() == [[0, 1], [0, 1]]


@pytest.mark.parametrize("pred, target, message", [
    ([0, 3, 5], [0, 1, 1], r"pred labels \[3, 5\] are outside 0..2$"),
    ([0, 1, 1], [0, 7, VOID], r"target labels \[7\] are outside 0..2 and not the ignore index 255"),
    ([0, 1, 1], [-1, 1, 1], r"target labels \[-1\]"),
])
def test_out_of_range_labels_are_named(pred, target, message):
    with pytest.raises(ValueError, match=message):
        ConfusionMatrix(3).update(np.array(pred), np.array(target))


def test_bad_inputs_raise_clear_errors():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"pred shape \(2,\) does not match target shape \(3,\)"):
        cm.update(np.zeros(2, int), np.zeros(3, int))
    with pytest.raises(ValueError, match="integer labels, got dtype torch.float32"):
        cm.update(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer labels, got dtype float64"):
        cm.update(np.zeros(3), np.zeros(3, int))
    with pytest.raises(ValueError, match="tensor or numpy array"):
        cm.update([0, 1], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        cm.compute()
    cm.update(np.array([1]), np.array([VOID]))
    with pytest.raises(ValueError, match="empty"):
        cm.compute()
    with pytest.raises(ValueError, match="ignore_index 2 is a class label"):
        ConfusionMatrix(3, ignore_index=2)
    with pytest.raises(ValueError, match="num_classes"):
        ConfusionMatrix(0)


def test_region_matches_counts_regions_matched_one_to_one():
    from pixseg.metrics import RegionMatches

    target = np.array([[1, 1, 0, 0, 2],
                       [1, 1, 0, 0, 2],
                       [0, 0, 0, 255, 2],
                       [0, 0, 0, 0, 0]])
    pred = np.array([[1, 1, 0, 1, 2],    # the class-1 object and a one-pixel spurious class-1 blob
                     [1, 0, 0, 0, 2],    # class 2: 2 of its 3 pixels
                     [0, 0, 0, 2, 0],    # a class-2 pixel on void: in no region
                     [0, 2, 0, 0, 0]])   # a spurious class-2 blob
    regions = RegionMatches(3)
    regions.update(pred, target)
    scores = regions.compute()
    # Predicted: background 1 (8-connected around the void pixel), class 1: 2, class 2: 2 -> 5.
    # Ground truth: 3. Matched: background (IoU 10/14), the class-1 object (3/4), class 2 (2/3).
    assert (scores["regions_predicted"], scores["regions_truth"], scores["regions_matched"]) == (5, 3, 3)
    assert scores["region_precision"] == pytest.approx(3 / 5) and scores["region_recall"] == 1.0
    regions.update(np.zeros((2, 2), dtype=int), np.full((2, 2), 255))
    assert regions.compute()["regions_predicted"] == 5  # an all-void image adds no region
