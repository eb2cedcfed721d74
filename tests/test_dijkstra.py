"""The geodesic kernels against brute-force shortest paths on small graphs and grids."""

import numpy as np
import pytest

from pixseg.objectness.dijkstra import graph_dijkstra, grid_geodesic


def brute_force(n, edges, weights, sources):
    """Bellman-Ford relaxation until nothing changes: distances to the nearest source."""
    distance = np.full(n, np.inf)
    distance[list(sources)] = 0.0
    changed = True
    while changed:
        changed = False
        for (a, b), w in zip(edges, weights):
            for u, v in ((a, b), (b, a)):
                if distance[u] + w < distance[v] - 1e-12:
                    distance[v] = distance[u] + w
                    changed = True
    return distance


def to_csr(n, edges, weights):
    tails = np.concatenate([edges[:, 0], edges[:, 1]])
    heads = np.concatenate([edges[:, 1], edges[:, 0]])
    both = np.concatenate([weights, weights])
    order = np.argsort(tails, kind="stable")
    indptr = np.searchsorted(tails[order], np.arange(n + 1)).astype(np.int64)
    return indptr, heads[order].astype(np.int64), both[order]


@pytest.mark.parametrize("seed", range(5))
def test_graph_dijkstra_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 12
    pairs = np.array([(a, b) for a in range(n) for b in range(a + 1, n) if rng.random() < 0.3])
    weights = rng.random(len(pairs)) + 0.01
    sources = rng.choice(n, size=2, replace=False)
    indptr, indices, csr_weights = to_csr(n, pairs, weights)
    got = graph_dijkstra(indptr, indices, csr_weights, sources.astype(np.int64))
    np.testing.assert_allclose(got, brute_force(n, pairs, weights, sources))


def test_graph_dijkstra_unreachable_nodes_are_infinite():
    indptr, indices, weights = to_csr(4, np.array([[0, 1]]), np.array([0.5]))
    got = graph_dijkstra(indptr, indices, weights, np.array([0], np.int64))
    assert got[1] == 0.5 and np.isinf(got[2:]).all()


def grid_edges(horizontal, vertical):
    height, width = vertical.shape[0] + 1, horizontal.shape[1] + 1
    index = np.arange(height * width).reshape(height, width)
    edges = np.concatenate([np.stack([index[:, :-1].ravel(), index[:, 1:].ravel()], 1),
                            np.stack([index[:-1, :].ravel(), index[1:, :].ravel()], 1)])
    return edges, np.concatenate([horizontal.ravel(), vertical.ravel()])


def test_grid_geodesic_is_exact_with_enough_sweeps_and_owners_are_nearest_seeds():
    rng = np.random.default_rng(0)
    horizontal, vertical = rng.random((6, 7)) * 5 + 1, rng.random((5, 8)) * 5 + 1
    seeds = np.array([3, 20, 44], np.int64)
    distance, owner = grid_geodesic(horizontal, vertical, seeds, 48)
    edges, weights = grid_edges(horizontal, vertical)
    np.testing.assert_allclose(distance.ravel(), brute_force(48, edges, weights, seeds))
    for k, s in enumerate(seeds):
        from_seed = brute_force(48, edges, weights, [s])
        mine = owner.ravel() == k
        assert np.allclose(from_seed[mine], distance.ravel()[mine])


def test_grid_geodesic_one_sweep_is_an_upper_bound():
    rng = np.random.default_rng(1)
    horizontal, vertical = rng.random((9, 9)) * 20 + 1, rng.random((8, 10)) * 20 + 1
    seeds = np.array([45], np.int64)
    edges, weights = grid_edges(horizontal, vertical)
    exact = brute_force(90, edges, weights, seeds)
    approximate = grid_geodesic(horizontal, vertical, seeds, 1)[0].ravel()
    assert (approximate >= exact - 1e-9).all() and np.isfinite(approximate).all()
