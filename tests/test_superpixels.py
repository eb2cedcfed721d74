"""Superpixels: they tile the image in connected regions, about as many as asked, along boundaries."""

import numpy as np
import pytest
from skimage.measure import label as connected_components

from pixseg.objectness.boundaries import boundary_map
from pixseg.objectness.superpixels import hexagonal_seeds, superpixels


def two_region_image(height=96, width=128):
    rng = np.random.default_rng(0)
    image = np.empty((height, width, 3))
    image[:] = (60, 120, 70)
    yy, xx = np.mgrid[:height, :width]
    inside = (yy - 48) ** 2 / 30 ** 2 + (xx - 70) ** 2 / 40 ** 2 < 1
    image[inside] = (210, 80, 60)
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8), inside


def assert_valid_tiling(labels, shape):
    assert labels.shape == shape and labels.dtype == np.int32
    n = labels.max() + 1
    assert labels.min() == 0 and np.unique(labels).size == n  # labels 0..S-1, none missing
    components = connected_components(labels, background=-1, connectivity=1)
    assert components.max() == n  # every superpixel is one 4-connected region


@pytest.mark.parametrize("method", ["geodesic", "slic"])
def test_superpixels_tile_the_image_in_connected_regions_near_the_target_count(method):
    image, _ = two_region_image()
    labels = superpixels(image, boundary_map(image), 150, method=method)
    assert_valid_tiling(labels, image.shape[:2])
    assert 100 <= labels.max() + 1 <= 200


def test_geodesic_superpixels_follow_the_object_boundary():
    image, inside = two_region_image()
    labels = superpixels(image, boundary_map(image), 150)
    n = labels.max() + 1
    share = np.bincount(labels[inside], minlength=n) / np.bincount(labels.ravel(), minlength=n)
    # Nearly every superpixel lies on one side of the outline.
    assert np.mean((share < 0.1) | (share > 0.9)) > 0.95


def test_single_colour_image_gets_a_regular_tiling():
    image = np.full((60, 80, 3), 77, np.uint8)
    labels = superpixels(image, boundary_map(image), 48)
    assert_valid_tiling(labels, (60, 80))
    sizes = np.bincount(labels.ravel())
    assert 35 <= len(sizes) <= 60 and sizes.max() < 3 * sizes.mean()


def test_more_superpixels_than_pixels_allow_gives_a_documented_smaller_count():
    image = np.full((16, 16, 3), 10, np.uint8)
    labels = superpixels(image, np.zeros((16, 16), np.float32), 1000)
    assert_valid_tiling(labels, (16, 16))
    # Lattice spacing is at least 3 pixels: about 256 / (3 * 3 * sqrt(3) / 2) cells at most.
    assert labels.max() + 1 <= 40


def test_too_small_images_and_bad_options_are_refused():
    with pytest.raises(ValueError, match="too small"):
        superpixels(np.zeros((5, 40, 3), np.uint8), np.zeros((5, 40), np.float32))
    image = np.zeros((20, 20, 3), np.uint8)
    b = np.zeros((20, 20), np.float32)
    with pytest.raises(ValueError, match="not one of"):
        superpixels(image, b, method="watershed")
    with pytest.raises(ValueError, match="at least 1"):
        superpixels(image, b, 0)


def test_hexagonal_lattice_has_about_the_requested_cells():
    seeds = hexagonal_seeds((375, 500), 1000)
    assert 900 <= len(seeds) <= 1100
    assert seeds.min() >= 0 and seeds[:, 0].max() < 375 and seeds[:, 1].max() < 500
