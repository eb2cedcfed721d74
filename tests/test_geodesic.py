"""The superpixel graph and its geodesic distances and seeds."""

import numpy as np
import pytest

from pixseg.objectness.geodesic import build_graph, geodesic_distance, geodesic_seeds

# Three superpixels in a row (0 | 1 | 2) over a 4x6 image, with a boundary between 1 and 2.
LABELS = np.repeat(np.array([[0, 0, 1, 1, 2, 2]]), 4, axis=0)


def boundaries_with_edge(value):
    b = np.zeros(LABELS.shape, np.float32)
    b[:, 4] = value
    return b


def test_graph_edges_weights_areas_and_sides():
    graph = build_graph(LABELS, boundaries_with_edge(0.8), constant=0.01)
    assert graph.edges.tolist() == [[0, 1], [1, 2]]
    # Border pixel pairs sample the stronger of their two pixels: 0 between 0 and 1, 0.8 between 1 and 2.
    np.testing.assert_allclose(graph.weights, [0.01, 0.81])
    assert graph.areas.tolist() == [8, 8, 8]
    top, bottom, left, right = graph.sides
    assert top.all() and bottom.all() and left.tolist() == [True, False, False]
    assert right.tolist() == [False, False, True]


def test_graph_weight_is_the_mean_along_the_border_raised_to_the_power():
    b = boundaries_with_edge(0.0)
    b[:2, 4] = 0.6  # half the border of 1 and 2 carries a boundary
    graph = build_graph(LABELS, b, power=2.0, constant=0.001)
    np.testing.assert_allclose(graph.weights[1], 0.3 ** 2 + 0.001)


def test_geodesic_distance_matches_brute_force_on_a_tiny_graph():
    labels = np.array([[0, 0, 1, 1],
                       [0, 0, 1, 1],
                       [2, 2, 3, 3],
                       [2, 2, 4, 4]])
    rng = np.random.default_rng(3)
    boundaries = rng.random(labels.shape).astype(np.float32)
    graph = build_graph(labels, boundaries)
    # Brute force: all simple paths are few here, so Floyd-Warshall on the dense matrix.
    dense = np.full((5, 5), np.inf)
    np.fill_diagonal(dense, 0)
    for (a, b), w in zip(graph.edges, graph.weights):
        dense[a, b] = dense[b, a] = w
    for k in range(5):
        dense = np.minimum(dense, dense[:, k:k + 1] + dense[k:k + 1, :])
    np.testing.assert_allclose(geodesic_distance(graph, [4]), dense[4])
    np.testing.assert_allclose(geodesic_distance(graph, [0, 4]), np.minimum(dense[0], dense[4]))


def test_geodesic_distance_rejects_bad_sources():
    graph = build_graph(LABELS, boundaries_with_edge(0.5))
    with pytest.raises(ValueError, match="at least one source"):
        geodesic_distance(graph, [])
    with pytest.raises(ValueError, match="0..2"):
        geodesic_distance(graph, [3])


def test_seeds_start_at_the_geodesic_centre_and_go_farthest_first():
    labels = np.repeat(np.arange(9)[None, :], 3, axis=0)  # a path of nine superpixels
    graph = build_graph(labels, np.zeros(labels.shape, np.float32))
    seeds, maps = geodesic_seeds(graph, 3)
    assert seeds[0] == 4
    assert sorted(seeds[1:].tolist()) == [0, 8]
    np.testing.assert_allclose(maps[0], geodesic_distance(graph, [4]))


def test_seeds_stop_when_every_superpixel_is_a_seed():
    graph = build_graph(LABELS, boundaries_with_edge(0.5))
    seeds, maps = geodesic_seeds(graph, 10)
    assert sorted(seeds.tolist()) == [0, 1, 2] and maps.shape == (3, 3)
    with pytest.raises(ValueError, match="n_seeds"):
        geodesic_seeds(graph, 0)
