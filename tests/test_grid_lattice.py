"""The grid lattice (the smoothness kernel's lattice in dense, streaming form) against the general
permutohedral lattice on the same features: same vertices, same filter."""

import numpy as np
import pytest

from pixseg.crf.grid_lattice import GridLattice, grid_filter
from pixseg.crf.features import smoothness_features
from pixseg.crf.lattice import PermutohedralLattice

# theta below 1 leaves untouched cells inside a lattice row (pixels sparser than the lattice);
# one-pixel-wide and one-pixel-high images have lattice rows of a cell or two.
SHAPES = [(23, 31, 1.0), (40, 29, 3.0), (37, 45, 0.4), (33, 26, 0.7), (50, 64, 8.0), (30, 30, 80.0),
          (1, 1, 1.0), (1, 40, 2.0), (40, 1, 2.0)]


@pytest.mark.parametrize("height, width, theta", SHAPES)
def test_grid_lattice_is_the_lattice_of_the_smoothness_features(height, width, theta):
    grid = GridLattice(height, width, theta)
    general = PermutohedralLattice(smoothness_features(height, width, theta))
    assert grid.num_vertices == general.num_vertices
    values = np.random.default_rng(0).random((5, height * width)).astype(np.float32)
    # The same sums in the same order: equal up to float32 rounding (exactly equal as measured).
    np.testing.assert_allclose(grid.filter(values), general.filter(values), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("height, width, theta", [(97, 61, 1.0), (120, 33, 3.0), (90, 70, 0.4)])
def test_bands_and_filtering_in_place_change_nothing(height, width, theta):
    """Bands (one per thread) repeat the lattice rows at their edges and copy the image rows they
    share before filtering in place; every band count gives the one-band result, in place or not."""
    grid = GridLattice(height, width, theta)
    rng = np.random.default_rng(1)
    values = rng.random((height * width, 8)).astype(np.float32)
    splat_weights = grid.weights * rng.uniform(0.5, 1.5, (height * width, 1)).astype(np.float32)
    slice_weights = grid.weights * np.float32(0.3)

    def run(bands, in_place):
        source = values.copy()
        out = source if in_place else np.empty_like(source)
        grid_filter(source, grid.rows, grid.cols, splat_weights, slice_weights, grid.spans, grid.holes,
                    grid.hole_starts, grid.first_row, grid.last_row, width, bands, grid.ring_size, out)
        return out

    one_band = run(1, False)
    assert np.abs(one_band).max() > 0.1
    for bands in (2, 3, 5):
        for in_place in (False, True):
            np.testing.assert_array_equal(run(bands, in_place), one_band)


def test_bad_grid_is_refused():
    with pytest.raises(ValueError, match="at least one pixel"):
        GridLattice(0, 5, 1.0)
    with pytest.raises(ValueError, match="theta must be positive"):
        GridLattice(5, 5, 0.0)
    with pytest.raises(ValueError, match=r"must be C x 25"):
        GridLattice(5, 5, 1.0).filter(np.ones((2, 24)))
