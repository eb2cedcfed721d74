"""Every dataset reader on small files written in its exact on-disk format, labels checked value by value."""

import numpy as np
import pytest
from PIL import Image

from pixseg.data import DATASETS, create_dataset, detect_dataset, save_label_png
from pixseg.data.cityscapes import CITYSCAPES_CLASSES

# The official Cityscapes table, written out here independently of the reader: label id -> train id.
CITYSCAPES_TRAIN_IDS = [255] * 7 + [0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5, 255, 6, 7, 8, 9, 10, 11, 12, 13,
                                    14, 15, 255, 255, 16, 17, 18]


def write_rgb(path, size=(6, 8), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)


def write_grey(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint8), mode="L").save(path)


def make_cityscapes(root, train_ids=False, size=(6, 8)):
    """Two cities in train, one in val; labels hold every label id 0..33 (and 255)."""
    ids = np.resize(np.append(np.arange(34), 255), size)
    kind = "labelTrainIds" if train_ids else "labelIds"
    values = np.array(CITYSCAPES_TRAIN_IDS + [255])[np.resize(np.arange(35), size)] if train_ids else ids
    for split, city, frame in (("train", "aachen", 19), ("train", "bremen", 19), ("val", "lindau", 19)):
        stem = f"{city}_000000_{frame:06d}"
        write_rgb(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", size)
        write_grey(root / "gtFine" / split / city / f"{stem}_gtFine_{kind}.png", values)
    return ids


def test_cityscapes_label_ids_map_to_train_ids(tmp_path):
    ids = make_cityscapes(tmp_path)
    train = create_dataset("cityscapes", tmp_path, "train")
    assert len(train) == 2 and train.ids == ["aachen/aachen_000000_000019", "bremen/bremen_000000_000019"]
    assert train.num_classes == 19 and train.classes == CITYSCAPES_CLASSES and train.ignore_index == 255
    image, label = train[0]
    assert image.shape == (6, 8, 3) and label.dtype == np.uint8
    expected = np.array(CITYSCAPES_TRAIN_IDS + [255])[np.minimum(ids, 34)]
    np.testing.assert_array_equal(label, expected)
    assert len(create_dataset("cityscapes", tmp_path, "val")) == 1


def test_cityscapes_train_ids_read_as_they_are(tmp_path):
    make_cityscapes(tmp_path, train_ids=True)
    label = create_dataset("cityscapes", tmp_path, "val")[0][1]
    np.testing.assert_array_equal(label, np.array(CITYSCAPES_TRAIN_IDS + [255])[np.resize(np.arange(35), (6, 8))])


def test_cityscapes_errors(tmp_path):
    make_cityscapes(tmp_path)
    (tmp_path / "gtFine/train/bremen/bremen_000000_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"bremen_000000_000019_leftImg8bit\.png has no label.*"
                                                r"_gtFine_labelIds\.png nor .*_gtFine_labelTrainIds\.png"):
        create_dataset("cityscapes", tmp_path, "train")
    write_grey(tmp_path / "gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png", np.full((6, 8), 40))
    with pytest.raises(ValueError, match=r"lindau_000000_000019_gtFine_labelIds\.png has values \[40\]"):
        create_dataset("cityscapes", tmp_path, "val")[0]
    with pytest.raises(ValueError, match="split 'extra'"):
        create_dataset("cityscapes", tmp_path, "extra")


def test_factory_detects_layouts_and_names_what_it_looked_for(tmp_path):
    make_cityscapes(tmp_path / "cityscapes")
    assert detect_dataset(tmp_path / "cityscapes") == "cityscapes"
    assert detect_dataset(tmp_path) == "cityscapes"  # the folder the archives were unpacked into
    assert create_dataset(None, tmp_path, "val").name == "cityscapes"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="matches no known layout") as error:
        detect_dataset(tmp_path / "empty")
    assert all(name in str(error.value) for name in DATASETS)
    with pytest.raises(ValueError, match="unknown dataset 'kitti'"):
        create_dataset("kitti", tmp_path)
    with pytest.raises(ValueError, match="num_classes = 21, but cityscapes has 19"):
        create_dataset("cityscapes", tmp_path, "val", num_classes=21)
    with pytest.raises(ValueError, match="unknown option colour"):
        create_dataset("cityscapes", tmp_path, "val", colour=1)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        create_dataset(None, tmp_path / "nowhere")


def test_metadata_is_plain_values(tmp_path):
    make_cityscapes(tmp_path)
    metadata = create_dataset("cityscapes", tmp_path, "val").metadata()
    assert metadata["dataset"] == "cityscapes" and metadata["num_classes"] == 19
    assert metadata["classes"][6] == "traffic light" and metadata["palette"][0] == [128, 64, 128]
    assert metadata["ignore_index"] == 255


def test_cityscapes_names_reach_the_eval_table_and_palette_the_predictions(tmp_path, capsys):
    import json

    from pixseg.cli import main

    data, out = tmp_path / "cityscapes", tmp_path / "model"
    make_cityscapes(data, size=(40, 48))
    assert main(["train", "--config", "experiment_quick", "--data", str(data), "--out", str(out),
                 "model.width=0.0625", "data.crop_size=32", "batch_size=2", "iterations=2", "val_every=2",
                 "data.holdout=0"]) == 0
    assert main(["eval", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(data)]) == 0
    table = capsys.readouterr().out
    assert "traffic light" in table and "bicycle" in table and "aeroplane" not in table
    assert "foreground recall" not in table  # class 0 is road, not background
    metrics = json.loads((out / "metrics_val.json").read_text())
    assert metrics["dataset"] == "cityscapes" and len(metrics["iou"]) == 19 and metrics["classes"][-1] == "bicycle"

    image = data / "leftImg8bit/val/lindau/lindau_000000_000019_leftImg8bit.png"
    assert main(["predict", "--checkpoint", str(out / "checkpoint.pt"), str(image), "--out", str(tmp_path / "p")]) == 0
    written = Image.open(tmp_path / "p" / "lindau_000000_000019_leftImg8bit.png")
    assert written.getpalette()[:6] == [128, 64, 128, 244, 35, 232]  # road, sidewalk
