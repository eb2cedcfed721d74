"""Geodesic object proposals: they find a clear object, and each step behaves as documented."""

import numpy as np
import pytest
from scipy import ndimage

from pixseg.objectness.proposals import Proposals, critical_level_sets, propose, suppress_duplicates


def object_image(height=96, width=128, seed=0):
    """A red ellipse on a green, noisy background, and its mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    inside = (yy - 50) ** 2 / 28 ** 2 + (xx - 72) ** 2 / 36 ** 2 < 1
    image = np.empty((height, width, 3))
    image[:] = (70, 130, 60)
    image[inside] = (200, 60, 50)
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8), inside


def best_iou(masks, target):
    intersection = (masks & target).sum(axis=(1, 2))
    union = (masks | target).sum(axis=(1, 2))
    return (intersection / union).max()


def test_a_clear_object_is_proposed():
    image, inside = object_image()
    proposals = propose(image, n_superpixels=300)
    masks = proposals.masks()
    assert masks.shape == (len(proposals),) + inside.shape and masks.dtype == bool
    assert best_iou(masks, inside) > 0.8


def test_membership_and_masks_agree():
    image, _ = object_image()
    proposals = propose(image, n_superpixels=200)
    assert proposals.superpixels.dtype == np.int32
    assert proposals.membership.shape == (len(proposals), proposals.superpixels.max() + 1)
    masks = proposals.masks()
    for p in range(0, len(proposals), 7):
        expected = np.isin(proposals.superpixels, np.flatnonzero(proposals.membership[p]))
        np.testing.assert_array_equal(masks[p], expected)


def test_a_user_boundary_map_is_followed():
    # A uniform image has nothing to find, but a given outline of a square makes one object.
    image = np.full((80, 80, 3), 128, np.uint8)
    square = np.zeros((80, 80), bool)
    square[20:50, 25:60] = True
    outline = square & ~ndimage.binary_erosion(square)
    proposals = propose(image, boundaries=outline.astype(np.float32), n_superpixels=200)
    assert best_iou(proposals.masks(), square) > 0.8


def test_single_colour_image_has_no_proposals():
    proposals = propose(np.full((64, 64, 3), 200, np.uint8), n_superpixels=100)
    assert len(proposals) == 0 and proposals.masks().shape == (0, 64, 64)


def test_rgba_and_rgb_give_the_same_proposals():
    image, _ = object_image()
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2)
    a, b = propose(image, n_superpixels=150), propose(rgba, n_superpixels=150)
    np.testing.assert_array_equal(a.membership, b.membership)


def test_critical_level_sets_cut_at_the_largest_gaps():
    distances = np.array([[0.0, 0.1, 0.3, 1.2, 1.5, 3.3]])  # gaps 0.1, 0.2, 0.9, 0.3, 1.8
    areas = np.ones(6, np.int64)
    sets = critical_level_sets(distances, areas, 2, min_area=0, max_area=6, min_gap=0.0)
    assert sets.tolist() == [[True, True, True, True, True, False], [True, True, True, False, False, False]]
    limited = critical_level_sets(distances, areas, 2, min_area=0, max_area=4, min_gap=0.0)
    assert limited.sum(axis=1).tolist() == [3, 4]  # the five-superpixel set is too large
    assert critical_level_sets(distances, areas, 2, min_area=4, max_area=6, min_gap=0.0).sum(axis=1).tolist() == [5, 4]
    strong = critical_level_sets(distances, areas, 6, min_area=0, max_area=6, min_gap=0.25)
    assert strong.sum(axis=1).tolist() == [5, 3, 4]  # weak gaps are never cuts


def test_level_sets_follow_each_rows_order():
    distances = np.array([[5.0, 0.0, 4.0, 1.0]])
    sets = critical_level_sets(distances, np.ones(4, np.int64), 1, 0, 4, 0.0)
    assert sets.tolist() == [[False, True, False, True]]


def test_suppression_removes_duplicates_and_near_duplicates_keeping_the_first():
    areas = np.array([10, 10, 10, 1, 50])
    membership = np.array([[1, 1, 1, 0, 0],
                           [1, 1, 1, 0, 0],   # exact duplicate
                           [1, 1, 1, 1, 0],   # IoU 30 / 31 with the first
                           [0, 0, 0, 0, 1],
                           [1, 0, 0, 0, 1]], bool)
    kept = suppress_duplicates(membership, areas, 0.85)
    np.testing.assert_array_equal(kept, membership[[0, 3, 4]])
    assert len(suppress_duplicates(membership, areas, 0.99)) == 4


@pytest.mark.parametrize("options, message", [
    ({"n_seeds": 0}, "n_seeds"),
    ({"max_iou": 1.5}, "max_iou"),
    ({"backgrounds": ("none", "sky")}, "backgrounds"),
    ({"min_size": 0.8, "max_size": 0.5}, "sizes"),
    ({"min_gap": -1}, "min_gap"),
])
def test_bad_options_are_refused(options, message):
    image, _ = object_image(48, 48)
    with pytest.raises(ValueError, match=message):
        propose(image, n_superpixels=50, **options)


def test_proposals_object_reports_its_length():
    labels = np.array([[0, 1], [1, 2]], np.int32)
    proposals = Proposals(superpixels=labels, membership=np.array([[True, False, True]]))
    assert len(proposals) == 1
    np.testing.assert_array_equal(proposals.masks()[0], [[True, False], [False, True]])
