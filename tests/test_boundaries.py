"""Boundary maps: where they peak, what they ignore, and which inputs they refuse."""

import sys
import types

import numpy as np
import pytest

from pixseg.objectness.boundaries import as_rgb, boundary_map, check_boundaries


def step_image(height=40, width=60, left=(40, 90, 160), right=(200, 180, 60)):
    image = np.empty((height, width, 3), np.uint8)
    image[:, :width // 2] = left
    image[:, width // 2:] = right
    return image


def test_boundary_peaks_on_a_step_edge():
    b = boundary_map(step_image())
    assert b.dtype == np.float32 and b.shape == (40, 60)
    assert b.min() >= 0 and b.max() <= 1
    rows = b[5:-5]
    assert set(np.argmax(rows, axis=1).tolist()) <= {29, 30}
    assert rows.max(axis=1).min() > 0.5
    far = np.r_[0:24, 36:60]
    assert rows[:, far].max() < 0.05


def test_single_colour_image_has_no_boundaries():
    image = np.full((30, 30, 3), 123, np.uint8)
    assert boundary_map(image).max() < 1e-4


def test_texture_edges_are_weaker_than_an_object_outline_of_the_same_contrast():
    image = np.full((80, 120, 3), 60, np.uint8)
    stripes = (np.arange(60) // 3) % 2 == 1
    image[:, :60][:, stripes] = 180  # a striped field on the left, 3-pixel stripes
    image[25:55, 80:110] = 180  # a plain square on the right
    b = boundary_map(image)
    outline = b[30:50, 78:83].max(axis=1).mean()
    texture = b[20:60, 15:45].max(axis=1).mean()
    assert outline > 2 * texture


def test_grey_and_rgba_images_are_read_as_rgb():
    grey = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (32, 1))
    np.testing.assert_array_equal(as_rgb(grey), np.repeat(grey[..., None], 3, axis=2))
    rgb = step_image()
    rgba = np.concatenate([rgb, np.zeros(rgb.shape[:2] + (1,), np.uint8)], axis=2)
    np.testing.assert_array_equal(boundary_map(rgba), boundary_map(rgb))


@pytest.mark.parametrize("image, message", [
    (np.zeros((8, 8, 3), np.float32), "uint8"),
    (np.zeros((8, 8, 2), np.uint8), "shape"),
    (np.zeros((0, 8, 3), np.uint8), "empty"),
])
def test_bad_images_are_refused(image, message):
    with pytest.raises(ValueError, match=message):
        boundary_map(image)


def test_user_boundary_maps_are_checked():
    good = np.zeros((4, 5))
    assert check_boundaries(good, (4, 5)).dtype == np.float32
    with pytest.raises(ValueError, match="shape"):
        check_boundaries(good, (5, 4))
    with pytest.raises(ValueError, match="float"):
        check_boundaries(good.astype(np.uint8), (4, 5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_boundaries(good + 2, (4, 5))


def test_options_are_checked():
    image = step_image()
    with pytest.raises(ValueError, match="not one of"):
        boundary_map(image, method="canny")
    with pytest.raises(ValueError, match="positive"):
        boundary_map(image, sigmas=(0.0,))
    with pytest.raises(ValueError, match="only used by the methods"):
        boundary_map(image, model="edges.yml.gz")


def test_sed_without_opencv_says_cv2_is_required(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` raise ImportError
    model = tmp_path / "model.yml.gz"
    model.write_bytes(b"")
    with pytest.raises(ValueError, match="requires OpenCV"):
        boundary_map(step_image(), method="sed", model=str(model))


def test_sed_runs_the_opencv_detector_on_rgb_in_0_1(monkeypatch, tmp_path):
    seen = {}

    class Detector:
        def detectEdges(self, image):  # noqa: N802 (OpenCV's name)
            seen["image"] = image
            return np.full(image.shape[:2], 1.5, np.float32)

    def create(path):
        seen["model"] = path
        return Detector()

    fake = types.SimpleNamespace(ximgproc=types.SimpleNamespace(createStructuredEdgeDetection=create))
    monkeypatch.setitem(sys.modules, "cv2", fake)
    model = tmp_path / "model.yml.gz"
    with pytest.raises(ValueError, match="does not exist"):
        boundary_map(step_image(), method="sed", model=str(model))
    with pytest.raises(ValueError, match="needs model"):
        boundary_map(step_image(), method="sed")
    model.write_bytes(b"")
    b = boundary_map(step_image(), method="sed", model=str(model))
    assert seen["model"] == str(model) and seen["image"].dtype == np.float32
    assert seen["image"].max() <= 1.0 and b.max() == 1.0  # clipped to [0, 1]
