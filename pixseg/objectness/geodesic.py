"""Geodesic distances on the superpixel graph: the graph, multi-source Dijkstra, seed placement.

Nodes are superpixels, edges join superpixels that touch (4-neighbour pixels), and an edge's weight is
the mean boundary strength along the shared border, raised to `power`, plus `constant` (GOP's
weighting). The constant keeps every weight positive, so distances grow with the number of
superpixels crossed even inside a region without boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pixseg.objectness.dijkstra import graph_dijkstra


@dataclass(frozen=True)
class SuperpixelGraph:
    """Adjacency of S superpixels: `edges` (E, 2) with a < b, `weights` (E,) > 0, `areas` (S,) in
    pixels, `sides` (4, S) bool: which superpixels touch the top, bottom, left, right image border.
    `indptr`, `indices`, `csr_weights`: the same edges in both directions, in CSR form."""

    edges: np.ndarray
    weights: np.ndarray
    areas: np.ndarray
    sides: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    csr_weights: np.ndarray

    @property
    def n(self) -> int:
        return len(self.areas)


def shared_borders(labels: np.ndarray, boundaries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The touching pairs of the superpixel map `labels` (int HxW, labels 0..S-1): `edges` (E, 2) with
    a < b, the border's length in 4-neighbour pixel pairs (E,), and the mean of `boundaries` along it (E,),
    each pixel pair sampling the stronger of its two values."""
    n = int(labels.max()) + 1
    keys, samples = [], []
    for (la, lb), (sa, sb) in (((labels[:, :-1], labels[:, 1:]), (boundaries[:, :-1], boundaries[:, 1:])),
                               ((labels[:-1, :], labels[1:, :]), (boundaries[:-1, :], boundaries[1:, :]))):
        differ = la != lb
        a, b = la[differ].astype(np.int64), lb[differ].astype(np.int64)
        keys.append(np.minimum(a, b) * n + np.maximum(a, b))
        samples.append(np.maximum(sa[differ], sb[differ]))
    keys, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    length = np.bincount(inverse, minlength=len(keys))
    mean = np.bincount(inverse, np.concatenate(samples).astype(np.float64), len(keys)) / length
    return np.stack(np.divmod(keys, n), axis=1), length, mean


def build_graph(labels: np.ndarray, boundaries: np.ndarray, *, power: float = 1.0,
                constant: float = 1e-3) -> SuperpixelGraph:
    """Graph of the superpixel map `labels` (int HxW, labels 0..S-1) on `boundaries` (HxW in [0, 1]).

    Each 4-neighbour pixel pair across a border samples the stronger of its two boundary values:
    boundary ridges are one pixel wide, and geodesic superpixels put that pixel on one side.
    """
    if constant <= 0:
        raise ValueError(f"constant must be positive (it keeps edge weights above 0), got {constant}")
    n = int(labels.max()) + 1
    edges, _, mean = shared_borders(labels, boundaries)
    sides = np.zeros((4, n), bool)
    for side, edge in enumerate((labels[0], labels[-1], labels[:, 0], labels[:, -1])):
        sides[side, edge] = True
    weights = mean ** power + constant
    tails = np.concatenate([edges[:, 0], edges[:, 1]])
    order = np.argsort(tails, kind="stable")
    return SuperpixelGraph(edges=edges, weights=weights,
                           areas=np.bincount(labels.ravel(), minlength=n).astype(np.int64), sides=sides,
                           indptr=np.searchsorted(tails[order], np.arange(n + 1)).astype(np.int64),
                           indices=np.concatenate([edges[:, 1], edges[:, 0]])[order],
                           csr_weights=np.concatenate([weights, weights])[order])


def geodesic_distance(graph: SuperpixelGraph, sources) -> np.ndarray:
    """float64 (S,): distance from each superpixel to the nearest of `sources` (superpixel ids)."""
    sources = np.unique(np.asarray(sources, dtype=np.int64).ravel())
    if sources.size == 0:
        raise ValueError("geodesic_distance needs at least one source superpixel")
    if sources[0] < 0 or sources[-1] >= graph.n:
        raise ValueError(f"source superpixels must lie in 0..{graph.n - 1}, got {sources[0]}..{sources[-1]}")
    return graph_dijkstra(graph.indptr, graph.indices, graph.csr_weights, sources)


def geodesic_seeds(graph: SuperpixelGraph, n_seeds: int, landmarks: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """GOP's seeds: the geodesic centre, then greedily the superpixel farthest from all seeds so far.

    Returns the seed ids (K,) and their distance maps (K, S); K < n_seeds when every superpixel is
    already a seed. The geodesic centre minimises the largest distance to any superpixel; that
    largest distance is taken over `landmarks` superpixels spread by farthest-point sampling (the
    far ends of the graph), since exact all-pairs distances cost more than the rest of GOP.
    """
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be at least 1, got {n_seeds}")
    spread, _ = _farthest_points(graph, 0, landmarks + 1)
    centre = int(np.argmin(spread[1:].max(axis=0))) if len(spread) > 1 else 0
    maps, seeds = _farthest_points(graph, centre, min(n_seeds, graph.n))
    return seeds, maps


def _farthest_points(graph, start, count) -> tuple[np.ndarray, np.ndarray]:
    """Distance maps (K, S) and ids (K,) of farthest-point sampling from `start`."""
    def distances(seed):
        return graph_dijkstra(graph.indptr, graph.indices, graph.csr_weights, np.array([seed]))

    seeds = [start]
    maps = [distances(start)]
    nearest = maps[0].copy()
    while len(seeds) < count:
        seed = int(np.argmax(nearest))
        # Every superpixel is a seed already: nothing farther to add.
        if nearest[seed] <= 0:
            break
        seeds.append(seed)
        maps.append(distances(seed))
        np.minimum(nearest, maps[-1], out=nearest)
    return np.array(maps), np.array(seeds)
