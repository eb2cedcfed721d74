"""pixseg.crf.densecrf against pydensecrf2, call by call: the same helpers' outputs, the same labels
and Q for every kind of term, compatibility, kernel and normalisation, and the README's example."""

import numpy as np
import pytest

import pixseg.crf.densecrf as ours
from pixseg.crf.densecrf import utils as our_utils

reference = pytest.importorskip("pydensecrf.densecrf")
reference_utils = pytest.importorskip("pydensecrf.utils")

# As in test_crf_reference: the same lattice and update in float32; summation order and the exp
# differ, so Q agrees to this tolerance and labels (nearly) everywhere.
Q_TOLERANCE = 1e-3
HEIGHT, WIDTH, LABELS = 30, 40, 4
RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
PROBS = RNG.random((LABELS, HEIGHT, WIDTH)).astype(np.float32) ** 3 + 1e-3
PROBS /= PROBS.sum(0)
MATRIX = RNG.random((LABELS, LABELS)).astype(np.float32)


def test_helpers_give_the_references_arrays():
    labels = RNG.integers(0, LABELS + 1, (HEIGHT, WIDTH))
    pairs = [
        (lambda m: m.unary_from_softmax(PROBS)),
        (lambda m: m.unary_from_softmax(PROBS, scale=0.8, clip=None)),
        (lambda m: m.unary_from_labels(labels, LABELS, 0.7)),
        (lambda m: m.unary_from_labels(labels % LABELS, LABELS, 0.6, zero_unsure=False)),
        (lambda m: m.create_pairwise_gaussian((3, 4), (HEIGHT, WIDTH))),
        (lambda m: m.create_pairwise_bilateral((3, 4), (5, 6, 7), IMAGE, chdim=2)),
        (lambda m: m.create_pairwise_bilateral((3, 4), 9, IMAGE[:, :, 0])),
    ]
    for make in pairs:
        expected, got = make(reference_utils), make(our_utils)
        assert got.dtype == expected.dtype and np.array_equal(got, expected)


# Each model: (module, crf) -> None, adding terms as a user would; "fast" says which path it takes.
MODELS = {
    "Potts numbers (the README's model)": (True, lambda m, d: (
        d.addPairwiseGaussian(sxy=3, compat=3), d.addPairwiseBilateral(sxy=20, srgb=13, rgbim=IMAGE, compat=10))),
    "proportional matrices": (True, lambda m, d: (
        d.addPairwiseGaussian(sxy=3, compat=MATRIX), d.addPairwiseBilateral(sxy=20, srgb=13, rgbim=IMAGE,
                                                                             compat=2 * MATRIX))),
    "a vector": (True, lambda m, d: d.addPairwiseGaussian(sxy=1, compat=np.arange(LABELS, dtype=np.float32))),
    "uneven bandwidths, Potts and a matrix": (False, lambda m, d: (
        d.addPairwiseGaussian(sxy=(3, 2), compat=3),
        d.addPairwiseBilateral(sxy=20, srgb=(13, 10, 20), rgbim=IMAGE, compat=MATRIX))),
    "NORMALIZE_BEFORE": (False, lambda m, d: d.addPairwiseGaussian(sxy=3, compat=3,
                                                                   normalization=m.NORMALIZE_BEFORE)),
    "NORMALIZE_AFTER, FULL_KERNEL": (False, lambda m, d: d.addPairwiseBilateral(
        sxy=5, srgb=13, rgbim=IMAGE, compat=3, kernel=m.FULL_KERNEL, normalization=m.NORMALIZE_AFTER)),
    "NO_NORMALIZATION, CONST_KERNEL": (False, lambda m, d: d.addPairwiseGaussian(
        sxy=3, compat=0.1, kernel=m.CONST_KERNEL, normalization=m.NO_NORMALIZATION)),
    "two Gaussians": (False, lambda m, d: (d.addPairwiseGaussian(sxy=2, compat=2),
                                           d.addPairwiseGaussian(sxy=6, compat=1))),
    "addPairwiseEnergy": (False, lambda m, d: d.addPairwiseEnergy(
        reference_utils.create_pairwise_bilateral((5, 5), 20, IMAGE, chdim=2), compat=4)),
}


def build(module, add, two_d=True):
    crf = module.DenseCRF2D(WIDTH, HEIGHT, LABELS) if two_d else module.DenseCRF(WIDTH * HEIGHT, LABELS)
    crf.setUnaryEnergy(reference_utils.unary_from_softmax(PROBS))
    add(module, crf)
    return crf


@pytest.mark.parametrize("name", MODELS)
def test_inference_matches_the_reference(name):
    fast, add = MODELS[name]
    crf = build(ours, add)
    assert (crf._fast_options() is not None) == fast  # both paths are covered
    for iterations in (0, 1, 5):
        expected = np.array(build(reference, add).inference(iterations))
        got = crf.inference(iterations)
        assert got.shape == (LABELS, HEIGHT * WIDTH) and got.dtype == np.float32
        assert np.abs(got - expected).max() <= Q_TOLERANCE
        assert (got.argmax(0) == expected.argmax(0)).mean() >= 0.995


def test_dense_crf_with_features_matches_the_reference():
    features = reference_utils.create_pairwise_gaussian((3, 3), (HEIGHT, WIDTH))

    def add(module, crf):
        crf.addPairwiseEnergy(features, compat=3)

    expected = np.array(build(reference, add, two_d=False).inference(5))
    got = build(ours, add, two_d=False).inference(5)
    assert np.abs(got - expected).max() <= Q_TOLERANCE


def test_step_inference_and_kl_divergence_match_the_reference():
    add = MODELS["uneven bandwidths, Potts and a matrix"][1]
    crfs = build(reference, add), build(ours, add)
    (q_ref, *scratch_ref), (q, *scratch) = crfs[0].startInference(), crfs[1].startInference()
    for _ in range(3):
        kl_ref, kl = crfs[0].klDivergence(q_ref), crfs[1].klDivergence(q)
        assert abs(kl - kl_ref) <= 1e-5 * abs(kl_ref)
        crfs[0].stepInference(q_ref, *scratch_ref)
        crfs[1].stepInference(q, *scratch)
        assert np.abs(q - np.array(q_ref)).max() <= Q_TOLERANCE


README_EXAMPLE = """
d = dcrf.DenseCRF2D(40, 30, 5)  # width, height, nlabels
U = unary_from_softmax(probs)
d.setUnaryEnergy(U)
# This adds the color-independent term, features are the locations only.
d.addPairwiseGaussian(sxy=3, compat=3)
# This adds the color-dependent term, i.e. features are (x,y,r,g,b).
d.addPairwiseBilateral(sxy=80, srgb=13, rgbim=im, compat=10)
Q = d.inference(5)
map = np.argmax(Q, axis=0).reshape((40,30))
"""


def test_the_readme_example_runs_unchanged():
    probs = RNG.random((5, HEIGHT, WIDTH)).astype(np.float32)
    probs /= probs.sum(0)
    results = []
    for module, utils in ((reference, reference_utils), (ours, our_utils)):
        namespace = {"dcrf": module, "unary_from_softmax": utils.unary_from_softmax, "np": np, "probs": probs,
                     "im": IMAGE}
        exec(README_EXAMPLE, namespace)
        results.append((namespace["map"], np.array(namespace["Q"])))
    assert np.array_equal(results[0][0], results[1][0])
    assert np.abs(results[0][1] - results[1][1]).max() <= Q_TOLERANCE


@pytest.mark.parametrize("call, message", [
    (lambda d: d.setUnaryEnergy(np.zeros((LABELS, HEIGHT * WIDTH), np.float32), np.zeros((2, 2), np.float32)),
     "learned logistic unary is not supported"),
    (lambda d: d.setUnary(None), "setUnary .* is not supported"),
    (lambda d: d.setUnaryEnergy(np.zeros((LABELS + 1, HEIGHT * WIDTH), np.float32)), "Bad shape for unary energy"),
    (lambda d: d.addPairwiseGaussian(sxy=3, compat=np.zeros((2, 2, 2))), "compat has shape"),
    (lambda d: d.addPairwiseGaussian(sxy=(3, 0), compat=3), "sxy must be a number or 2 numbers"),
    (lambda d: d.addPairwiseGaussian(sxy=3, compat=3, normalization=7), "normalization 7 is not one of"),
    (lambda d: d.addPairwiseBilateral(sxy=3, srgb=3, rgbim=IMAGE[:, :, :2].copy(), compat=3), "only works for RGB"),
    (lambda d: d.addPairwiseEnergy(np.zeros((2, 5), np.float32), compat=3), "Bad shape for pairwise energy"),
    (lambda d: d.inference(-1), "niter must be a whole number"),
])
def test_errors_name_what_is_wrong(call, message):
    with pytest.raises((ValueError, NotImplementedError), match=message):
        call(ours.DenseCRF2D(WIDTH, HEIGHT, LABELS))
