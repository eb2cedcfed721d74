"""Pixel objectness: fractions of proposals, higher on the object, and the centred-Gaussian baseline."""

import numpy as np
import pytest

from pixseg.objectness import Proposals, center_prior, objectness_from_proposals, pixel_objectness


def object_image(height=96, width=128, seed=1):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    inside = (yy - 40) ** 2 / 24 ** 2 + (xx - 80) ** 2 / 30 ** 2 < 1
    image = np.empty((height, width, 3))
    image[:] = (90, 140, 190)
    image[inside] = (230, 190, 40)
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8), inside


def test_pos_lies_in_0_1_and_is_higher_on_the_object():
    image, inside = object_image()
    pos = pixel_objectness(image, n_superpixels=300)
    assert pos.dtype == np.float32 and pos.shape == inside.shape
    assert pos.min() >= 0 and pos.max() <= 1
    assert pos[inside].mean() > 2 * pos[~inside].mean()


def test_pos_is_the_fraction_of_proposals_containing_each_pixel():
    labels = np.array([[0, 0, 1],
                       [2, 2, 1]], np.int32)
    membership = np.array([[True, True, False],
                           [True, False, False],
                           [False, False, False],
                           [True, False, True]])
    pos = objectness_from_proposals(Proposals(superpixels=labels, membership=membership))
    np.testing.assert_allclose(pos, [[0.75, 0.75, 0.25], [0.25, 0.25, 0.25]])
    np.testing.assert_allclose(pos, Proposals(labels, membership).masks().mean(axis=0))


def test_no_proposals_give_zero_objectness():
    labels = np.zeros((3, 4), np.int32)
    pos = objectness_from_proposals(Proposals(superpixels=labels, membership=np.zeros((0, 1), bool)))
    assert pos.dtype == np.float32 and not pos.any()
    assert not pixel_objectness(np.full((40, 40, 3), 9, np.uint8), n_superpixels=50).any()


def test_center_prior_peaks_in_the_middle_and_is_symmetric():
    prior = center_prior((41, 60))
    assert prior.dtype == np.float32 and prior.shape == (41, 60)
    assert prior.max() <= 1 and prior.min() > 0
    assert np.unravel_index(prior.argmax(), prior.shape)[0] == 20
    np.testing.assert_allclose(prior, prior[::-1, ::-1], rtol=1e-6)
    assert prior[20, 0] < prior[20, 15] < prior[20, 29]


@pytest.mark.parametrize("shape, sigma", [((0, 5), 0.25), ((5, 5), 0.0)])
def test_center_prior_refuses_empty_shapes_and_bad_widths(shape, sigma):
    with pytest.raises(ValueError, match="center_prior"):
        center_prior(shape, sigma)
