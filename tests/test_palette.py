import numpy as np
import pytest
from PIL import Image

from pixseg.data import palette
from pixseg.data.palette import VOC_CLASSES, read_label_png, save_atomic, save_label_png, voc_colormap


def test_voc_classes_in_voc_order():
    assert len(VOC_CLASSES) == 21
    assert VOC_CLASSES[0] == "background"
    assert VOC_CLASSES[1] == "aeroplane" and VOC_CLASSES[15] == "person" and VOC_CLASSES[20] == "tvmonitor"


def test_colormap_matches_known_voc_colours():
    cmap = voc_colormap()
    assert cmap.shape == (256, 3) and cmap.dtype == np.uint8
    assert tuple(cmap[0]) == (0, 0, 0)
    assert tuple(cmap[1]) == (128, 0, 0)
    assert tuple(cmap[15]) == (192, 128, 128)
    assert tuple(cmap[255]) == (224, 224, 192)
    assert len({tuple(c) for c in cmap}) == 256
    np.testing.assert_array_equal(voc_colormap(21), cmap[:21])


@pytest.mark.parametrize("n", [0, 257])
def test_colormap_size_checked(n):
    with pytest.raises(ValueError, match=str(n)):
        voc_colormap(n)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.int32])
def test_label_png_round_trip(tmp_path, dtype):
    rng = np.random.default_rng(0)
    labels = rng.choice([0, 1, 7, 20, 255], size=(37, 53)).astype(dtype)
    path = tmp_path / "label.png"
    save_label_png(path, labels)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "P"
        np.testing.assert_array_equal(np.asarray(image.getpalette()).reshape(-1, 3)[:256], voc_colormap())
    back = read_label_png(path)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, labels)
    assert [p.name for p in tmp_path.iterdir()] == ["label.png"]  # no temporary file left


def test_read_label_png_accepts_grayscale(tmp_path):
    labels = np.array([[0, 3], [255, 20]], dtype=np.uint8)
    Image.fromarray(labels).save(tmp_path / "gray.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "gray.png"), labels)


def test_read_label_png_rejects_rgb_naming_file(tmp_path):
    path = tmp_path / "colour.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    with pytest.raises(ValueError, match=r"colour\.png.*'RGB'"):
        read_label_png(path)


def test_read_label_png_unreadable_and_missing(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"broken\.png"):
        read_label_png(path)
    with pytest.raises(FileNotFoundError, match=r"absent\.png"):
        read_label_png(tmp_path / "absent.png")


@pytest.mark.parametrize("labels, message", [
    (np.array([[0, 256]]), r"0\.\.256"),
    (np.array([[-1, 3]]), r"-1\.\.3"),
    (np.zeros((2, 2, 3), np.uint8), r"\(2, 2, 3\)"),
    (np.zeros((2, 2), np.float32), "float32"),
])
def test_save_label_png_rejects_bad_labels(tmp_path, labels, message):
    with pytest.raises(ValueError, match=message) as error:
        save_label_png(tmp_path / "bad.png", labels)
    assert "bad.png" in str(error.value)
    assert not list(tmp_path.iterdir())


def test_save_atomic_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "label.png"
    save_label_png(path, np.ones((3, 3), np.uint8))
    before = path.read_bytes()

    def failing_save(self, fp, format=None, **params):
        open(fp, "wb").write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(palette.Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_atomic(Image.new("L", (3, 3)), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["label.png"]


def test_save_atomic_needs_known_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"\.tif"):
        save_atomic(Image.new("L", (2, 2)), tmp_path / "x.tif")
