"""`pixseg synth-video` and `pixseg forecast train|eval` on tiny synthetic video; training learns."""

import json

import pytest
import torch
from PIL import Image, ImageSequence

from pixseg.cli import main
from pixseg.data.sequences import SequenceWindows
from pixseg.forecast import create_forecaster, forecast_loss
from pixseg.forecast.train import load_forecaster, window_tensor


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
    with Image.open(report / "rollout.gif") as gif:  # identical neighbours are merged, their times added
        shown = sum(gif.info["duration"] for _ in ImageSequence.Iterator(gif))
    assert shown == (4 + 3) * 500  # the past segmentations, then one forecast per step of 3 frames

    evaluation = ["forecast", "eval", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(video),
                  "--stride", "4", "--out", str(report)]
    assert main([*evaluation, "--horizons", "3,6,9"]) == 0  # the same evaluation again: same results
    assert json.loads((report / "results.json").read_text()) == results
    assert main([*evaluation, "--horizons", "3"]) == 2  # another one would lose these results
    error = capsys.readouterr().err
    assert "holds another evaluation (horizons [3, 6, 9] there, [3] now)" in error
    assert json.loads((report / "results.json").read_text()) == results

    assert main(["forecast", "eval", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(video),
                 "--horizons", "4"]) == 2
    assert "not multiples of 3" in capsys.readouterr().err
    assert main(["forecast", "eval", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(video),
                 "--horizons", "3,x"]) == 2
    error = capsys.readouterr().err
    assert "--horizons '3,x'" in error and len(error.strip().splitlines()) == 1
    assert main(["forecast", "eval", "--checkpoint", str(out / "nothere.pt"), "--data", str(video)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"checkpoint {out / 'nothere.pt'} does not exist")


def window_loss(model, video) -> float:
    """The loss on the first training windows, whole frames."""
    windows = SequenceWindows(video, "train", horizons=(3,), stride=3)
    items = [windows[i] for i in range(0, len(windows), 2)]
    x = torch.stack([window_tensor(item["inputs"], 19) for item in items])
    y = torch.stack([window_tensor(item["targets"], 19)[0] for item in items])
    with torch.no_grad():
        return forecast_loss(model(x), y).item()


def test_training_lowers_the_loss(video, tmp_path):
    out = tmp_path / "run"
    assert main(["forecast", "train", "--data", str(video), "--out", str(out), "--width", "0.1", "--crop", "32",
                 "--batch-size", "2", "--iterations", "60", "--lr", "0.003"]) == 0
    trained, config = load_forecaster(out / "checkpoint.pt")
    torch.manual_seed(config.seed)  # the initial weights, as training drew them
    untrained = create_forecaster(config.model, config.num_classes, config.inputs, config.width).eval()
    assert window_loss(trained, video) < 0.85 * window_loss(untrained, video)


def test_interrupted_run_resumes_to_the_uninterrupted_weights(video, tmp_path, monkeypatch, capsys):
    args = ["forecast", "train", "--data", str(video), "--width", "0.05", "--crop", "16", "--batch-size", "2",
            "--checkpoint-every", "100", "--lr", "0.003"]
    assert main([*args, "--iterations", "8", "--out", str(tmp_path / "whole")]) == 0

    import pixseg.forecast.train as forecast_train

    calls = []

    def loss_until_ctrl_c(*arguments):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return forecast_loss(*arguments)

    monkeypatch.setattr(forecast_train, "forecast_loss", loss_until_ctrl_c)
    assert main([*args, "--iterations", "8", "--out", str(tmp_path / "cut")]) == 130
    assert "stopped at step 4 of 8" in capsys.readouterr().err
    monkeypatch.undo()
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)["step"] == 4
    assert main([*args, "--iterations", "8", "--out", str(tmp_path / "cut"), "--resume"]) == 0
    whole, _ = load_forecaster(tmp_path / "whole" / "checkpoint.pt")
    resumed, _ = load_forecaster(tmp_path / "cut" / "checkpoint.pt")
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name

    assert main([*args, "--out", str(tmp_path / "cut"), "--overwrite", "--iterations", "2"]) == 0
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)["step"] == 2
