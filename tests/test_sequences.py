"""The Cityscapes sequence reader on tiny sequences written in the exact layout, and synthetic video."""

import numpy as np
import pytest
from PIL import Image

from pixseg.data.palette import read_label_png, save_label_png
from pixseg.data.sequences import SequenceWindows
from pixseg.data.synthetic_video import make_synthetic_video, render_sequence
from pixseg.metrics import ConfusionMatrix


def write_frame(root, split, city, seq, frame, value, label=True, size=(6, 10)):
    stem = f"{city}_{seq:06d}_{frame:06d}"
    image_dir = root / "leftImg8bit_sequence" / split / city
    image_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(image_dir / f"{stem}_leftImg8bit.png")
    if label:
        save_label_png(root / "gtFine_sequence" / split / city / f"{stem}_gtFine_labelTrainIds.png",
                       np.full(size, value % 19, np.uint8))


@pytest.fixture
def tiny(tmp_path):
    """Two cities; aachen sequence 0 has frames 10..29 (frame 25 unlabelled), bochum 7 has 100..118."""
    for frame in range(10, 30):
        write_frame(tmp_path, "val", "aachen", 0, frame, frame, label=frame != 25)
    for frame in range(100, 119):
        write_frame(tmp_path, "val", "bochum", 7, frame, frame)
    (tmp_path / "leftImg8bit_sequence" / "val" / "aachen" / "notes.txt").write_text("not a frame")
    return tmp_path


def test_windows_follow_the_protocol(tiny):
    windows = SequenceWindows(tiny, "val", frames=True)  # 4 inputs 3 apart; targets 3 and 9 after
    # aachen: last input t with t-9 >= 10 and t+9 <= 29, no frame used being 25.
    aachen = [t for t in range(19, 21) if 25 not in (t - 9, t - 6, t - 3, t, t + 3, t + 9)]
    assert [w["name"] for w in windows] == [f"aachen_000000_{t:06d}" for t in aachen] + \
        ["bochum_000007_000109"]
    item = windows[0]
    t = aachen[0]
    assert item["inputs"].tolist() == np.array([[[v % 19] * 10] * 6 for v in (t - 9, t - 6, t - 3, t)]).tolist()
    assert item["targets"][:, 0, 0].tolist() == [(t + 3) % 19, (t + 9) % 19]
    assert item["input_images"].shape == (4, 6, 10, 3) and item["input_images"][-1, 0, 0, 0] == t
    assert item["target_images"][:, 0, 0, 0].tolist() == [t + 3, t + 9]


def test_options_change_the_windows(tiny):
    windows = SequenceWindows(tiny, "val", inputs=2, gap=1, horizons=(1,), stride=4)
    names = [w["name"] for w in windows]
    assert names[0] == "aachen_000000_000011" and "bochum_000007_000101" in names
    assert "input_images" not in windows[0] and windows[0]["inputs"].shape == (2, 6, 10)
    starts = [int(n[-6:]) for n in names if n.startswith("aachen")]
    assert all(b - a >= 4 for a, b in zip(starts, starts[1:]))


def test_errors_name_the_problem(tiny, tmp_path):
    with pytest.raises(ValueError, match=r"label file .*_000010_gtFine_labelTrainIds.png holds values \[\d+\]"):
        SequenceWindows(tiny, "val", num_classes=2)[0]
    with pytest.raises(FileNotFoundError, match="leftImg8bit_sequence"):
        SequenceWindows(tmp_path / "nothing", "val")
    with pytest.raises(ValueError, match="no window of 4 inputs"):
        SequenceWindows(tiny, "val", horizons=(30,))
    with pytest.raises(ValueError, match="must be a positive integer"):
        SequenceWindows(tiny, "val", gap=0)
    with pytest.raises(ValueError, match=r"holds values .* expected train ids 0\.\.3"):
        SequenceWindows(tiny, "val", num_classes=4)[0]


def test_synthetic_video_layout_and_determinism(tmp_path):
    runs = [make_synthetic_video(tmp_path / name, n_train=1, n_val=1, size=(40, 64), frames=12, seed=seed,
                                 progress=False) for name, seed in (("a", 3), ("b", 3), ("c", 4))]
    files = sorted(p.relative_to(runs[0]) for p in runs[0].rglob("*.png"))
    assert len(files) == 2 * 2 * 12
    assert all((runs[0] / f).read_bytes() == (runs[1] / f).read_bytes() for f in files)
    assert any((runs[0] / f).read_bytes() != (runs[2] / f).read_bytes() for f in files)
    windows = SequenceWindows(runs[0], "train", horizons=(1, 2))
    assert len(windows) == 12 - 9 - 2 and windows[0]["inputs"].shape == (4, 40, 64)
    labels = read_label_png(runs[0] / "gtFine_sequence/val/synthville/synthville_000000_000011_gtFine_labelTrainIds.png")
    assert labels.shape == (40, 64) and labels.max() < 19


def test_synthetic_video_refuses_a_filled_folder_and_overwrite_keeps_other_cities(tmp_path):
    out = make_synthetic_video(tmp_path / "v", n_train=1, n_val=0, size=(32, 48), frames=6, progress=False)
    with pytest.raises(ValueError, match=r"--out .* is not empty.*--overwrite"):
        make_synthetic_video(out, n_train=1, n_val=0, size=(32, 48), frames=6, progress=False)
    real = out / "leftImg8bit_sequence/train/ulm/ulm_000000_000000_leftImg8bit.png"
    real.parent.mkdir()
    real.write_bytes(b"a frame of a real city")
    (out / ".synth-video-partial/leftImg8bit_sequence").mkdir(parents=True)  # a killed run's leftovers
    make_synthetic_video(out, n_train=0, n_val=1, size=(32, 48), frames=7, progress=False, overwrite=True)
    assert real.read_bytes() == b"a frame of a real city"
    assert not (out / "leftImg8bit_sequence/train/synthville").exists()  # the older set is gone, not mixed in
    assert len(list((out / "gtFine_sequence/val/synthville").glob("*.png"))) == 7
    assert sorted(p.name for p in out.iterdir()) == ["gtFine_sequence", "leftImg8bit_sequence"]


def test_synthetic_objects_move_so_copying_the_last_frame_fails():
    sequences = [list(render_sequence(np.random.default_rng([0, 0, j]), (64, 128), 30)) for j in range(10)]
    scores = {}
    for horizon in (3, 9):
        matrix = ConfusionMatrix(19)
        for frames in sequences:
            for t in range(9, 30 - 9):
                matrix.update(frames[t][1], frames[t + horizon][1])
        scores[horizon] = matrix.compute()["miou"]
    assert scores[9] < 0.5 and scores[9] < scores[3] - 0.1
    # Objects appear and disappear: some class is absent from a sequence's first or last frame.
    assert any(set(np.unique(f[0][1])) != set(np.unique(f[-1][1])) for f in sequences)


def test_cityscapes_label_ids_map_to_train_ids(tmp_path):
    for frame in range(4):
        write_frame(tmp_path, "train", "ulm", 3, frame, 0, label=False)
        ids = np.full((6, 10), 26, np.uint8)  # car
        ids[0] = 0  # unlabeled
        save_label_png(tmp_path / "labels" / "train" / "ulm" / f"ulm_000003_{frame:06d}_gtFine_labelIds.png", ids)
    windows = SequenceWindows(tmp_path, "train", inputs=2, gap=1, horizons=(2,), labels="labels",
                              label_suffix="_gtFine_labelIds.png")
    item = windows[0]
    assert len(windows) == 1 and set(np.unique(item["inputs"])) == {13, 255}
    assert (item["targets"][0, 0] == 255).all() and (item["targets"][0, 1:] == 13).all()
