"""Geodesic object proposals (Krähenbühl & Koltun, ECCV 2014): segments from geodesic level sets.

For each seed superpixel (geodesic farthest-point sampling from the geodesic centre) and each
background choice ("none", or "border": every superpixel on the image border), the signed distance
D_fg - D_bg is computed on the superpixel graph; its critical level sets, the thresholds where the
sorted distances jump the most (a boundary is crossed), are the proposals. Background-only proposals
take every non-empty subset of the four image sides as background and keep the superpixels far from
it. Near-duplicates are removed by non-maximum suppression on IoU, earlier proposals winning.
A proposal is a set of superpixels: `Proposals` holds the superpixel map and a P x S membership matrix.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from pixseg.objectness.boundaries import as_rgb, boundary_map, check_boundaries
from pixseg.objectness.geodesic import build_graph, geodesic_distance, geodesic_seeds
from pixseg.objectness.superpixels import superpixels

BACKGROUNDS = ("none", "border")


@dataclass(frozen=True)
class Proposals:
    """P proposals over S superpixels: `superpixels` int32 HxW (labels 0..S-1), `membership` bool P x S."""

    superpixels: np.ndarray
    membership: np.ndarray

    def __len__(self) -> int:
        return len(self.membership)

    def masks(self) -> np.ndarray:
        """bool P x H x W, one mask per proposal (P times the image size: build it only when needed)."""
        return self.membership[:, self.superpixels]


def propose(image, *, boundaries=None, boundary_method: str = "gradient", boundary_model: str | None = None,
            n_superpixels: int = 1000, superpixel_method: str = "geodesic", **options) -> Proposals:
    """Geodesic object proposals for `image` (uint8 HxWx3; grey and RGBA are accepted, see `as_rgb`).

    `boundaries`: a float HxW map in [0, 1] to use instead of computing one with `boundary_method`
    ("gradient", or "sed" with `boundary_model`, an OpenCV model file). The remaining `options` go to
    `proposals_from_superpixels`. An image without any boundary (a single colour) has no proposals.
    """
    image = as_rgb(image)
    if boundaries is None:
        boundaries = boundary_map(image, method=boundary_method, model=boundary_model)
    else:
        boundaries = check_boundaries(boundaries, image.shape[:2])
    labels = superpixels(image, boundaries, n_superpixels, method=superpixel_method)
    return proposals_from_superpixels(labels, boundaries, **options)


def proposals_from_superpixels(labels: np.ndarray, boundaries: np.ndarray, *, n_seeds: int = 130,
                               level_sets: int = 5, max_iou: float = 0.85,
                               backgrounds: tuple[str, ...] = BACKGROUNDS, background_only: bool = True,
                               min_size: float = 0.001, max_size: float = 0.6,
                               background_only_min_size: float = 0.1, min_gap: float = 0.03,
                               edge_power: float = 1.0) -> Proposals:
    """Proposals on a superpixel map; defaults are GOP's baseline (130 seeds, 5 level sets, NMS IoU 0.85).

    Sizes are fractions of the image area: seed proposals cover `min_size`..`max_size`,
    background-only ones `background_only_min_size`..`max_size`. max_size 0.6 (rather than a larger
    limit) keeps proposals that are mostly background from flattening the objectness map; raise it
    for photos whose objects fill most of the frame. A level set is kept only where the distance jumps
    by at least `min_gap` (in boundary-strength units), so regions separated by no boundary at all
    are never proposed. `edge_power` is the exponent on the graph's boundary weights.
    """
    _check_options(n_seeds, level_sets, max_iou, backgrounds, min_size, max_size,
                   background_only_min_size, min_gap, edge_power)
    graph = build_graph(labels, boundaries, power=edge_power)
    total = graph.areas.sum()
    limits = (min_size * total, max_size * total)
    seeds, seed_maps = geodesic_seeds(graph, n_seeds)
    border = graph.sides.any(axis=0)
    candidates = []
    for background in backgrounds:
        if background == "none":
            candidates.append(critical_level_sets(seed_maps, graph.areas, level_sets, *limits, min_gap))
        else:
            # A seed on the border would be its own background; the "none" choice covers it.
            inside = ~border[seeds]
            signed = seed_maps[inside] - geodesic_distance(graph, np.flatnonzero(border))
            candidates.append(critical_level_sets(signed, graph.areas, level_sets, *limits, min_gap))
    if background_only:
        far = -np.array([geodesic_distance(graph, np.flatnonzero(graph.sides[list(subset)].any(axis=0)))
                         for subset in _side_subsets()])
        candidates.append(critical_level_sets(far, graph.areas, level_sets,
                                              background_only_min_size * total, limits[1], min_gap))
    membership = np.concatenate(candidates) if candidates else np.zeros((0, graph.n), bool)
    return Proposals(superpixels=labels, membership=suppress_duplicates(membership, graph.areas, max_iou))


def critical_level_sets(distances: np.ndarray, areas: np.ndarray, count: int, min_area: float,
                        max_area: float, min_gap: float) -> np.ndarray:
    """Up to `count` level sets {d <= t} of each row of `distances` (K x S), bool (R, S).

    The thresholds are the largest gaps between consecutive sorted distances, among sublevel sets
    whose area (summed `areas`) lies in [min_area, max_area] and whose gap is at least `min_gap`.
    Rows are listed per distance map, the largest gap first.
    """
    k, s = distances.shape
    if k == 0 or s < 2:
        return np.zeros((0, s), bool)
    order = np.argsort(distances, axis=1, kind="stable")
    ordered = np.take_along_axis(distances, order, axis=1)
    gaps = np.diff(ordered, axis=1)
    area = np.cumsum(areas[order], axis=1)[:, :-1]
    score = np.where((area >= min_area) & (area <= max_area) & (gaps >= min_gap), gaps, -np.inf)
    count = min(count, s - 1)
    best = np.argpartition(-score, count - 1, axis=1)[:, :count]
    best = np.take_along_axis(best, np.argsort(-np.take_along_axis(score, best, axis=1), axis=1), axis=1)
    rows, columns = np.nonzero(np.take_along_axis(score, best, axis=1) > -np.inf)
    cuts = best[rows, columns]
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(s)[None, :], axis=1)
    # Prefix j of the sorted order (threshold inside gap j) holds the ranks 0..j.
    return rank[rows] <= cuts[:, None]


def suppress_duplicates(membership: np.ndarray, areas: np.ndarray, max_iou: float) -> np.ndarray:
    """Greedy non-maximum suppression: drop each proposal whose pixel IoU with an earlier kept one
    is at least `max_iou`."""
    if len(membership) == 0:
        return membership
    # Identical proposals are frequent (seeds in one object find the same level set): drop them
    # before the quadratic IoU step, keeping first occurrences in order.
    first = {}
    for i, row in enumerate(np.packbits(membership, axis=1)):
        first.setdefault(row.tobytes(), i)
    membership = membership[sorted(first.values())]
    weighted = membership.astype(np.float32)
    area = weighted @ areas.astype(np.float32)
    intersection = (weighted * areas.astype(np.float32)) @ weighted.T
    iou = intersection / (area[:, None] + area[None, :] - intersection)
    suppressed = np.zeros(len(membership), bool)
    keep = []
    for i in range(len(membership)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= iou[i] >= max_iou
    return membership[keep]


def _side_subsets():
    sides = range(4)
    return [subset for size in range(1, 5) for subset in itertools.combinations(sides, size)]


def _check_options(n_seeds, level_sets, max_iou, backgrounds, min_size, max_size, background_only_min_size,
                   min_gap, edge_power) -> None:
    if n_seeds < 1 or level_sets < 1:
        raise ValueError(f"n_seeds and level_sets must be at least 1, got {n_seeds} and {level_sets}")
    if not 0 < max_iou <= 1:
        raise ValueError(f"max_iou must be in (0, 1], got {max_iou}")
    unknown = [b for b in backgrounds if b not in BACKGROUNDS]
    if unknown or len(set(backgrounds)) != len(backgrounds):
        raise ValueError(f"backgrounds must be distinct names from {', '.join(BACKGROUNDS)}, got {backgrounds}")
    if not 0 <= min_size <= max_size <= 1 or not 0 <= background_only_min_size <= max_size:
        raise ValueError(f"sizes must satisfy 0 <= min_size ({min_size}), background_only_min_size "
                         f"({background_only_min_size}) <= max_size ({max_size}) <= 1")
    if min_gap < 0 or edge_power <= 0:
        raise ValueError(f"min_gap must be >= 0 and edge_power > 0, got {min_gap} and {edge_power}")
