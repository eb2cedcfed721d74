"""`pixseg objectness`: maps saved exactly and as 16-bit PNG, overlays, and one-line errors."""

import numpy as np
from PIL import Image

from pixseg.cli import main
from pixseg.objectness import pixel_objectness
from pixseg.objectness.cache import cache_key


def write_picture(path, colour=(220, 200, 40)):
    image = np.full((48, 64, 3), (60, 110, 160), np.uint8)
    image[12:36, 20:50] = colour
    Image.fromarray(image).save(path)
    return image


def test_writes_maps_and_overlays(tmp_path):
    image = write_picture(tmp_path / "a.png")
    write_picture(tmp_path / "b.jpg", colour=(200, 40, 40))
    out = tmp_path / "out"
    assert main(["objectness", str(tmp_path / "a.png"), str(tmp_path / "b.jpg"), "--out", str(out),
                 "--n-superpixels", "80"]) == 0
    pos = np.load(out / "a_pos.npy")
    np.testing.assert_array_equal(pos, pixel_objectness(image, n_superpixels=80))
    png = np.asarray(Image.open(out / "a_pos.png"))
    assert png.dtype == np.uint16
    np.testing.assert_allclose(png / 65535, pos, atol=1 / 65535)
    overlay = np.asarray(Image.open(out / "a_overlay.png"))
    assert overlay.shape == (48, 64, 3)
    assert (out / "b_pos.npy").is_file() and (out / "b_overlay.png").is_file()
    assert (out / "pos_cache" / f"{cache_key(image, {'n_superpixels': 80})}.npy").is_file()


def test_npy_only_format(tmp_path):
    write_picture(tmp_path / "a.png")
    assert main(["objectness", str(tmp_path / "a.png"), "--out", str(tmp_path), "--format", "npy",
                 "--n-superpixels", "80"]) == 0
    assert (tmp_path / "a_pos.npy").is_file() and not (tmp_path / "a_pos.png").exists()


def test_user_errors_are_one_line(tmp_path, capsys):
    write_picture(tmp_path / "a.png")
    (tmp_path / "x").mkdir()
    write_picture(tmp_path / "x" / "a.png")
    assert main(["objectness", str(tmp_path / "a.png"), str(tmp_path / "x" / "a.png"), "--out", str(tmp_path)]) == 2
    assert "rename one" in capsys.readouterr().err
    assert main(["objectness", str(tmp_path / "missing.png"), "--out", str(tmp_path)]) == 2
    assert "missing.png" in capsys.readouterr().err
    assert main(["objectness", str(tmp_path / "a.png"), "--out", str(tmp_path), "--n-seeds", "0"]) == 2
    assert "--n-seeds 0" in capsys.readouterr().err
