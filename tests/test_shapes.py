import numpy as np
import pytest
from scipy import ndimage

from pixseg.data import shapes
from pixseg.data.synthetic import CLASS_STYLES

GRID = (np.arange(200) + 0.5) / 100 - 1
U, V = np.meshgrid(GRID, GRID)
PIXEL_AREA = (2 / 200) ** 2


def area(mask):
    return mask.sum() * PIXEL_AREA


def test_primitive_areas():
    assert area(shapes.disc(U, V, 0.1, -0.2, 0.5)) == pytest.approx(np.pi * 0.25, rel=0.01)
    assert area(shapes.ellipse(U, V, 0, 0, 0.8, 0.4)) == pytest.approx(np.pi * 0.32, rel=0.01)
    assert area(shapes.ring(U, V, 0, 0, 0.6, 0.4)) == pytest.approx(np.pi * 0.2, rel=0.02)
    assert area(shapes.box(U, V, -0.5, -0.25, 0.5, 0.25)) == pytest.approx(0.5, rel=0.02)
    capsule = shapes.segment(U, V, -0.5, 0, 0.5, 0, 0.2)  # a 1 x 0.2 bar with round ends
    assert area(capsule) == pytest.approx(0.2 + np.pi * 0.01, rel=0.03)


def test_polygon_either_winding():
    square = [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]
    clockwise = shapes.polygon(U, V, square)
    np.testing.assert_array_equal(clockwise, shapes.polygon(U, V, square[::-1]))
    assert area(clockwise) == pytest.approx(1.0, rel=0.02)
    assert area(shapes.polygon(U, V, [(0, -0.9), (0.8, 0.5), (-0.8, 0.5)])) == pytest.approx(1.12, rel=0.02)


def test_star_tips_and_notches():
    def inside(radius, angle):
        return bool(shapes.star(radius * np.cos(angle), radius * np.sin(angle), 5, 0.8, 0.3))

    assert inside(0.75, 0.0) and inside(0.75, 2 * np.pi / 5)  # along two tips
    assert not inside(0.5, np.pi / 5) and inside(0.28, np.pi / 5)  # halfway between them
    assert not inside(0.85, 0.0)


def test_families_are_distinct_and_fit_their_box():
    masks = [style[0](U, V) for style in CLASS_STYLES]
    for mask in masks:
        assert 0.05 < mask.mean() < 0.8
        assert not mask[[0, -1], :].all() and not mask[:, [0, -1]].all()
    for i in range(len(masks)):
        for j in range(i):
            overlap = (masks[i] & masks[j]).sum() / (masks[i] | masks[j]).sum()
            assert overlap < 0.8, (i, j)


def test_thin_parts_on_several_classes():
    """Legs, wires, handles and frames vanish under an opening that leaves compact shapes whole."""
    lost = []
    for shape, *_ in CLASS_STYLES:
        mask = shape(U, V)
        opened = ndimage.binary_opening(mask, structure=np.ones((13, 13), bool))
        lost.append(1 - opened.sum() / mask.sum())
    assert sum(fraction > 0.2 for fraction in lost) >= 5
    assert sum(fraction < 0.1 for fraction in lost) >= 5
