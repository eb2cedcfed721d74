"""dense_crf against pydensecrf2, the PyPI build of Krähenbühl's reference C++ implementation."""

import numpy as np
import pytest

from pixseg.crf import CRF_PRESETS, dense_crf
from tests.test_crf import noisy_probs, random_inputs, scene

dcrf = pytest.importorskip("pydensecrf.densecrf")

# The lattice, normalisation and update are the reference's, in float32 as there: the only
# differences are summation order and a polynomial exp, so marginals agree to this tolerance
# (largest seen on these inputs: 1.4e-4 after 10 iterations; 3e-7 after one) and labels almost
# everywhere (all of them, here).
Q_TOLERANCE = 1e-3
LABEL_AGREEMENT = 0.995


def reference(image, probs, iterations, appearance, smoothness, compat=None):
    """pydensecrf2 with the same model: Potts as PottsCompatibility(w), a matrix as w * compat."""
    (w1, theta_a, theta_b), (w2, theta_g) = appearance, smoothness
    channels, height, width = probs.shape
    crf = dcrf.DenseCRF2D(width, height, channels)
    crf.setUnaryEnergy(np.ascontiguousarray(-np.log(probs).reshape(channels, -1)))
    crf.addPairwiseGaussian(sxy=theta_g, compat=w2 if compat is None else (w2 * compat).astype(np.float32))
    crf.addPairwiseBilateral(sxy=theta_a, srgb=theta_b, rgbim=np.ascontiguousarray(image),
                             compat=w1 if compat is None else (w1 * compat).astype(np.float32))
    q = np.array(crf.inference(iterations)).reshape(channels, height, width)
    return q.argmax(0), q


def structured(channels):
    image, labels = scene(seed=1)
    return image, noisy_probs(labels % channels, channels, seed=1)


INPUTS = {
    "random, 2 labels": lambda: random_inputs(2, seed=4),
    "random, 21 labels": lambda: random_inputs(21, seed=5),
    "structured, 2 labels": lambda: structured(2),
    "structured, 21 labels": lambda: structured(21),
}


@pytest.mark.parametrize("preset", ["deeplab_v2", "reference"])
@pytest.mark.parametrize("name", INPUTS)
def test_labels_and_marginals_match_the_reference(name, preset):
    image, probs = INPUTS[name]()
    options = CRF_PRESETS[preset]
    for iterations in (1, 10):
        labels, q = dense_crf(image, probs, iterations=iterations, **options)
        expected_labels, expected_q = reference(image, probs, iterations, **options)
        agreement = (labels == expected_labels).mean()
        assert agreement >= LABEL_AGREEMENT, f"{iterations} iterations: {100 * agreement:.2f}% agree"
        assert np.abs(q - expected_q).max() <= Q_TOLERANCE


def test_torch_backend_matches_the_reference():
    image, probs = structured(21)
    labels, q = dense_crf(image, probs, backend="torch")
    expected_labels, expected_q = reference(image, probs, 10, **CRF_PRESETS["deeplab_v2"])
    assert (labels == expected_labels).mean() >= LABEL_AGREEMENT
    assert np.abs(q - expected_q).max() <= Q_TOLERANCE


def test_compatibility_matrix_matches_the_reference():
    image, probs = structured(4)
    compat = np.array([[0, 1, 2, 2], [1, 0, 2, 2], [2, 2, 0, 1], [2, 2, 1, 0]], np.float32)
    options = CRF_PRESETS["reference"]
    labels, q = dense_crf(image, probs, compat=compat, **options)
    expected_labels, expected_q = reference(image, probs, 10, compat=compat, **options)
    assert (labels == expected_labels).mean() >= LABEL_AGREEMENT
    assert np.abs(q - expected_q).max() <= Q_TOLERANCE
