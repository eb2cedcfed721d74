"""Over-segmentation into superpixels: GOP's geodesic k-means on a boundary map, or SLIC.

Geodesic k-means: seeds on a hexagonal lattice, each moved to the weakest boundary pixel near it;
every pixel joins the seed with the smallest geodesic distance (a raster-scan distance transform),
where a step between 4-neighbours costs 1 + `edge_cost` * (boundary strength), so regions stay
compact in flat areas and stop at boundaries; each seed then moves to the pixel of its region
nearest the region's centroid (and off any boundary), and the assignment is repeated. The clean-up
splits regions into connected components (a few-sweep transform can leave a stray fragment) and
merges components below a minimum size into the neighbour they share most border with.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.measure import label as connected_components

from pixseg.objectness.dijkstra import grid_geodesic

METHODS = ("geodesic", "slic")
MIN_SIDE = 8
MIN_SPACING = 3.0


def superpixels(image: np.ndarray, boundaries: np.ndarray, n_segments: int = 1000, *,
                method: str = "geodesic", iterations: int = 2, sweeps: int = 3, edge_cost: float = 40.0,
                min_size_ratio: float = 0.125) -> np.ndarray:
    """Label map int32 HxW with labels 0..S-1, every label one 4-connected region.

    `image` uint8 HxWx3 (only SLIC reads it), `boundaries` float32 HxW in [0, 1] (checked by the
    caller). `n_segments` is a target: lattice seeds are at least 3 pixels apart, so small images
    get fewer superpixels; images under 8 pixels on a side are refused. Regions smaller than
    `min_size_ratio` times the mean region area are merged into a neighbour.
    """
    height, width = boundaries.shape
    if min(height, width) < MIN_SIDE:
        raise ValueError(f"image of {height}x{width} pixels is too small for superpixels: "
                         f"both sides need at least {MIN_SIDE} pixels")
    if n_segments < 1 or iterations < 1 or sweeps < 1:
        raise ValueError(f"n_segments, iterations and sweeps must be at least 1, got {n_segments}, "
                         f"{iterations} and {sweeps}")
    if edge_cost < 0 or not 0 <= min_size_ratio < 1:
        raise ValueError(f"edge_cost must be >= 0 and min_size_ratio in [0, 1), got {edge_cost} and {min_size_ratio}")
    if method == "geodesic":
        labels = _geodesic_kmeans(boundaries, n_segments, iterations, sweeps, edge_cost)
    elif method == "slic":
        from skimage.segmentation import slic

        labels = slic(image, n_segments=n_segments, compactness=10.0, start_label=0,
                      enforce_connectivity=True)
    else:
        raise ValueError(f"superpixel method {method!r} is not one of {', '.join(METHODS)}")
    return _clean_up(labels, min_size_ratio)


def hexagonal_seeds(shape: tuple[int, int], n_segments: int) -> np.ndarray:
    """(K, 2) int (row, col) seeds on a hexagonal lattice with about `n_segments` cells."""
    height, width = shape
    # A hexagonal cell of lattice spacing s has area s^2 sqrt(3) / 2.
    spacing = max(math.sqrt(2 * height * width / (math.sqrt(3) * n_segments)), MIN_SPACING)
    row_step = spacing * math.sqrt(3) / 2
    # Starting offsets are capped at the middle so that a lattice coarser than the image keeps a seed.
    rows = np.arange(min(row_step / 2, (height - 1) / 2), height, row_step)
    seeds = []
    for i, y in enumerate(rows):
        offset = min(spacing / 2 if i % 2 else spacing / 4, (width - 1) / 2)
        xs = np.arange(offset, width, spacing)
        seeds.append(np.stack([np.full(len(xs), y), xs], axis=1))
    seeds = np.concatenate(seeds).astype(int)
    return np.clip(seeds, 0, [height - 1, width - 1])


def _geodesic_kmeans(boundaries, n_segments, iterations, sweeps, edge_cost) -> np.ndarray:
    seeds = hexagonal_seeds(boundaries.shape, n_segments)
    radius = max(1, int(math.sqrt(boundaries.size / len(seeds)) / 4))
    horizontal, vertical = _step_costs(boundaries, edge_cost)
    for iteration in range(iterations):
        # A seed on a boundary pixel would reach both sides of it at the same cost.
        seeds = _move_to_boundary_minimum(boundaries, seeds, radius)
        flat = np.unique(np.ravel_multi_index(seeds.T, boundaries.shape))
        # Each pixel joins the seed with the smallest geodesic distance.
        labels = grid_geodesic(horizontal, vertical, flat, sweeps)[1]
        if iteration + 1 < iterations:
            seeds = np.stack(np.divmod(_recentre(labels, len(flat)), boundaries.shape[1]), axis=1)
    return labels


def _move_to_boundary_minimum(boundaries, seeds, radius) -> np.ndarray:
    """Each seed moved to the weakest-boundary pixel within `radius` (GOP's seed perturbation)."""
    height, width = boundaries.shape
    offsets = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    ys = np.clip(seeds[:, 0, None] + dy.ravel(), 0, height - 1)
    xs = np.clip(seeds[:, 1, None] + dx.ravel(), 0, width - 1)
    # Ties (flat areas) go to the first minimum; the centre is listed first so a seed stays put.
    order = np.argsort(np.abs(dy.ravel()) + np.abs(dx.ravel()), kind="stable")
    ys, xs = ys[:, order], xs[:, order]
    best = np.argmin(boundaries[ys, xs], axis=1)
    picked = np.arange(len(seeds))
    return np.stack([ys[picked, best], xs[picked, best]], axis=1)


def _step_costs(boundaries, edge_cost) -> tuple[np.ndarray, np.ndarray]:
    """Cost of each horizontal and vertical step: 1 + edge_cost * max(boundary at both ends)."""
    b = boundaries.astype(np.float64)
    return (1.0 + edge_cost * np.maximum(b[:, :-1], b[:, 1:]),
            1.0 + edge_cost * np.maximum(b[:-1, :], b[1:, :]))


def _recentre(labels, n_labels) -> np.ndarray:
    """Flat index of each region's pixel nearest the region's centroid."""
    height, width = labels.shape
    flat = labels.ravel()
    ys, xs = np.divmod(np.arange(flat.size), width)
    counts = np.maximum(np.bincount(flat, minlength=n_labels), 1)
    cy = np.bincount(flat, ys, n_labels) / counts
    cx = np.bincount(flat, xs, n_labels) / counts
    nearest = (np.clip(np.rint(cy), 0, height - 1) * width + np.clip(np.rint(cx), 0, width - 1)).astype(np.int64)
    # The pixel at the rounded centroid is the answer when the region holds it (compact regions
    # do); the others search their own pixels.
    missed = np.flatnonzero(flat[nearest] != np.arange(n_labels))
    if missed.size:
        pixels = np.flatnonzero(np.isin(flat, missed))
        owner = flat[pixels]
        distance = (ys[pixels] - cy[owner]) ** 2 + (xs[pixels] - cx[owner]) ** 2
        order = np.lexsort((distance, owner))
        first = np.unique(owner[order], return_index=True)[1]
        nearest[owner[order][first]] = pixels[order][first]
    return np.unique(nearest)


def _clean_up(labels, min_size_ratio) -> np.ndarray:
    """Relabel connected regions 0..S-1 and merge regions below the size limit into a neighbour."""
    components = connected_components(labels, background=-1, connectivity=1) - 1
    n = components.max() + 1
    min_size = min_size_ratio * components.size / n
    sizes = np.bincount(components.ravel(), minlength=n)
    while n > 1 and sizes.min() < min_size:
        best = _longest_border_neighbour(components, n)
        parent = np.arange(n)
        for region in np.argsort(sizes, kind="stable"):
            if sizes[region] >= min_size:
                break
            # Union-find, so that two small regions naming each other merge instead of swapping.
            a, b = _root(parent, region), _root(parent, best[region])
            if a != b:
                parent[a] = b
        roots = np.array([_root(parent, region) for region in range(n)])
        _, components = np.unique(roots[components], return_inverse=True)
        components = components.reshape(labels.shape)
        n = components.max() + 1
        sizes = np.bincount(components.ravel(), minlength=n)
    return components.astype(np.int32)


def _root(parent, x):
    while parent[x] != x:
        x = parent[x]
    return x


def _longest_border_neighbour(labels, n) -> np.ndarray:
    """For each label, the adjacent label sharing the most 4-neighbour pixel pairs with it."""
    keys = []
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        differ = a != b
        a, b = a[differ].astype(np.int64), b[differ].astype(np.int64)
        keys.extend([a * n + b, b * n + a])
    keys, lengths = np.unique(np.concatenate(keys), return_counts=True)
    region, neighbour = np.divmod(keys, n)
    order = np.lexsort((-lengths, region))
    best = np.arange(n)
    first = np.unique(region[order], return_index=True)[1]
    best[region[order][first]] = neighbour[order][first]
    return best
