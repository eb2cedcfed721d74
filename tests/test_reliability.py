"""Nothing lost, no traceback: each failure a user met, replayed through the `pixseg` command."""

import os

import numpy as np
import pytest
from PIL import Image

from pixseg.cli import main


def run_cli(capsys, *args):
    """(exit status, stdout, stderr) of `pixseg args`."""
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def files_under(folder):
    """{relative path: bytes} of every file under `folder`."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


TINY = ["model.width=0.0625", "data.crop_size=32", "batch_size=2", "iterations=2", "val_every=2",
        "checkpoint_every=1", "data.holdout=0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("rel") / "data"
    assert main(["synth", "--out", str(root), "--n-train", "4", "--n-val", "2", "--size", "32", "32",
                 "--seed", "2"]) == 0
    return root


@pytest.fixture(scope="module")
def run_dir(data):
    out = data.parent / "run"
    assert main(["train", "--config", "experiment_quick", "--data", str(data), "--out", str(out), *TINY]) == 0
    return out


def test_1_predict_never_overwrites_its_input(run_dir, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(photo)
    before = files_under(tmp_path)
    status, _, err = run_cli(capsys, "predict", "--checkpoint", run_dir / "checkpoint.pt", photo, "--out", tmp_path)
    assert status == 2 and "photo.png" in err and "overwrite" in err and "Traceback" not in err
    assert files_under(tmp_path) == before
    # An input named like another input's overlay is protected too.
    overlay = tmp_path / "photo_overlay.png"
    overlay.write_bytes(photo.read_bytes())
    (tmp_path / "elsewhere").mkdir()
    photo = photo.rename(tmp_path / "elsewhere" / "photo.png")
    status, _, err = run_cli(capsys, "predict", "--checkpoint", run_dir / "checkpoint.pt", photo, overlay,
                             "--out", tmp_path)
    assert status == 2 and "photo_overlay.png" in err


def test_2_train_refuses_a_folder_holding_a_run(data, run_dir, tmp_path, capsys):
    before = files_under(run_dir)
    status, _, err = run_cli(capsys, "train", "--config", "experiment_quick", "--data", data, "--out", run_dir, *TINY)
    assert status == 2 and "--resume" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert files_under(run_dir) == before
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, content in before.items():
        (copy / name).write_bytes(content)
    (copy / "metrics.jsonl").write_text('{"step": 99, "loss": 1.0}\n')
    assert main(["train", "--config", "experiment_quick", "--data", str(data), "--out", str(copy), *TINY,
                 "--overwrite"]) == 0
    assert '"step": 99' not in (copy / "metrics.jsonl").read_text()


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_3_written_files_respect_the_umask(data, tmp_path, umask, capsys):
    old = os.umask(umask)
    try:
        synth, run = tmp_path / "synth", tmp_path / "run"
        assert main(["synth", "--out", str(synth), "--n-train", "2", "--n-val", "1", "--size", "32", "32"]) == 0
        assert main(["train", "--config", "experiment_quick", "--data", str(data), "--out", str(run), *TINY,
                     "iterations=1"]) == 0
        assert main(["class-weights", "--data", str(data), "--out", str(tmp_path / "weights.json")]) == 0
    finally:
        os.umask(old)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"checkpoint.pt", "metrics.jsonl", "train.txt", "weights.json",
                                         "train_000000.jpg", "val_000000.png"}
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {oct(0o666 & ~umask)}


def test_4_synth_over_a_dataset(tmp_path, capsys):
    out = tmp_path / "voc"
    assert main(["synth", "--out", str(out), "--n-train", "3", "--n-val", "2", "--size", "48", "48"]) == 0
    before = files_under(out)
    status, _, err = run_cli(capsys, "synth", "--out", out, "--n-train", "2", "--n-val", "1", "--size", "32", "40")
    assert status == 2 and "--overwrite" in err and str(out) in err
    assert files_under(out) == before
    (out / "README.txt").write_text("mine")
    assert main(["synth", "--out", str(out), "--n-train", "2", "--n-val", "1", "--size", "32", "40",
                 "--overwrite"]) == 0
    listed = (out / "ImageSets/Segmentation/trainval.txt").read_text().split()
    for folder, suffix in (("JPEGImages", ".jpg"), ("SegmentationClass", ".png"), ("SegmentationObject", ".png")):
        images = sorted((out / folder).iterdir())
        assert [p.stem for p in images] == sorted(listed) and all(p.suffix == suffix for p in images)
        assert {Image.open(p).size for p in images} == {(40, 32)}
    assert (out / "README.txt").read_text() == "mine"
