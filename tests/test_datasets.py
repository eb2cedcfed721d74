"""Every dataset reader on small files written in its exact on-disk format, labels checked value by value."""

import numpy as np
import pytest
from PIL import Image

from scipy.io import savemat

from pixseg.data import DATASETS, create_dataset, detect_dataset, save_label_png
from pixseg.data.ade20k import ADE20K_CLASSES
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


def write_palette(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_label_png(path, np.asarray(values, dtype=np.uint8))


def write_sbd_mat(path, segmentation):
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"GTcls": {"Segmentation": np.asarray(segmentation, dtype=np.uint8),
                             "Boundaries": np.zeros((20, 1), dtype=object),
                             "CategoriesPresent": np.unique(segmentation)[1:].astype(np.uint8)}})


def write_list(path, ids):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids))


def values_grid(values, size):
    """`values` repeated over an H x W grid (every value present when H x W >= len(values))."""
    return np.resize(np.asarray(values), size)


def make_voc(root, train, val, size=(6, 8), values=range(21)):
    for n, image_id in enumerate([*train, *val]):
        write_rgb(root / "JPEGImages" / f"{image_id}.jpg", size, seed=n)
        write_palette(root / "SegmentationClass" / f"{image_id}.png", values_grid([*values, 255], size))
    write_list(root / "ImageSets/Segmentation/train.txt", train)
    write_list(root / "ImageSets/Segmentation/val.txt", val)


def make_sbd(root, train, val, size=(6, 8)):
    """benchmark_RELEASE/dataset: labels hold 0..20 shifted per image, so images are told apart."""
    for n, image_id in enumerate([*train, *val]):
        write_rgb(root / "img" / f"{image_id}.jpg", size, seed=10 + n)
        write_sbd_mat(root / "cls" / f"{image_id}.mat", values_grid(np.roll(np.arange(21), n), size))
    write_list(root / "train.txt", train)
    write_list(root / "val.txt", val)


def make_ade20k(root, n_train=3, n_val=2, size=(8, 20)):
    for split, folder, count in (("train", "training", n_train), ("val", "validation", n_val)):
        for i in range(count):
            stem = f"ADE_{split}_{i + 1:08d}"
            write_rgb(root / "images" / folder / f"{stem}.jpg", size, seed=i)
            write_grey(root / "annotations" / folder / f"{stem}.png", values_grid(np.roll(np.arange(151), i), size))


def make_pascal_context(root, train, val, size=(6, 10)):
    for n, image_id in enumerate([*train, *val]):
        write_rgb(root / "JPEGImages" / f"{image_id}.jpg", size, seed=n)
        write_grey(root / "SegmentationClassContext" / f"{image_id}.png", values_grid(np.roll(np.arange(60), n), size))
    write_list(root / "ImageSets/SegmentationContext/train.txt", train)
    write_list(root / "ImageSets/SegmentationContext/val.txt", val)


def regions_text(values):
    return "".join(" ".join(str(v) for v in row) + "\n" for row in values)


def make_stanford(root, count=10, size=(6, 8)):
    for i in range(count):
        write_rgb(root / "images" / f"{i:07d}.jpg", size, seed=i)
        labels = root / "labels"
        labels.mkdir(parents=True, exist_ok=True)
        (labels / f"{i:07d}.regions.txt").write_text(regions_text(values_grid(np.roll(np.arange(-1, 8), i), size)))
        (labels / f"{i:07d}.surfaces.txt").write_text(regions_text(np.zeros(size, int)))


def make_camvid(root, counts=(("train", 3), ("val", 2), ("test", 1)), size=(6, 8)):
    for split, count in counts:
        for i in range(count):
            stem = f"0001TP_{split}_{i:06d}"
            write_rgb(root / split / f"{stem}.png", size, seed=i)
            write_grey(root / f"{split}annot" / f"{stem}.png", values_grid(np.roll(np.arange(12), i), size))


def make_folder(root, size=(6, 8)):
    for i, stem in enumerate(["cat_1", "cat_2", "dog_1", "dog_2", "dog_3"]):
        write_rgb(root / "images" / f"{stem}.{'png' if i % 2 else 'jpg'}", size, seed=i)
        mask = values_grid([0, 1, 2, 255][i % 2:], size)
        (write_palette if i % 2 else write_grey)(root / "masks" / f"{stem}.png", mask)
    write_list(root / "train.txt", ["cat_1", "dog_1", "dog_2"])
    write_list(root / "val.txt", ["cat_2", "dog_3"])
    (root / "classes.txt").write_text("background\ncat\ndog\n")


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
    (tmp_path / "list.txt").write_text("a\n")
    for name in (None, "cityscapes"):
        with pytest.raises(ValueError, match="list.txt is a file; expected the folder"):
            create_dataset(name, tmp_path / "list.txt")


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


def test_sbd_reads_gtcls_segmentation(tmp_path):
    root = tmp_path / "benchmark_RELEASE" / "dataset"
    make_sbd(root, ["2008_000002", "2008_000003"], ["2008_000004"])
    train = create_dataset("sbd", tmp_path / "benchmark_RELEASE", "train")
    assert train.root == root and train.ids == ["2008_000002", "2008_000003"] and train.num_classes == 21
    for n in range(2):
        np.testing.assert_array_equal(train[n][1], values_grid(np.roll(np.arange(21), n), (6, 8)))
    assert detect_dataset(root) == "sbd"
    (root / "cls" / "2008_000003.mat").write_bytes(b"MATLAB 5.0 truncated")
    with pytest.raises(ValueError, match=r"2008_000003\.mat is not a readable \.mat"):
        train[1]
    savemat(root / "cls" / "2008_000003.mat", {"GTinst": np.zeros((2, 2))})
    with pytest.raises(ValueError, match=r"2008_000003\.mat has no GTcls\.Segmentation"):
        train[1]
    write_sbd_mat(root / "cls" / "2008_000003.mat", np.full((6, 8), 21))
    with pytest.raises(ValueError, match=r"2008_000003\.mat has values \[21\]"):
        train[1]


def test_voc_aug_is_voc_train_and_sbd_minus_voc_val(tmp_path):
    voc, sbd = tmp_path / "VOCdevkit" / "VOC2012", tmp_path / "benchmark_RELEASE" / "dataset"
    make_voc(voc, ["a", "b"], ["c", "d"], values=range(3))
    make_sbd(sbd, ["b", "c", "e"], ["f", "d"])
    train = create_dataset("voc_aug", tmp_path, "train")
    assert train.ids == ["a", "b", "e", "f"]
    assert train.image_path(1) == voc / "JPEGImages" / "b.jpg" and train.image_path(2) == sbd / "img" / "e.jpg"
    np.testing.assert_array_equal(train[1][1], values_grid([0, 1, 2, 255], (6, 8)))  # VOC's own annotation
    np.testing.assert_array_equal(train[2][1], values_grid(np.roll(np.arange(21), 2), (6, 8)))  # e in SBD
    assert create_dataset("voc_aug", tmp_path, "val").ids == ["c", "d"]
    assert create_dataset("voc_aug", voc, "train", sbd_root=tmp_path / "benchmark_RELEASE").ids == train.ids
    with pytest.raises(FileNotFoundError, match="no SBD folder"):
        create_dataset("voc_aug", voc, "train")
    with pytest.raises(ValueError, match="matches the layouts of voc, sbd, voc_aug"):
        detect_dataset(tmp_path)


def test_ade20k_shifts_classes_and_ignores_other(tmp_path):
    make_ade20k(tmp_path / "ADEChallengeData2016")
    train = create_dataset(None, tmp_path, "train")
    assert train.name == "ade20k" and train.num_classes == 150 and train.classes == ADE20K_CLASSES
    assert train.ids == ["ADE_train_00000001", "ADE_train_00000002", "ADE_train_00000003"]
    for n in range(3):
        stored = values_grid(np.roll(np.arange(151), n), (8, 20))
        np.testing.assert_array_equal(train[n][1], np.where(stored == 0, 255, stored - 1))
    assert len(create_dataset("ade20k", tmp_path, "val")) == 2
    write_grey(tmp_path / "ADEChallengeData2016/annotations/validation/ADE_val_00000002.png", np.full((8, 20), 151))
    with pytest.raises(ValueError, match=r"ADE_val_00000002\.png has values \[151\]"):
        create_dataset("ade20k", tmp_path, "val")[1]
    (tmp_path / "ADEChallengeData2016/annotations/training/ADE_train_00000002.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"no label in .*training: .*ADE_train_00000002\.jpg"):
        create_dataset("ade20k", tmp_path, "train")


@pytest.mark.parametrize("num_classes", [60, 59])
def test_pascal_context_with_and_without_background(tmp_path, num_classes):
    make_pascal_context(tmp_path / "VOC2010", ["2008_000002"], ["2008_000003", "2008_000007"])
    val = create_dataset("pascal_context", tmp_path, "val", num_classes=num_classes)
    assert val.num_classes == num_classes and val.classes[0] == ("background" if num_classes == 60 else "aeroplane")
    assert val.classes[-1] == "wood"
    for n in range(2):
        stored = values_grid(np.roll(np.arange(60), n + 1), (6, 10))
        expected = stored if num_classes == 60 else np.where(stored == 0, 255, stored - 1)
        np.testing.assert_array_equal(val[n][1], expected)
    write_list(tmp_path / "VOC2010/ImageSets/SegmentationContext/val.txt", ["2008_000003", "2008_000099"])
    with pytest.raises(FileNotFoundError, match=r"val\.txt names 1 id\(s\) .*2008_000099"):
        create_dataset("pascal_context", tmp_path, "val", num_classes=num_classes)


def test_pascal_context_options_checked(tmp_path):
    make_pascal_context(tmp_path, ["a"], ["b"])
    with pytest.raises(ValueError, match="60 .* or 59"):
        create_dataset("pascal_context", tmp_path, "val", num_classes=21)
    write_grey(tmp_path / "SegmentationClassContext/b.png", np.full((6, 10), 60))
    with pytest.raises(ValueError, match=r"b\.png has values \[60\]"):
        create_dataset("pascal_context", tmp_path, "val")[0]


def test_stanford_background_regions_and_seeded_split(tmp_path):
    root = tmp_path / "iccv09Data"
    make_stanford(root)
    train, val = create_dataset(None, tmp_path, "train"), create_dataset("stanford_background", tmp_path, "val")
    assert train.name == "stanford_background" and (len(train), len(val)) == (8, 2)
    assert sorted(train.ids + val.ids) == [f"{i:07d}" for i in range(10)]
    assert create_dataset("stanford_background", root, "train").ids == train.ids
    assert create_dataset("stanford_background", root, "train", seed=1).ids != train.ids
    index = train.ids.index("0000003")
    stored = values_grid(np.roll(np.arange(-1, 8), 3), (6, 8))
    np.testing.assert_array_equal(train[index][1], np.where(stored < 0, 255, stored))
    (root / "labels" / "0000003.regions.txt").write_text("0 1 x\n")
    with pytest.raises(ValueError, match=r"0000003\.regions\.txt is not a readable integer matrix"):
        train[index]
    (root / "labels" / "0000003.regions.txt").write_text(regions_text(np.full((6, 8), 8)))
    with pytest.raises(ValueError, match=r"0000003\.regions\.txt has values \[8\]"):
        train[index]
    with pytest.raises(ValueError, match="split 'test': expected one of train, val"):
        create_dataset("stanford_background", root, "test")


def test_stanford_background_full_split_sizes(tmp_path):
    for folder, suffix in (("images", ".jpg"), ("labels", ".regions.txt")):
        (tmp_path / folder).mkdir()
        for i in range(715):
            (tmp_path / folder / f"{i:07d}{suffix}").touch()
    sizes = [len(create_dataset("stanford_background", tmp_path, split)) for split in ("train", "val")]
    assert sizes == [572, 143]


def test_camvid_void_and_pairing(tmp_path):
    make_camvid(tmp_path / "CamVid")
    train = create_dataset(None, tmp_path, "train")
    assert train.name == "camvid" and train.num_classes == 11 and train.palette[3].tolist() == [128, 64, 128]
    for n in range(3):
        stored = values_grid(np.roll(np.arange(12), n), (6, 8))
        np.testing.assert_array_equal(train[n][1], np.where(stored == 11, 255, stored))
    assert [len(create_dataset("camvid", tmp_path, s)) for s in ("val", "test")] == [2, 1]
    write_grey(tmp_path / "CamVid/testannot/0001TP_test_000000.png", np.full((6, 8), 12))
    with pytest.raises(ValueError, match=r"0001TP_test_000000\.png has values \[12\]"):
        create_dataset("camvid", tmp_path, "test")[0]
    write_grey(tmp_path / "CamVid/valannot/extra.png", np.zeros((6, 8)))
    with pytest.raises(FileNotFoundError, match=r"no image in .*val: .*extra\.png"):
        create_dataset("camvid", tmp_path, "val")


def test_folder_brings_your_own_data(tmp_path):
    make_folder(tmp_path)
    rgba = np.dstack([np.full((6, 8, 3), 7, np.uint8), np.zeros((6, 8), np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "images" / "cat_2.png")
    Image.fromarray(np.full((6, 8), 9, np.uint8)).save(tmp_path / "images" / "dog_3.jpg")
    train, val = create_dataset(None, tmp_path, "train"), create_dataset("folder", tmp_path, "val")
    assert train.name == "folder" and train.classes == ("background", "cat", "dog")
    assert train.ids == ["cat_1", "dog_1", "dog_2"] and val.ids == ["cat_2", "dog_3"]
    np.testing.assert_array_equal(train[0][1], values_grid([0, 1, 2, 255], (6, 8)))  # grey PNG mask
    image, label = val[0]  # RGBA image, palette PNG mask
    assert image.shape == (6, 8, 3) and (image == 7).all()
    np.testing.assert_array_equal(label, values_grid([1, 2, 255], (6, 8)))
    assert val[1][0].shape == (6, 8, 3)  # grey JPEG
    write_grey(tmp_path / "masks" / "dog_1.png", np.full((6, 8), 3))
    with pytest.raises(ValueError, match=r"dog_1\.png has values \[3\] outside 0\.\.2"):
        train[1]
    write_grey(tmp_path / "masks" / "dog_1.png", np.zeros((5, 8)))
    with pytest.raises(ValueError, match=r"dog_1\.png is 5x8 but image .*dog_1\.jpg is 6x8"):
        train[1]
    with pytest.raises(FileNotFoundError, match=r"no split 'test': looked for .*test\.txt"):
        create_dataset("folder", tmp_path, "test")
    (tmp_path / "classes.txt").unlink()
    with pytest.raises(ValueError, match=r"no classes\.txt .* num_classes"):
        create_dataset("folder", tmp_path, "train")
    assert create_dataset("folder", tmp_path, "train", num_classes=4).classes[3] == "class_3"


def test_folder_takes_the_colours_of_palette_masks(tmp_path):
    make_folder(tmp_path)
    assert create_dataset("folder", tmp_path, "train").palette.tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    mask = Image.fromarray(np.zeros((6, 8), np.uint8), mode="P")
    mask.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90])
    mask.save(tmp_path / "masks" / "cat_1.png")
    assert create_dataset("folder", tmp_path, "train").palette.tolist() == [[10, 20, 30], [40, 50, 60], [70, 80, 90]]


def test_folder_split_subfolders(tmp_path):
    for split, count in (("train", 2), ("val", 1)):
        for i in range(count):
            write_rgb(tmp_path / "images" / split / f"{i}.jpg")
            write_grey(tmp_path / "masks" / split / f"{i}.png", np.ones((6, 8)))
    (tmp_path / "masks" / "train" / "0.png").rename(tmp_path / "masks" / "train" / "7.png")
    with pytest.raises(FileNotFoundError, match=r"1 file\(s\) have no label in .*train: .*0\.jpg"):
        create_dataset("folder", tmp_path, "train", num_classes=2)
    assert len(create_dataset("folder", tmp_path, "val", num_classes=2)) == 1


SIZE = (36, 44)
FORMATS = {  # name -> (write the files under root, the folder to point --data at, extra arguments)
    "voc": (lambda root: make_voc(root, ["a", "b"], ["c"], SIZE), "", []),
    "sbd": (lambda root: make_sbd(root, ["a", "b"], ["c"], SIZE), "", []),
    "voc_aug": (lambda root: (make_voc(root / "VOC2012", ["a"], ["c"], SIZE),
                              make_sbd(root / "benchmark_RELEASE/dataset", ["b"], ["d"], SIZE)), "", []),
    "cityscapes": (lambda root: make_cityscapes(root, size=SIZE), "", []),
    "ade20k": (lambda root: make_ade20k(root, 2, 1, SIZE), "", []),
    "pascal_context": (lambda root: make_pascal_context(root, ["a", "b"], ["c"], SIZE), "",
                       ["--data-option", "num_classes=59"]),
    "stanford_background": (lambda root: make_stanford(root, 5, SIZE), "", []),
    "camvid": (lambda root: make_camvid(root, (("train", 2), ("val", 1)), SIZE), "", []),
    "folder": (lambda root: make_folder(root, SIZE), "", []),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", FORMATS)
def test_trains_two_steps_and_evaluates_on_each_format(tmp_path, capsys, name):
    import json

    from pixseg.cli import main

    write, _, extra = FORMATS[name]
    data, out = tmp_path / "data", tmp_path / "model"
    write(data)
    data_args = ["--data", str(data), "--dataset", name, *extra]
    assert main(["train", "--config", "experiment_quick", *data_args, "--out", str(out), "model.width=0.0625",
                 "data.crop_size=32", "batch_size=2", "iterations=2", "val_every=2", "data.holdout=0"]) == 0
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "checkpoint.pt"), *data_args]) == 0
    dataset = create_dataset(name, data, "val", **({"num_classes": 59} if extra else {}))
    printed = capsys.readouterr().out
    assert all(class_name in printed for class_name in dataset.classes)
    metrics = json.loads((out / "metrics_val.json").read_text())
    assert metrics["dataset"] == name and metrics["classes"] == list(dataset.classes)
    assert len(metrics["iou"]) == dataset.num_classes and 0 <= metrics["miou"] <= 1
    assert metrics["num_images"] == len(dataset)


def test_datasets_command_and_one_line_errors(tmp_path, capsys):
    from pixseg.cli import main

    assert main(["datasets"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in DATASETS) and "regions.txt" in listing
    make_camvid(tmp_path / "CamVid")
    assert main(["datasets", "--data", str(tmp_path)]) == 0
    assert "camvid" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["class-weights", "--data", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "matches no known layout" in err and "leftImg8bit" in err and err.count("\n") == 1
    assert main(["class-weights", "--data", str(tmp_path), "--data-option", "seed"]) == 2
    assert "--data-option 'seed'" in capsys.readouterr().err
    assert main(["class-weights", "--data", str(tmp_path), "--dataset", "camvid", "--split", "val"]) == 0
    assert "pedestrian" in capsys.readouterr().out
