"""The zoo on a tiny synthetic set: every stage runs, the tables hold what the runs measured, a rerun
reuses everything, and bad arguments are one clear error."""

import csv
import json

import pytest

from pixseg.cli import main
from pixseg.data.synthetic import make_synthetic_voc
from pixseg.engine.checkpoint import load_checkpoint
from pixseg.engine.zoo import QUICK_OPTIONS, model_spec, run_zoo
from pixseg.models import MODELS

TINY = ["iterations=2", "val_every=2", "batch_size=2", "data.crop_size=32", "data.holdout=0.25",
        "model.width=0.0625"]
# A plain net, one with an auxiliary head and one trained in two stages.
MODELS_RUN = ["fcn16s", "pspnet", "dilation"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    out = tmp_path_factory.mktemp("zoo")
    make_synthetic_voc(out / "data", n_train=8, n_val=2, size=(40, 40), seed=4, progress=False)
    result = run_zoo(out, out / "data", MODELS_RUN, workers=1, overrides=TINY, progress=False, cost_size=(48, 64))
    return out, result


def test_tables_hold_each_models_evaluations_and_costs(zoo):
    out, result = zoo
    for row, name in zip(result["accuracy"]["rows"], MODELS_RUN):
        plain = json.loads((out / "results" / f"{name}-none.json").read_text())
        crf = json.loads((out / "results" / f"{name}-dense.json").read_text())
        assert row[1:] == pytest.approx([100 * plain["miou"], 100 * crf["miou"], 100 * plain["fg_recall"],
                                         100 * crf["fg_recall"]])
    for row, name in zip(result["cost"]["rows"], MODELS_RUN):
        cost = json.loads((out / "results" / f"{name}-cost.json").read_text())
        assert row[1] == pytest.approx(cost["params"] / 1e6) and row[2] > 0 and row[4] > row[3] > 0
        assert cost["produced_by"] == {"size": [48, 64], "inference": {"mode": "whole", "crop": None, "stride": None,
                                                                        "scales": [1.0], "flip": False}}
    assert "### Cost at 48 x 64, whole images" in (out / "zoo_tables.md").read_text()
    with open(out / "zoo_accuracy.csv", newline="") as handle:
        assert [r[0] for r in csv.reader(handle)] == ["Model", "FCN-16s", "pspnet", "dilation"]


def test_every_stage_left_its_files(zoo):
    out, _ = zoo
    for name in ("report.html", "metrics.json", "crf.json", "zoo_tables.md", "zoo_cost.csv", "per_class_iou.png",
                 "models/pspnet/checkpoint.pt", "results/crf-cost.json"):
        assert (out / name).is_file(), name
    page = (out / "report.html").read_text()
    assert "<script" not in page and page.count("data:image/png;base64,") == 1
    assert "backbone=resnet18" in page  # the quick options each model was trained with
    assert "budget: quick with iterations=2 val_every=2" in page  # a changed budget says so


def test_dilation_adds_its_context_module_to_a_trained_front_end(zoo):
    out, _ = zoo
    first = load_checkpoint(out / "models" / "dilation-first-stage" / "checkpoint.pt")
    whole = load_checkpoint(out / "models" / "dilation" / "checkpoint.pt")
    assert first["config"]["model"]["context"] == "none" and whole["config"]["model"]["context"] == "basic"
    assert whole["config"]["model"]["init"] == str(out / "models" / "dilation-first-stage" / "checkpoint.pt")
    assert first["step"] == whole["step"] == 1  # half of the budget's 2 iterations each
    assert not any(key.startswith("context.") for key in first["model"])


def test_a_rerun_reuses_everything(zoo):
    out, result = zoo
    files = [*(out / "results").iterdir(), *(out / "models").glob("*/checkpoint.pt")]
    before = {path: path.stat().st_mtime_ns for path in files}
    again = run_zoo(out, out / "data", MODELS_RUN, workers=1, overrides=TINY, progress=False, cost_size=(48, 64))
    assert again["accuracy"] == result["accuracy"] and again["cost"] == result["cost"]
    assert {path: path.stat().st_mtime_ns for path in files} == before


def test_quick_options_are_valid_for_every_model():
    for name in MODELS:
        spec = model_spec(name, "quick")
        options = {key: value for key, value in spec.items() if key != "name"}
        MODELS[name](3, **options)  # raises on an option the builder does not take
    assert set(QUICK_OPTIONS) <= set(MODELS)
    assert model_spec("pspnet", "full") == {"name": "pspnet"}


def test_unknown_model_is_one_line(tmp_path, capsys):
    assert main(["zoo", "--out", str(tmp_path / "z"), "--models", "fcn4s"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pixseg zoo: error: --models fcn4s: expected some of fcn32s") and "\n" not in err
