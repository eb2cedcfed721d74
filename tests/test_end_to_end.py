"""The whole command line on a tiny synthetic set: synth, train, resume, eval, predict."""

import json

import numpy as np
import pytest
from PIL import Image

from pixseg.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e")


def test_synth_train_resume_eval_predict(run_dir, capsys):
    data, out = run_dir / "data", run_dir / "model"
    assert main(["synth", "--out", str(data), "--n-train", "8", "--n-val", "3", "--size", "48", "48",
                 "--seed", "3"]) == 0
    train_args = ["train", "--config", "experiment_quick", "--data", str(data), "--out", str(out),
                  "model.width=0.0625", "data.crop_size=32", "batch_size=2", "iterations=3", "val_every=3",
                  "checkpoint_every=1", "data.holdout=0"]
    assert main(train_args) == 0
    assert main([*train_args, "--resume"]) == 0  # already finished: nothing more to do
    assert main([*train_args[:-1], "iterations=5", "--resume"]) == 2
    assert "iterations" in capsys.readouterr().err

    assert main(["eval", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "mean IoU" in printed and "aeroplane" in printed
    metrics = json.loads((out / "metrics_val.json").read_text())
    assert len(metrics["iou"]) == 21 and 0 <= metrics["miou"] <= 1 and metrics["num_images"] == 3

    for mode in ("dense", "pos"):
        assert main(["eval", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(data), "--crf", mode,
                     "--crf-preset", "reference", "--crf-iterations", "3", "--pos-workers", "2"]) == 0
        (written,) = out.glob(f"metrics_val_{mode}crf_*.json")
        refined = json.loads(written.read_text())
        assert refined["crf"] == mode and 0 <= refined["miou"] <= 1
        assert refined["crf_parameters"]["appearance"] == [10.0, 80.0, 13.0]
    assert len(list((out / "pos_cache").glob("*.npy"))) == 3  # one objectness map per val image

    odd = run_dir / "odd.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (37, 53, 4), dtype=np.uint8)).save(odd)
    predictions = run_dir / "pred"
    assert main(["predict", "--checkpoint", str(out / "checkpoint.pt"), str(odd), str(data / "JPEGImages" / "val_000000.jpg"),
                 "--out", str(predictions), "--save-probs"]) == 0
    labels = Image.open(predictions / "odd.png")
    assert labels.mode == "P" and labels.size == (53, 37)
    assert np.asarray(Image.open(predictions / "odd_overlay.png")).shape == (37, 53, 3)
    probs = np.load(predictions / "odd_probs.npy")
    assert probs.shape == (21, 37, 53) and np.allclose(probs.sum(0), 1, atol=1e-4)
    assert (np.asarray(labels) == probs.argmax(0)).all()


def test_user_errors_are_one_line(run_dir, capsys):
    assert main(["eval", "--checkpoint", str(run_dir / "nothing.pt"), "--data", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "nothing.pt" in err and "Traceback" not in err
    assert main(["train", "--config", "experiment_quick", "--out", str(run_dir / "x"), "modle.width=1"]) == 2
    assert "modle" in capsys.readouterr().err
