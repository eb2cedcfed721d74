"""The permutohedral lattice (numba and torch) against the exact Gaussian filter, and its structure."""

import numpy as np
import pytest
import torch

from pixseg.crf.exact import exact_filter
from pixseg.crf.features import appearance_features, smoothness_features
from pixseg.crf.lattice import (PermutohedralLattice, _embed, _feature_bounds, _number_vertices, _radix_argsort,
                                key_packing, scale_factors, splat_table)
from pixseg.crf.lattice_torch import TorchLattice

HEIGHT, WIDTH = 24, 32
# Relative L2 error of the lattice's normalised filter (K v / K 1) against the exact one on these
# inputs. The permutohedral lattice approximates the Gaussian (Adams et al. 2010): measured errors
# here are 0.2% to 6%, largest for the widest bandwidths relative to the image.
RELATIVE_ERROR_BOUND = 0.07


def small_image(seed=0):
    """Colour ramps with a square and mild noise: neither flat nor random."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:HEIGHT, :WIDTH]
    image = np.stack([x * 8, y * 10, np.where((y >= 6) & (y < 18) & (x >= 8) & (x < 20), 200, 30)], axis=2)
    return (image + rng.integers(-5, 6, image.shape)).clip(0, 255).astype(np.uint8)


def signals():
    y, x = np.mgrid[:HEIGHT, :WIDTH]
    rng = np.random.default_rng(1)
    return np.stack([np.sin(x / 5.0).ravel(), (y / HEIGHT).ravel(), rng.random(HEIGHT * WIDTH)])


FEATURES = {
    "smoothness theta 1": lambda: smoothness_features(HEIGHT, WIDTH, 1.0),
    "smoothness theta 3": lambda: smoothness_features(HEIGHT, WIDTH, 3.0),
    "smoothness theta 8": lambda: smoothness_features(HEIGHT, WIDTH, 8.0),
    "appearance deeplab_v2": lambda: appearance_features(small_image(), 67.0, 3.0),
    "appearance reference": lambda: appearance_features(small_image(), 80.0, 13.0),
    "appearance narrow": lambda: appearance_features(small_image(), 5.0, 20.0),
}


@pytest.mark.parametrize("name", FEATURES)
def test_normalised_lattice_filter_matches_exact_filter(name):
    features = FEATURES[name]()
    values = signals()
    lattice = PermutohedralLattice(features)
    ones = np.ones((1, features.shape[0]))
    approximate = lattice.filter(values) / lattice.filter(ones)
    exact = exact_filter(features, values) / exact_filter(features, ones)
    for channel in range(values.shape[0]):
        error = np.linalg.norm(approximate[channel] - exact[channel]) / np.linalg.norm(exact[channel])
        assert error < RELATIVE_ERROR_BOUND, f"{name}, signal {channel}: relative error {error:.3f}"


def test_exact_filter_on_two_points():
    features = np.array([[0.0, 0.0], [1.0, 1.0]])
    out = exact_filter(features, np.array([[1.0, 2.0]]))
    np.testing.assert_allclose(out, [[1 + 2 * np.exp(-1.0), 2 + np.exp(-1.0)]])


def test_constant_signal_is_preserved_by_normalised_filter():
    lattice = PermutohedralLattice(appearance_features(small_image(), 10.0, 13.0))
    filtered = lattice.filter(np.full((2, HEIGHT * WIDTH), 3.0)) / lattice.filter(np.ones((1, HEIGHT * WIDTH)))
    np.testing.assert_allclose(filtered, 3.0, rtol=1e-5)


def test_barycentric_weights_are_a_partition_of_unity():
    lattice = PermutohedralLattice(appearance_features(small_image(), 10.0, 13.0))
    assert (lattice.weights >= -1e-6).all()
    np.testing.assert_allclose(lattice.weights.sum(1), 1.0, atol=1e-5)
    assert lattice.offsets.min() >= 0 and lattice.offsets.max() < lattice.num_vertices


@pytest.mark.parametrize("name", ["smoothness theta 3", "appearance reference"])
def test_blur_chains_follow_the_lattice_neighbours(name):
    """Every link of a numba blur chain is a lattice neighbour along its axis, and every pair of
    neighbours is a link: checked against the torch lattice's neighbour table (its own numbering).
    Chains of one axis come ordered by their first vertex."""
    features = FEATURES[name]()
    chained = PermutohedralLattice(features)
    table = TorchLattice(torch.from_numpy(features))
    m = table.num_vertices
    to_table = np.empty(m, np.int64)
    to_table[chained.offsets.ravel()] = table.offsets.numpy().ravel()
    vertices, bounds, axis_starts = chained.chains
    neighbours = table.neighbours.numpy()
    assert axis_starts.size == features.shape[1] + 2
    for axis in range(features.shape[1] + 1):
        heads = vertices[bounds[axis_starts[axis]:axis_starts[axis + 1]]]
        assert (np.diff(heads) > 0).all()
        links = set()
        for chain in range(axis_starts[axis], axis_starts[axis + 1]):
            members = to_table[vertices[bounds[chain]:bounds[chain + 1]]]
            assert members.size >= 2
            assert neighbours[axis, members[0], 1] == m and neighbours[axis, members[-1], 0] == m
            links.update(zip(members[:-1].tolist(), members[1:].tolist()))
        present = np.flatnonzero(neighbours[axis, :, 0] < m)
        assert present.size > 0
        assert links == set(zip(present.tolist(), neighbours[axis, present, 0].tolist()))


@pytest.mark.parametrize("name", ["smoothness theta 3", "appearance reference"])
def test_vertices_are_numbered_by_first_appearance(name):
    lattice = PermutohedralLattice(FEATURES[name]())
    # Vertex v is the v-th distinct vertex met in the points' entries.
    _, first_entry = np.unique(lattice.offsets.ravel(), return_index=True)
    assert (np.diff(first_entry) > 0).all()


def test_vertex_numbering_is_the_same_in_any_number_of_parts():
    """Every pass of the numbering runs over ranges in parallel (CI has one thread: ranges forced)."""
    features = FEATURES["appearance reference"]()
    n, d = features.shape
    scale = scale_factors(d)
    lows, shifts, bits = key_packing(*_feature_bounds(features), scale)
    keys, first = np.empty(n * (d + 1), np.int64), np.empty(n * (d + 1), np.int32)
    _embed(features, scale, lows, shifts, keys, np.empty((n, d + 1), np.float32), first)
    distinct, first_row, inverse = np.unique(keys, return_index=True, return_inverse=True)
    results = [_number_vertices(keys, first, bits, parts) for parts in (1, 2, 3)]
    vertex_of, sorted_keys, number = results[0]
    np.testing.assert_array_equal(sorted_keys, distinct)
    # Equal keys share a vertex, numbered by the row where the key first appears.
    rank = np.argsort(np.argsort(first_row))
    np.testing.assert_array_equal(number, rank)
    np.testing.assert_array_equal(vertex_of, rank[inverse.ravel()])
    for other in results[1:]:
        for expected, actual in zip(results[0], other):
            np.testing.assert_array_equal(actual, expected)


def test_identical_features_share_one_simplex():
    features = np.repeat(np.array([[0.3, 1.7, -2.2]], np.float32), 50, axis=0)
    lattice = PermutohedralLattice(features)
    assert lattice.num_vertices == 4
    assert (lattice.offsets == lattice.offsets[0]).all()


def test_filter_is_linear():
    lattice = PermutohedralLattice(smoothness_features(HEIGHT, WIDTH, 2.0))
    rng = np.random.default_rng(2)
    a, b = rng.random((2, HEIGHT * WIDTH)), rng.random((2, HEIGHT * WIDTH))
    np.testing.assert_allclose(lattice.filter(2 * a + b), 2 * lattice.filter(a) + lattice.filter(b), rtol=1e-4)


@pytest.mark.parametrize("name", ["smoothness theta 3", "appearance deeplab_v2"])
def test_torch_lattice_matches_numba_lattice(name):
    features = FEATURES[name]()
    numba_lattice = PermutohedralLattice(features)
    torch_lattice = TorchLattice(torch.from_numpy(features))
    assert torch_lattice.num_vertices == numba_lattice.num_vertices
    np.testing.assert_allclose(torch_lattice.weights.numpy(), numba_lattice.weights, atol=1e-5)
    values = signals()
    np.testing.assert_allclose(torch_lattice.filter(values).numpy(), numba_lattice.filter(values), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("lattice_class", [PermutohedralLattice, TorchLattice])
def test_bad_features_are_rejected(lattice_class):
    with pytest.raises(ValueError, match="N x d"):
        lattice_class(np.zeros((0, 2), np.float32))
    with pytest.raises(ValueError, match="finite"):
        lattice_class(np.array([[0.0, np.nan]], np.float32))
    with pytest.raises(ValueError, match="bits, more than the 63"):
        lattice_class(np.array([[0.0] * 5, [1e6] * 5], np.float32))
    lattice = lattice_class(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="C x 3"):
        lattice.filter(np.zeros((2, 4)))


@pytest.mark.parametrize("parts", [1, 3])
def test_splat_table_lists_every_vertex_points_in_order(parts):
    lattice = PermutohedralLattice(appearance_features(small_image(), 10.0, 13.0))
    starts, points, weights = splat_table(lattice.offsets, lattice.weights, lattice.num_vertices, parts)
    entries = lattice.offsets.ravel()
    order = np.argsort(entries, kind="stable")  # by vertex, then by point: the table's order
    counts = np.bincount(entries, minlength=lattice.num_vertices)
    np.testing.assert_array_equal(starts, np.concatenate([[0], np.cumsum(counts)]))
    np.testing.assert_array_equal(points, order // lattice.offsets.shape[1])
    np.testing.assert_array_equal(weights, lattice.weights.ravel()[order])


@pytest.mark.parametrize("parts", [1, 3])
def test_radix_sort_is_a_stable_argsort(parts):
    keys = np.random.default_rng(3).integers(0, 2**40, 20000, dtype=np.int64)
    keys[::7] = keys[5]  # runs of equal keys: their order must be kept
    sorted_keys, order = _radix_argsort(keys, 40, parts)
    expected = np.argsort(keys, kind="stable")
    np.testing.assert_array_equal(order, expected)
    np.testing.assert_array_equal(sorted_keys, keys[expected])
