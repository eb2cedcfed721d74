import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from pixseg.cli import main
from pixseg.data import read_image, read_label_png
from pixseg.data.synthetic import _label_maps, make_synthetic_voc, render_scene


@pytest.fixture(scope="module")
def scenes():
    """100 rendered scenes at the demo's size, drawn as make_synthetic_voc draws them."""
    return [render_scene(np.random.default_rng([7, 0, j]), (96, 96)) for j in range(100)]


def test_layout_and_formats(tmp_path):
    root = make_synthetic_voc(tmp_path / "voc", n_train=3, n_val=2, size=(48, 80), seed=1, progress=False)
    splits = root / "ImageSets" / "Segmentation"
    train = splits.joinpath("train.txt").read_text().split()
    val = splits.joinpath("val.txt").read_text().split()
    assert len(train) == 3 and len(val) == 2 and not set(train) & set(val)
    assert splits.joinpath("trainval.txt").read_text().split() == train + val
    for image_id in train + val:
        with Image.open(root / "JPEGImages" / f"{image_id}.jpg") as image:
            assert image.format == "JPEG" and image.size == (80, 48) and image.mode == "RGB"
        for folder in ("SegmentationClass", "SegmentationObject"):
            with Image.open(root / folder / f"{image_id}.png") as label:
                assert label.format == "PNG" and label.mode == "P" and label.size == (80, 48)
    assert not [p for p in root.rglob(".*")]  # no temporary files left


def test_deterministic_for_a_seed(tmp_path):
    runs = [make_synthetic_voc(tmp_path / name, n_train=3, n_val=2, size=(64, 64), seed=seed, progress=False)
            for name, seed in (("a", 5), ("b", 5), ("c", 6))]
    ids = runs[0].joinpath("ImageSets/Segmentation/trainval.txt").read_text().split()
    for image_id in ids:
        for folder in ("SegmentationClass", "SegmentationObject"):
            first, second, other = (r.joinpath(folder, f"{image_id}.png").read_bytes() for r in runs)
            assert first == second
        first, second = (read_image(r / "JPEGImages" / f"{image_id}.jpg") for r in runs[:2])
        np.testing.assert_array_equal(first, second)
    differs = [not np.array_equal(read_image(runs[0] / "JPEGImages" / f"{i}.jpg"),
                                  read_image(runs[2] / "JPEGImages" / f"{i}.jpg")) for i in ids]
    assert all(differs)


def test_workers_write_the_same_files(tmp_path):
    one = make_synthetic_voc(tmp_path / "one", n_train=5, n_val=2, size=(40, 40), progress=False)
    two = make_synthetic_voc(tmp_path / "two", n_train=5, n_val=2, size=(40, 40), progress=False, workers=2)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files)


def test_val_set_independent_of_train_count(tmp_path):
    small = make_synthetic_voc(tmp_path / "small", n_train=1, n_val=2, size=(48, 48), progress=False)
    large = make_synthetic_voc(tmp_path / "large", n_train=4, n_val=2, size=(48, 48), progress=False)
    for image_id in ("val_000000", "val_000001"):
        assert (small / "SegmentationClass" / f"{image_id}.png").read_bytes() == \
            (large / "SegmentationClass" / f"{image_id}.png").read_bytes()


def test_instance_map_consistent_with_class_map(scenes):
    for image, labels, objects in scenes:
        assert image.shape == (96, 96, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(labels == 0, objects == 0)
        np.testing.assert_array_equal(labels == 255, objects == 255)
        ids = sorted(set(np.unique(objects)) - {0, 255})
        assert ids == list(range(1, len(ids) + 1)) and 1 <= len(ids) <= 4
        for k in ids:
            assert len(np.unique(labels[objects == k])) == 1


def test_void_band_separates_every_region(scenes):
    """Two different non-void labels never touch: a void band runs along every object boundary."""
    for _, labels, objects in scenes:
        for maps in (labels, objects):
            for a, b in ((maps[1:], maps[:-1]), (maps[:, 1:], maps[:, :-1])):
                touching = (a != b) & (a != 255) & (b != 255)
                assert not touching.any()
        assert (objects == 255).any()


@pytest.mark.parametrize("radius", [1, 2])
def test_void_band_straddles_the_boundary(radius):
    instances = np.zeros((40, 40), np.uint8)
    instances[10:30, 10:20] = 1  # a square object, half hidden by a second one on its right
    instances[10:30, 20:30] = 2
    labels, objects = _label_maps(instances, [0, 9, 4], radius)
    row = labels[20]
    expected = [0] * (10 - radius) + [255] * 2 * radius + [9] * (10 - 2 * radius) + [255] * 2 * radius
    expected += [4] * (10 - 2 * radius) + [255] * 2 * radius + [0] * (10 - radius)
    assert row.tolist() == expected
    assert objects[20].tolist() == [{9: 1, 4: 2}.get(v, v) for v in expected]


def test_fully_void_instances_dropped_and_renumbered():
    instances = np.zeros((20, 20), np.uint8)
    instances[2:4, 2:12] = 1  # two pixels thick: all void with a 1-pixel band
    instances[8:18, 8:18] = 2
    labels, objects = _label_maps(instances, [0, 5, 7], 1)
    assert set(np.unique(objects)) == {0, 1, 255} and set(np.unique(labels)) == {0, 7, 255}


def test_statistics_over_many_images(scenes):
    counts = np.zeros(256, np.int64)
    for _, labels, _ in scenes:
        counts += np.bincount(labels.ravel(), minlength=256)
    assert (counts[1:21] > 0).all(), "every object class appears"
    assert counts[21:255].sum() == 0
    fractions = counts / counts.sum()
    assert 0.5 < fractions[0] < 0.9 and 0.1 < fractions[1:21].sum() < 0.4 and 0.02 < fractions[255] < 0.15
    occluded = sum(touching_instances(objects) for _, _, objects in scenes)
    assert occluded >= 10, "objects overlap in a good share of the images"


def touching_instances(objects) -> bool:
    """Whether two instances meet across a void band (one occludes or abuts the other)."""
    ids = [k for k in np.unique(objects) if k not in (0, 255)]
    grown = [ndimage.binary_dilation(objects == k, iterations=3) for k in ids]
    return any((grown[i] & grown[j]).any() for i in range(len(ids)) for j in range(i))


def test_background_is_textured_not_flat(scenes):
    spreads = [image[labels == 0].std(axis=0).mean() for image, labels, _ in scenes[:20]]
    assert min(spreads) > 3.0


def test_objects_scale_with_image_size():
    def foreground(size):
        return np.mean([(render_scene(np.random.default_rng([0, 0, j]), size)[1] > 0).mean()
                        for j in range(12)])
    small, large = foreground((48, 48)), foreground((192, 192))
    assert 0.6 < small / large < 1.6


def test_small_and_wide_sizes():
    for size in ((32, 32), (40, 160)):
        image, labels, objects = render_scene(np.random.default_rng(0), size)
        assert image.shape == (*size, 3) and labels.shape == size and objects.shape == size


@pytest.mark.parametrize("kwargs, message", [
    ({"n_train": -1}, "n_train"),
    ({"n_train": 0, "n_val": 0}, "at least 1"),
    ({"size": (16, 64)}, r"\(16, 64\)"),
    ({"size": (64,)}, "size"),
    ({"seed": -3}, "-3"),
    ({"workers": 0}, "workers"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic_voc(tmp_path, **{"n_train": 1, "n_val": 1, "progress": False, **kwargs})


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["synth", "--out", str(out), "--n-train", "2", "--n-val", "1", "--size", "40", "48",
                 "--seed", "3", "--workers", "2"]) == 0
    assert "2 train + 1 val" in capsys.readouterr().out
    labels = read_label_png(out / "SegmentationClass" / "val_000000.png")
    assert labels.shape == (40, 48)
    assert main(["synth", "--out", str(out), "--size", "8", "8"]) == 2
    assert "at least 32 pixels" in capsys.readouterr().err


def test_interrupted_run_leaves_no_split_files(tmp_path, monkeypatch):
    from pixseg.data import synthetic

    root = make_synthetic_voc(tmp_path / "voc", n_train=2, n_val=1, size=(32, 32), progress=False)
    assert (root / "ImageSets/Segmentation/train.txt").is_file()

    def failing_render(rng, size):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "render_scene", failing_render)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic_voc(root, n_train=2, n_val=1, size=(32, 32), progress=False, overwrite=True)
    assert not list((root / "ImageSets/Segmentation").iterdir())
