"""The 8-lane row operations give plain float32 arithmetic on rows of any length."""

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from pixseg.crf.lanes import add_scaled, blur_step


@njit
def _add_scaled_rows(target, source, weights):
    """Row i of target += weights[i] * row i of source, through whole rows of 2-D arrays (the
    kernels' use)."""
    for i in range(target.shape[0]):
        add_scaled(target[i], source[i], weights[i])


@njit
def _blur_chain(values, chain, kept):
    for t in range(chain.size - 1):
        blur_step(values[chain[t]], values[chain[t + 1]], kept, np.float32(0.5))


@pytest.mark.parametrize("length", [1, 7, 8, 9, 16, 21, 24, 31, 40])
def test_add_scaled_matches_numpy(length):
    rng = np.random.default_rng(length)
    target = rng.normal(size=(5, length)).astype(np.float32)
    source = rng.normal(size=(5, length)).astype(np.float32)
    weights = rng.normal(size=5).astype(np.float32)
    expected = target + weights[:, None] * source
    _add_scaled_rows(target, source, weights)
    np.testing.assert_allclose(target, expected, rtol=1e-6, atol=1e-6)


def test_add_scaled_passes_infinities_through():
    target = np.array([[np.inf, -np.inf, 1.0, 0.0] * 4], np.float32)
    source = np.array([[1.0, 1.0, np.inf, -np.inf] * 4], np.float32)
    expected = target + source
    _add_scaled_rows(target, source, np.ones(1, np.float32))
    np.testing.assert_array_equal(target, expected)


@pytest.mark.parametrize("length", [3, 8, 24, 29])
def test_blur_step_walks_a_chain(length):
    """Steps along a chain u, v, w: each row becomes old + (next + previous old) / 2, and `kept`
    ends with the old value of the chain's second to last row."""
    rng = np.random.default_rng(length)
    values = rng.normal(size=(6, length)).astype(np.float32)
    chain = np.array([4, 1, 3, 0], np.int64)
    old = values.copy()
    kept = np.zeros(length, np.float32)
    _blur_chain(values, chain, kept)
    previous = np.zeros(length, np.float32)
    for t in range(chain.size - 1):
        expected = old[chain[t]] + 0.5 * (old[chain[t + 1]] + previous)
        np.testing.assert_allclose(values[chain[t]], expected, rtol=1e-6, atol=1e-6)
        previous = old[chain[t]]
    np.testing.assert_array_equal(kept, old[chain[-2]])
    np.testing.assert_array_equal(values[chain[-1]], old[chain[-1]])  # the caller adds the last half
    np.testing.assert_array_equal(values[[2, 5]], old[[2, 5]])


def test_strided_rows_are_refused():
    """The vector loads assume neighbouring floats: a strided row must not compile."""
    target = np.zeros((4, 16), np.float32)
    with pytest.raises(TypingError):
        _add_scaled_rows(target.T, target.T, np.ones(16, np.float32))
