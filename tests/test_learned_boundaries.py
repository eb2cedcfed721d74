"""The learned boundary model: targets from masks, learning on tiny synthetic photos, storage."""

import numpy as np
import pytest

from pixseg.objectness import pixel_objectness
from pixseg.objectness.boundaries import boundary_map
from pixseg.objectness.learned import (BoundaryModel, boundary_features, load_boundary_model, outline_targets,
                                       train_boundary_model)
from pixseg.objectness.perceptron import Perceptron


def scene(seed, size=40):
    """A textured background with one or two flat-ish objects whose colours are close to it in places,
    plus strong texture edges inside the background that are not outlines."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    stripes = ((x + y) // 3 % 2).astype(float)
    image = np.stack([110 + 50 * stripes, 120 + 40 * stripes, 100 + 45 * stripes], axis=2)
    classes = np.zeros((size, size), np.uint8)
    for value in (1, 2)[: 1 + seed % 2]:
        cy, cx = rng.integers(10, size - 10, 2)
        r = rng.integers(5, 9)
        inside = (y - cy) ** 2 + (x - cx) ** 2 <= r * r
        image[inside] = rng.integers(0, 256, 3)
        classes[inside] = value
    image += rng.normal(0, 3, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), with_void_band(classes)


def with_void_band(classes):
    """`classes` with void (255) where the class changes downwards, as VOC's void band on outlines."""
    band = np.zeros_like(classes, bool)
    band[1:-1, 1:-1] = classes[1:-1, 1:-1] != classes[2:, 1:-1]
    classes[band] = 255
    return classes


def separation(model, pairs):
    """Mean boundary probability near outlines minus far from them, and the balanced accuracy at 0.5."""
    near, far = [], []
    for image, classes in pairs:
        features, _ = boundary_features(image)
        probability = model.probabilities(features.reshape(len(features), -1))
        targets = outline_targets(classes).ravel()
        near.append(probability[targets == 1])
        far.append(probability[targets == 0])
    near, far = np.concatenate(near), np.concatenate(far)
    return near.mean() - far.mean(), 0.5 * ((near > 0.5).mean() + (far <= 0.5).mean())


def test_outline_targets_follow_object_outlines_through_void():
    classes = np.zeros((20, 20), np.uint8)
    classes[5:15, 5:15] = 1
    classes[4, 4:16] = 255
    targets = outline_targets(classes)
    assert targets[10, 10] == 0 and targets[0, 0] == 0
    assert targets[5, 10] == 1 and targets[10, 5] == 1
    # Two touching objects of one class that the void band separates are two objects.
    split = np.zeros((20, 20), np.uint8)
    split[:, :9] = 1
    split[:, 9] = 255
    split[:, 10:] = 1
    assert (outline_targets(split)[:, 9] == 1).all()
    assert (outline_targets(np.ones((6, 6), np.uint8)) == 0).all()


def test_learns_outlines_and_generalises_to_unseen_scenes():
    model = train_boundary_model([scene(seed) for seed in range(6)], pixels_per_image=600, iterations=150)
    gap, accuracy = separation(model, [scene(seed) for seed in range(100, 104)])
    # Without the optimisation (the random starting weights of seed 0) the gap is -0.44 and the
    # accuracy 0.03; other starting seeds reach at most a gap of 0.37.
    assert gap > 0.8
    assert accuracy > 0.95

def test_boundary_map_is_thin_and_feeds_objectness(tmp_path):
    model = train_boundary_model([scene(seed) for seed in range(4)], pixels_per_image=400, iterations=60)
    path = tmp_path / "edges.npz"
    model.save(path)
    image, classes = scene(7, size=48)
    edges = boundary_map(image, method="learned", model=str(path))
    assert edges.shape == classes.shape and edges.dtype == np.float32
    assert 0 <= edges.min() and edges.max() <= 1
    np.testing.assert_array_equal(edges, model.boundaries(image))
    pos = pixel_objectness(image, boundary_method="learned", boundary_model=str(path), n_superpixels=80)
    assert pos.shape == classes.shape and 0 <= pos.min() and pos.max() <= 1


def test_same_data_same_model_and_exact_round_trip(tmp_path):
    pairs = [scene(seed) for seed in range(3)]
    first = train_boundary_model(pairs, pixels_per_image=300, iterations=30)
    second = train_boundary_model(pairs, pixels_per_image=300, iterations=30)
    np.testing.assert_array_equal(first.edges.hidden_weights, second.edges.hidden_weights)
    first.save(tmp_path / "m.npz")
    loaded = load_boundary_model(tmp_path / "m.npz")
    image = pairs[0][0]
    np.testing.assert_array_equal(loaded.boundaries(image), first.boundaries(image))
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_bad_inputs_and_files_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        train_boundary_model([])
    image = np.zeros((12, 12, 3), np.uint8)
    with pytest.raises(ValueError, match="no object outlines"):
        train_boundary_model([(image, np.zeros((12, 12), np.uint8))])
    with pytest.raises(ValueError, match="differs"):
        train_boundary_model([(image, np.zeros((10, 12), np.uint8))])
    with pytest.raises(ValueError, match="does not exist"):
        load_boundary_model(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        load_boundary_model(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match="not a pixseg-boundary-model"):
        load_boundary_model(tmp_path / "other.npz")
    broken = BoundaryModel(Perceptron(mean=np.zeros(3, np.float32), scale=np.ones(3, np.float32),
                                      hidden_weights=np.zeros((4, 2), np.float32), hidden_bias=np.zeros(2, np.float32),
                                      output_weights=np.zeros(2, np.float32), output_bias=0.0))
    broken.save(tmp_path / "broken.npz")
    with pytest.raises(ValueError, match="inconsistent"):
        load_boundary_model(tmp_path / "broken.npz")
    with pytest.raises(ValueError, match="needs model"):
        boundary_map(image, method="learned")


def write_voc(root, pairs):
    from PIL import Image

    from pixseg.data.palette import save_label_png

    (root / "JPEGImages").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    names = [f"img{i}" for i in range(len(pairs))]
    for name, (image, classes) in zip(names, pairs):
        Image.fromarray(image).save(root / "JPEGImages" / f"{name}.jpg", quality=95)
        save_label_png(root / "SegmentationClass" / f"{name}.png", classes)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(names) + "\n")


def test_cli_trains_a_model_used_by_objectness(tmp_path, capsys):
    from PIL import Image

    from pixseg.cli import main

    write_voc(tmp_path / "voc", [scene(seed) for seed in range(3)])
    model = tmp_path / "edges.npz"
    assert main(["train-boundaries", "--data", str(tmp_path / "voc"), "--out", str(model)]) == 0
    stored = load_boundary_model(model)
    assert stored.edges.mean.shape == (11,) and stored.ranker is not None
    before = model.read_bytes()
    assert main(["train-boundaries", "--data", str(tmp_path / "voc"), "--out", str(model)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert model.read_bytes() == before
    image, _ = scene(9, size=48)
    Image.fromarray(image).save(tmp_path / "photo.png")
    assert main(["objectness", str(tmp_path / "photo.png"), "--out", str(tmp_path / "maps"),
                 "--n-superpixels", "80", "--boundary-model", str(model)]) == 0
    expected = pixel_objectness(image, n_superpixels=80, boundary_method="learned", boundary_model=str(model))
    np.testing.assert_array_equal(np.load(tmp_path / "maps" / "photo_pos.npy"), expected)
    assert main(["objectness", str(tmp_path / "photo.png"), "--out", str(tmp_path / "maps"),
                 "--boundary-model", str(tmp_path / "none.npz")]) == 2
    assert "none.npz" in capsys.readouterr().err
