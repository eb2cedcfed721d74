import csv
import json

import pytest

from pixseg.cli import main
from pixseg.data.synthetic import make_synthetic_voc
from pixseg.engine.sweep import parse_values


def sweep_args(tmp_path, values: str, iterations: int, holdout: float) -> list[str]:
    """A sweep of tiny models on 4 training and 2 val images."""
    data = make_synthetic_voc(tmp_path / "data", n_train=4, n_val=2, size=(32, 32), seed=5, progress=False)
    return ["sweep-weights", "--config", "experiment_quick", "--data", str(data), "--out", str(tmp_path / "sweep"),
            "--values", values, f"iterations={iterations}", f"val_every={iterations}", "batch_size=2",
            "data.crop_size=32", f"data.holdout={holdout}", "model.width=0.0625"]


def test_sweep_writes_one_row_per_weight_and_resumes(tmp_path, capsys):
    args = sweep_args(tmp_path, "0,0.5,1", iterations=2, holdout=0.25)
    assert main(args) == 0
    with open(tmp_path / "sweep" / "sweep.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(float(r["wp"]), float(r["ws"])) for r in rows] == [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)]
    assert all(0 <= float(r["miou"]) <= 1 for r in rows)
    assert (tmp_path / "sweep" / "sweep.png").stat().st_size > 0
    checkpoint = tmp_path / "sweep" / "wp_0.500" / "checkpoint.pt"
    assert checkpoint.is_file()
    before = checkpoint.stat().st_mtime_ns
    assert main(args) == 0  # every point is reused
    assert checkpoint.stat().st_mtime_ns == before
    assert "Wp" in capsys.readouterr().out
    # Scored on the one held-out training image (never val, which has two).
    metrics = json.loads((tmp_path / "sweep" / "wp_0.500" / "metrics.json").read_text())
    assert metrics["num_images"] == 1 and metrics["produced_by"]["split"] == "held-out"
    # Another inference mode scores the same models again, in its own result: one 32 x 32 window
    # over 32 x 32 images predicts what the whole image does.
    assert main([*args, "--mode", "slide", "--crop", "32", "32"]) == 0
    assert checkpoint.stat().st_mtime_ns == before
    slid = json.loads((tmp_path / "sweep" / "wp_0.500" / "metrics.json").read_text())
    assert slid["produced_by"]["inference"]["mode"] == "slide" and "inference" not in metrics["produced_by"]
    assert slid["iou"] == metrics["iou"]


def test_sweep_scores_val_only_when_asked(tmp_path, capsys):
    args = sweep_args(tmp_path, "0.5", iterations=1, holdout=0)
    assert main(args) == 2
    assert "data.holdout = 0" in capsys.readouterr().err
    assert not (tmp_path / "sweep").exists()
    assert main([*args[:1], "--score-on", "val", *args[1:]]) == 0
    assert "scored on val" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "sweep" / "wp_0.500" / "metrics.json").read_text())
    assert metrics["num_images"] == 2 and metrics["produced_by"]["split"] == "val"


@pytest.mark.parametrize("text", ["", "0.2,1.5", "a,b", "-0.1"])
def test_bad_values_are_rejected(text):
    with pytest.raises(ValueError, match="--values"):
        parse_values(text)
