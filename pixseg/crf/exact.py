"""The exact O(N^2) Gaussian filter: ground truth for the permutohedral lattice on small inputs."""

import numpy as np

_ROWS_PER_BLOCK = 512  # bounds the N x block kernel matrix held in memory at once


def exact_filter(features, values):
    """sum_j exp(-|f_i - f_j|^2 / 2) values_j for features N x d and values C x N, in float64.

    The sum includes j = i. Quadratic in N in time and uses N x 512 floats of memory: for tests.
    """
    features = np.asarray(features, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if features.ndim != 2 or values.ndim != 2 or values.shape[1] != features.shape[0]:
        raise ValueError(f"expected features N x d and values C x N, got shapes {features.shape} "
                         f"and {values.shape}")
    squared = (features ** 2).sum(axis=1)
    out = np.empty_like(values)
    for start in range(0, features.shape[0], _ROWS_PER_BLOCK):
        block = slice(start, start + _ROWS_PER_BLOCK)
        distance = squared[block, None] + squared[None, :] - 2.0 * features[block] @ features.T
        out[:, block] = values @ np.exp(-0.5 * np.maximum(distance, 0.0)).T
    return out
