"""Geodesic distance kernels (numba): raster scans on the pixel grid, Dijkstra on a CSR graph.

Plain kernels without input checks; the callers in superpixels.py and geodesic.py validate.
Dijkstra uses a binary min-heap with lazy deletion: a node may sit in the heap several times and
stale entries (a larger distance than the node's current one) are skipped when popped.
"""

from __future__ import annotations

import numpy as np

from pixseg.jit import jit


@jit()
def _push(keys, nodes, size, key, node):
    i = size
    keys[i] = key
    nodes[i] = node
    while i > 0:
        parent = (i - 1) // 2
        if keys[parent] <= keys[i]:
            break
        keys[parent], keys[i] = keys[i], keys[parent]
        nodes[parent], nodes[i] = nodes[i], nodes[parent]
        i = parent
    return size + 1


@jit()
def _pop(keys, nodes, size):
    key, node = keys[0], nodes[0]
    size -= 1
    keys[0], nodes[0] = keys[size], nodes[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        child = left
        if left + 1 < size and keys[left + 1] < keys[left]:
            child = left + 1
        if keys[i] <= keys[child]:
            break
        keys[child], keys[i] = keys[i], keys[child]
        nodes[child], nodes[i] = nodes[i], nodes[child]
        i = child
    return key, node, size


@jit()
def grid_geodesic(horizontal, vertical, seeds, sweeps):
    """Approximate distances (H, W) and nearest-seed index (H, W) on a grid with step costs
    `horizontal` (H, W-1: pixel to its right neighbour) and `vertical` (H-1, W: to the one below).

    Raster-scan geodesic distance transform: `sweeps` pairs of a forward pass (from the top and
    left neighbours) and a backward pass (from the bottom and right). Exact for every shortest path
    that turns against the scan order fewer than `sweeps` times; superpixel paths are short.
    """
    height, width = vertical.shape[0] + 1, horizontal.shape[1] + 1
    distance = np.full((height, width), np.inf)
    owner = np.full((height, width), -1, np.int32)
    for k in range(len(seeds)):
        y, x = seeds[k] // width, seeds[k] % width
        distance[y, x] = 0.0
        owner[y, x] = k
    for _ in range(sweeps):
        for y in range(height):
            for x in range(width):
                if y > 0 and distance[y - 1, x] + vertical[y - 1, x] < distance[y, x]:
                    distance[y, x] = distance[y - 1, x] + vertical[y - 1, x]
                    owner[y, x] = owner[y - 1, x]
                if x > 0 and distance[y, x - 1] + horizontal[y, x - 1] < distance[y, x]:
                    distance[y, x] = distance[y, x - 1] + horizontal[y, x - 1]
                    owner[y, x] = owner[y, x - 1]
        for y in range(height - 1, -1, -1):
            for x in range(width - 1, -1, -1):
                if y + 1 < height and distance[y + 1, x] + vertical[y, x] < distance[y, x]:
                    distance[y, x] = distance[y + 1, x] + vertical[y, x]
                    owner[y, x] = owner[y + 1, x]
                if x + 1 < width and distance[y, x + 1] + horizontal[y, x] < distance[y, x]:
                    distance[y, x] = distance[y, x + 1] + horizontal[y, x]
                    owner[y, x] = owner[y, x + 1]
    return distance, owner


@jit()
def graph_dijkstra(indptr, indices, weights, sources):
    """Distances (N,) from the nearest of `sources` on a CSR graph with non-negative `weights`;
    unreachable nodes get inf."""
    n = len(indptr) - 1
    distance = np.full(n, np.inf)
    keys = np.empty(len(indices) + len(sources))
    nodes = np.empty(len(indices) + len(sources), np.int64)
    size = 0
    for source in sources:
        if distance[source] > 0:
            distance[source] = 0.0
            size = _push(keys, nodes, size, 0.0, source)
    while size > 0:
        d, node, size = _pop(keys, nodes, size)
        if d > distance[node]:
            continue
        for j in range(indptr[node], indptr[node + 1]):
            other = indices[j]
            if d + weights[j] < distance[other]:
                distance[other] = d + weights[j]
                size = _push(keys, nodes, size, d + weights[j], other)
    return distance
