import numpy as np
import pytest
from PIL import Image

from pixseg.data import VOC_CLASSES, VOCSegmentation, make_synthetic_voc, read_image, save_label_png

IDS = ("2007_000032", "2007_000039", "2008_000123")


def make_voc(root, ids=IDS, size=(24, 32)):
    """A hand-built VOCdevkit/VOC2012-style folder: RGB and grayscale JPEGs, palette labels."""
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    labels = {}
    for n, image_id in enumerate(ids):
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        image = Image.fromarray(pixels).convert("L") if n == 1 else Image.fromarray(pixels)
        image.save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
        labels[image_id] = rng.choice([0, n + 1, 15, 255], size=size).astype(np.uint8)
        save_label_png(root / "SegmentationClass" / f"{image_id}.png", labels[image_id])
    (root / "ImageSets/Segmentation/train.txt").write_text("".join(f"{i}\n" for i in ids) + "\n")
    return labels


@pytest.fixture
def voc(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    return root, make_voc(root)


def test_reads_real_voc_layout(voc):
    root, labels = voc
    dataset = VOCSegmentation(root)
    assert dataset.ids == list(IDS) and len(dataset) == 3
    assert dataset.classes == VOC_CLASSES and dataset.num_classes == 21
    assert dataset.image_path(2) == root / "JPEGImages" / "2008_000123.jpg"
    assert dataset.label_path(0) == root / "SegmentationClass" / "2007_000032.png"
    for index, image_id in enumerate(IDS):
        image, label = dataset[index]
        assert image.shape == (24, 32, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(label, labels[image_id])
    gray, _ = dataset[1]  # stored as a one-channel JPEG, read as RGB
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])


def test_transform_receives_stored_pair(voc):
    root, labels = voc
    dataset = VOCSegmentation(root, transform=lambda image, label: ("done", image.shape, label.sum()))
    assert dataset[0] == ("done", (24, 32, 3), labels[IDS[0]].sum())


def test_reads_synthetic_set_like_voc(tmp_path):
    root = make_synthetic_voc(tmp_path / "synth", n_train=3, n_val=2, size=(40, 56), progress=False)
    train, val = VOCSegmentation(root, "train"), VOCSegmentation(root, "val")
    assert len(train) == 3 and len(val) == 2 and len(VOCSegmentation(root, "trainval")) == 5
    image, label = val[1]
    assert image.shape == (40, 56, 3) and label.shape == (40, 56)
    assert set(np.unique(label)) <= set(range(21)) | {255}


def test_read_image_converts_modes(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(np.dstack([rgb, np.full((5, 7), 9, np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.jpg", quality=100)
    indexed = Image.fromarray(np.array([[0, 1], [1, 2]], np.uint8))
    indexed.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90])
    indexed.save(tmp_path / "palette.png")

    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "gray.png"), np.repeat(rgb[..., :1], 3, axis=2))
    gray_jpeg = read_image(tmp_path / "gray.jpg")
    assert gray_jpeg.shape == (5, 7, 3) and np.array_equal(gray_jpeg[..., 0], gray_jpeg[..., 2])
    np.testing.assert_array_equal(read_image(tmp_path / "palette.png")[1, 1], (70, 80, 90))


def test_read_image_errors_name_the_file(tmp_path):
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(ValueError, match=r"junk\.jpg"):
        read_image(tmp_path / "junk.jpg")
    Image.fromarray(np.zeros((3, 3), np.uint16)).save(tmp_path / "deep.png")
    with pytest.raises(ValueError, match=r"deep\.png.*16-bit"):
        read_image(tmp_path / "deep.png")
    with pytest.raises(FileNotFoundError, match=r"nothere\.jpg"):
        read_image(tmp_path / "nothere.jpg")


@pytest.mark.parametrize("remove, message", [
    ("JPEGImages", "JPEGImages"),
    ("SegmentationClass", "SegmentationClass"),
    ("ImageSets/Segmentation/train.txt", r"train\.txt"),
])
def test_missing_folder_or_split_file(voc, remove, message):
    root, _ = voc
    target = root / remove
    if target.is_dir():
        for child in target.iterdir():
            child.unlink()
        target.rmdir()
    else:
        target.unlink()
    with pytest.raises(FileNotFoundError, match=message):
        VOCSegmentation(root)


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        VOCSegmentation(tmp_path / "nowhere")


def test_split_naming_missing_ids(voc):
    root, _ = voc
    (root / "SegmentationClass" / "2007_000039.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"train\.txt.*2007_000039") as error:
        VOCSegmentation(root)
    assert "SegmentationClass" in str(error.value)
    (root / "ImageSets/Segmentation/val.txt").write_text("2007_000032\nghost_1\nghost_2\n")
    with pytest.raises(FileNotFoundError, match=r"val\.txt.*2 id\(s\).*ghost_1, ghost_2"):
        VOCSegmentation(root, "val")


def test_empty_split_file(voc):
    root, _ = voc
    (root / "ImageSets/Segmentation/empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match=r"empty\.txt.*no image ids"):
        VOCSegmentation(root, "empty")


def test_unreadable_image_named(voc):
    root, _ = voc
    (root / "JPEGImages" / "2007_000039.jpg").write_bytes(b"garbage")
    dataset = VOCSegmentation(root)
    with pytest.raises(ValueError, match=r"2007_000039\.jpg"):
        dataset[1]


def test_mask_size_differs_from_image(voc):
    root, _ = voc
    save_label_png(root / "SegmentationClass" / "2007_000032.png", np.zeros((24, 30), np.uint8))
    with pytest.raises(ValueError, match=r"2007_000032\.png is 24x30 .*2007_000032\.jpg is 24x32"):
        VOCSegmentation(root)[0]


def test_label_values_out_of_range_listed(voc):
    root, _ = voc
    label = np.zeros((24, 32), np.uint8)
    label[0, :3] = (21, 40, 255)
    save_label_png(root / "SegmentationClass" / "2007_000032.png", label)
    with pytest.raises(ValueError, match=r"2007_000032\.png has values \[21, 40\] outside 0\.\.20"):
        VOCSegmentation(root)[0]
    label[0, :3] = (4, 3, 255)
    save_label_png(root / "SegmentationClass" / "2007_000032.png", label)
    dataset = VOCSegmentation(root, num_classes=4)
    assert dataset.classes == ("class_0", "class_1", "class_2", "class_3")
    with pytest.raises(ValueError, match=r"values \[4\] outside 0\.\.3"):
        dataset[0]


def test_num_classes_checked(voc):
    root, _ = voc
    with pytest.raises(ValueError, match="256"):
        VOCSegmentation(root, num_classes=256)
