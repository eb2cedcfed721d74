import json

import numpy as np
import pytest
from PIL import Image

from pixseg.class_weights import (
    IMAGE_PIXELS,
    METHODS,
    PIXELS,
    class_frequencies,
    inverse_frequency,
    median_frequency,
)
from pixseg.cli import main

VOID = 255
# Class 0 everywhere, class 1 in two images, class 2 in one, class 3 never; void pixels in both.
LABELS = [
    np.array([[0, 0, 0, 1], [0, 1, 1, VOID]], dtype=np.uint8),
    np.array([[0, 0, 2, 2], [VOID, VOID, 1, 0]], dtype=np.uint8),
]


def items(labels):
    return [(np.zeros(label.shape + (3,), np.uint8), label) for label in labels]


def test_class_frequencies_count_pixels_and_pixels_of_images_holding_each_class():
    freq = class_frequencies(items(LABELS), num_classes=4, progress=False)
    assert freq.dtype == np.int64
    assert freq[PIXELS].tolist() == [7, 4, 2, 0]
    # Image 1 has 7 labelled pixels, image 2 has 6.
    assert freq[IMAGE_PIXELS].tolist() == [13, 13, 6, 0]


def test_out_of_range_label_names_the_item_and_value():
    class WithIds(list):
        ids = ["a", "b"]

    bad = LABELS[1].copy()
    bad[0, 0] = 9
    with pytest.raises(ValueError, match=r"item 1 \(id b\): label values \[9\] are outside 0..3"):
        class_frequencies(WithIds(items([LABELS[0], bad])), num_classes=4, progress=False)
    with pytest.raises(ValueError, match="dtype float64"):
        class_frequencies(items([LABELS[0].astype(float)]), num_classes=4, progress=False)


def test_inverse_frequency_by_hand_with_zero_frequency_class():
    freq = np.array([[60, 30, 10, 0], [100, 100, 100, 0]])
    weights = inverse_frequency(freq)
    # Shares 0.6, 0.3, 0.1 over 3 present classes: w = 1 / (3 share).
    np.testing.assert_allclose(weights, [1 / 1.8, 1 / 0.9, 1 / 0.3, 0.0])
    # The average weight per labelled pixel is 1.
    assert (weights * freq[PIXELS]).sum() / freq[PIXELS].sum() == pytest.approx(1.0)


def test_median_frequency_uses_eigen_fergus_frequencies():
    # f = pixels / pixels of images holding the class: 0.6, 0.3, 0.5; median 0.5.
    freq = np.array([[60, 30, 10, 0], [100, 100, 20, 0]])
    np.testing.assert_allclose(median_frequency(freq), [0.5 / 0.6, 0.5 / 0.3, 1.0, 0.0])
    assert set(METHODS) == {"inverse_frequency", "median_frequency"}


@pytest.mark.parametrize("freq, message", [
    (np.array([5, 3, 1]), r"\(2, C\) array"),
    (np.array([[0, 0], [0, 0]]), "all zero"),
    (np.array([[5, 3], [4, 10]]), "pixels <= image pixels"),
    (np.array([[-1, 3], [4, 10]]), "counts >= 0"),
])
def test_bad_frequencies_raise(freq, message):
    for method in (inverse_frequency, median_frequency):
        with pytest.raises(ValueError, match=message):
            method(freq)


def write_voc(root, labels):
    """A tiny dataset in the exact VOC 2012 layout: JPEGs, palette PNG labels, a split file."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    palette = np.random.default_rng(0).integers(0, 256, 768).astype(np.uint8).tolist()
    ids = [f"2007_{i:06d}" for i in range(len(labels))]
    for image_id, label in zip(ids, labels):
        Image.fromarray(np.full(label.shape + (3,), 128, np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
        png = Image.fromarray(label, mode="P")
        png.putpalette(palette)
        png.save(root / "SegmentationClass" / f"{image_id}.png")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids) + "\n")


def test_class_frequencies_of_a_voc_folder(tmp_path):
    from pixseg.data import VOCSegmentation

    write_voc(tmp_path, LABELS)
    freq = class_frequencies(VOCSegmentation(tmp_path, "train", num_classes=4), 4, progress=False)
    assert freq.tolist() == [[7, 4, 2, 0], [13, 13, 6, 0]]


def test_cli_prints_table_and_writes_json(tmp_path, capsys):
    write_voc(tmp_path / "voc", LABELS)
    out = tmp_path / "weights" / "median.json"
    assert main(["class-weights", "--data", str(tmp_path / "voc"), "--num-classes", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "class_3" in printed and "weight" in printed
    saved = json.loads(out.read_text())
    assert saved["method"] == "median_frequency" and saved["split"] == "train"
    assert saved["pixels"] == [7, 4, 2, 0]
    np.testing.assert_allclose(saved["weights"], median_frequency(np.array([[7, 4, 2, 0], [13, 13, 6, 0]])))
    assert [p.name for p in out.parent.iterdir()] == ["median.json"]  # no temporary file left behind

    assert main(["class-weights", "--data", str(tmp_path / "voc"), "--num-classes", "4", "--method", "inverse",
                 "--out", str(out)]) == 0
    assert json.loads(out.read_text())["method"] == "inverse_frequency"


def test_cli_reports_a_missing_folder_as_one_line(tmp_path, capsys):
    assert main(["class-weights", "--data", str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err
