"""Per-pixel lattice features of the dense CRF's kernels: positions (and colours) over bandwidths.

Their float32 rounding decides which simplex a pixel lands in, so it is the reference's: pixel
coordinates are divided in float64 by the float32 bandwidth (what numpy does to an integer grid)
and rounded to float32; colours are divided in float32.
"""

import numpy as np
from numba import prange

from pixseg.jit import jit


def smoothness_features(height, width, theta_g):
    """(x / theta_g, y / theta_g) per pixel in row-major order: N x 2 float32 (x = column index)."""
    features = np.empty((height * width, 2), np.float32)
    _fill_features(np.empty((height, width, 0), np.uint8), np.float64(np.float32(theta_g)), np.float32(1.0), features)
    return features


def appearance_features(image, theta_a, theta_b):
    """(x / theta_a, y / theta_a, r / theta_b, g / theta_b, b / theta_b) per pixel: N x 5 float32."""
    height, width = image.shape[:2]
    features = np.empty((height * width, 5), np.float32)
    _fill_features(image, np.float64(np.float32(theta_a)), np.float32(theta_b), features)
    return features


@jit(parallel=True)
def _fill_features(image, position_theta, colour_theta, out):
    """Per pixel, row-major: x and y / position_theta (in float64, rounded to float32: the
    arithmetic of dividing numpy's integer grid by a float32 bandwidth, which the grid lattice and
    the reference share), then each channel of the image / colour_theta in float32. One parallel
    pass, where the numpy expression makes several passes over N x 5 temporaries."""
    height, width, channels = image.shape
    for y in prange(height):
        row_y = np.float32(y / position_theta)
        for x in range(width):
            i = y * width + x
            out[i, 0] = np.float32(x / position_theta)
            out[i, 1] = row_y
            for c in range(channels):
                out[i, 2 + c] = np.float32(image[y, x, c]) / colour_theta
