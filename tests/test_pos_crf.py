"""The POS-CRF: its unary energies, and object pixels it keeps that the plain CRF gives to background."""

import numpy as np
import pytest

import pixseg.crf.pos as pos_module
from pixseg.crf import dense_crf
from pixseg.crf.pos import pos_crf

OPTIONS = {"iterations": 5, "appearance": (4.0, 20.0, 10.0), "smoothness": (3.0, 1.0)}


def scene():
    """A 32x32 image with a bright square; the classifier leans slightly to background on it."""
    image = np.full((32, 32, 3), 40, np.uint8)
    square = np.zeros((32, 32), bool)
    square[8:24, 8:24] = True
    image[square] = (200, 170, 60)
    probs = np.empty((3, 32, 32), np.float32)
    probs[0] = np.where(square, 0.5, 0.9)
    probs[1] = np.where(square, 0.4, 0.05)
    probs[2] = 1 - probs[0] - probs[1]
    pos = np.where(square, 1.0, 0.0).astype(np.float32)
    return image, probs, pos, square


def test_unary_lowers_object_classes_by_pos_and_keeps_background(monkeypatch):
    seen = {}

    def capture(image, probs, *, unary, **options):
        seen.update(unary=unary, options=options)
        return "labels", "q"

    monkeypatch.setattr(pos_module, "dense_crf", capture)
    image, probs, pos, _ = scene()
    probs[2, 0, 0], probs[0, 0, 0] = 0.0, 0.95  # a zero probability is clipped, not infinite
    assert pos_crf(image, probs, pos, pos_scale=0.5, iterations=3) == ("labels", "q")
    unary = seen["unary"]
    assert seen["options"] == {"iterations": 3}
    np.testing.assert_allclose(unary[0], -np.log(probs[0]), rtol=1e-6)
    np.testing.assert_allclose(unary[1], -np.log(probs[1]) - 0.5 * pos, rtol=1e-6)
    assert np.isfinite(unary).all()
    plain = -np.log(np.clip(probs, pos_module.PROBABILITY_FLOOR, None))
    assert (unary[1:][:, pos > 0] < plain[1:][:, pos > 0]).all()
    np.testing.assert_allclose(unary[1:][:, pos == 0], plain[1:][:, pos == 0], rtol=1e-6)


def test_pos_crf_recovers_object_pixels_the_plain_crf_loses():
    image, probs, pos, square = scene()
    plain, _ = dense_crf(image, probs, **OPTIONS)
    labels, q = pos_crf(image, probs, pos, **OPTIONS)
    assert (plain[square] == 0).mean() > 0.9  # the plain CRF calls the square background
    assert (labels[square] == 1).mean() > 0.9
    assert (labels[~square] == 0).all()
    assert q.shape == probs.shape and q.dtype == np.float32


def test_pos_is_scaled_to_its_maximum_and_square_rooted(monkeypatch):
    # Photographs give many proposals, so POS is small everywhere; the CRF weighs it relative to its peak.
    seen = []
    monkeypatch.setattr(pos_module, "dense_crf", lambda image, probs, *, unary, **options: seen.append(unary))
    image, probs, pos, _ = scene()
    pos = pos * np.linspace(0.2, 1, 32, dtype=np.float32)[None, :]
    for faint in (pos, 0.02 * pos):
        pos_crf(image, probs, faint, pos_scale=2.0)
    np.testing.assert_allclose(seen[0][1], -np.log(probs[1]) - 2.0 * np.sqrt(pos / pos.max()), rtol=1e-6)
    np.testing.assert_allclose(seen[1], seen[0], rtol=1e-6)
    pos_crf(image, probs, np.zeros_like(pos))  # no proposals: the plain CRF's unary, no division by zero
    np.testing.assert_allclose(seen[2], -np.log(probs), rtol=1e-6)


def test_zero_scale_is_the_plain_crf():
    image, probs, pos, _ = scene()
    plain, _ = dense_crf(image, probs, **OPTIONS)
    np.testing.assert_array_equal(pos_crf(image, probs, pos, pos_scale=0.0, **OPTIONS)[0], plain)


@pytest.mark.parametrize("change, message", [
    (lambda p, o: (p, o[:, :-1]), "pos has shape"),
    (lambda p, o: (p, o + 1), r"\[0, 1\]"),
    (lambda p, o: (p, (o > 0).astype(np.uint8)), "dtype"),
    (lambda p, o: (p * 2, o), "sum to 1"),
    (lambda p, o: (p[:1] / p[:1], o), "at least one object class"),
])
def test_bad_inputs_are_refused(change, message):
    image, probs, pos, _ = scene()
    probs, pos = change(probs, pos)
    with pytest.raises(ValueError, match=message):
        pos_crf(image, probs, pos, **OPTIONS)


def test_bad_scale_and_explicit_unary_are_refused():
    image, probs, pos, _ = scene()
    with pytest.raises(ValueError, match="pos_scale"):
        pos_crf(image, probs, pos, pos_scale=-1)
    with pytest.raises(ValueError, match="unary"):
        pos_crf(image, probs, pos, unary=np.zeros_like(probs))


def test_torch_probabilities_give_the_same_labels_as_numpy():
    torch = pytest.importorskip("torch")
    image, probs, pos, _ = scene()
    expected, _ = pos_crf(image, probs, pos, **OPTIONS)
    labels, q = pos_crf(image, torch.from_numpy(probs), pos, backend="torch", **OPTIONS)
    assert isinstance(labels, torch.Tensor) and isinstance(q, torch.Tensor)
    np.testing.assert_array_equal(labels.numpy(), expected)
