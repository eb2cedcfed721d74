"""`pixseg synth-video` and `pixseg forecast train|eval` on tiny synthetic video; training learns."""

import json

import pytest

from pixseg.cli import main


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    root = tmp_path_factory.mktemp("video") / "data"
    assert main(["synth-video", "--out", str(root), "--n-train", "2", "--n-val", "1", "--size", "32", "48",
                 "--frames", "20", "--seed", "2"]) == 0
    return root


def test_train_resume_eval(video, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["forecast", "train", "--data", str(video), "--out", str(out), "--width", "0.05", "--crop", "16",
            "--batch-size", "2", "--iterations", "3", "--checkpoint-every", "1", "--rollout-steps", "2"]
    assert main(args) == 0
    assert main(args) == 2  # a finished run is never overwritten
    assert "--resume" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0  # already finished: nothing more to do
    assert main([*args[:-1], "3", "--resume"]) == 2
    assert "rollout_steps" in capsys.readouterr().err

    tuned = ["forecast", "train", "--data", str(video), "--out", str(tmp_path / "tuned"), "--crop", "16",
             "--iterations", "1", "--rollout-steps", "3", "--init", str(out / "checkpoint.pt")]
    assert main([*tuned, "--width", "0.1"]) == 2
    assert "width 0.05 there, 0.1 here" in capsys.readouterr().err
    assert main([*tuned, "--width", "0.05"]) == 0

    report = tmp_path / "eval"
    assert main(["forecast", "eval", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(video),
                 "--horizons", "3,6,9", "--stride", "4", "--out", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "copy-last" in printed and "t+9" in printed
    results = json.loads((report / "results.json").read_text())
    assert set(results["miou"]) == {"model", "copy-last", "flow"}
    assert all(0 <= v <= 1 for scores in results["miou"].values() for v in scores.values())
    assert all((report / name).is_file() for name in ("report.html", "curve.png", "panels.png"))

    assert main(["forecast", "eval", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(video),
                 "--horizons", "4"]) == 2
    assert "not multiples of 3" in capsys.readouterr().err
    assert main(["forecast", "eval", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(video),
                 "--horizons", "3,x"]) == 2
    error = capsys.readouterr().err
    assert "--horizons '3,x'" in error and len(error.strip().splitlines()) == 1


def test_training_lowers_the_loss(video, tmp_path):
    out = tmp_path / "run"
    assert main(["forecast", "train", "--data", str(video), "--out", str(out), "--width", "0.1", "--crop", "32",
                 "--batch-size", "2", "--iterations", "60", "--lr", "0.003"]) == 0
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0]
