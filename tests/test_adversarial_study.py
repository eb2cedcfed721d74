"""The adversarial study on a tiny synthetic set: both runs train from one config, the table holds
what was measured, a rerun reuses everything, and a changed config or a config without the
adversarial section is one clear error."""

import json

import pytest
import torch

from pixseg.cli import main
from pixseg.data.synthetic import make_synthetic_voc
from pixseg.engine.adversarial_study import run_adversarial_study

TINY = ["iterations=2", "val_every=2", "batch_size=2", "data.crop_size=32", "model.width=0.0625",
        "adversarial.channels=4", "adversarial.start_after=1"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("adversarial")
    make_synthetic_voc(out / "data", n_train=8, n_val=2, size=(40, 40), seed=4, progress=False)
    result = run_adversarial_study(out, out / "data", device="cpu", workers=1, overrides=TINY, progress=False)
    return out, result


def test_both_runs_share_everything_but_the_adversarial_term(study):
    out, _ = study
    plain = torch.load(out / "models" / "plain" / "checkpoint.pt", weights_only=True)
    adversarial = torch.load(out / "models" / "adversarial" / "checkpoint.pt", weights_only=True)
    assert "adversarial" not in plain and "adversarial" in adversarial
    assert plain["config"]["adversarial"] is None and adversarial["config"]["adversarial"]["lambda"] == 0.1
    assert {**adversarial["config"], "adversarial": None} == plain["config"]


def test_table_holds_each_runs_scores(study):
    out, result = study
    for row, name in zip(result["table"]["rows"], ("plain", "adversarial")):
        scores = json.loads((out / "results" / f"{name}.json").read_text())
        assert row[0].startswith(name)
        assert row[1:] == pytest.approx([100 * scores[key] for key in
                                         ("miou", "pixel_acc", "region_precision", "region_recall")], nan_ok=True)
        assert scores["regions_truth"] > 0
    for name in ("report.html", "metrics.json", "adversarial_table.md", "adversarial_table.csv", "panels.png",
                 "discriminator.png"):
        assert (out / name).is_file(), name
    page = (out / "report.html").read_text()
    assert "<script" not in page and page.count("data:image/png;base64,") == 2
    assert "lambda 0.1, product discriminator" in page


def test_a_rerun_reuses_everything(study):
    out, result = study
    files = [*(out / "results").iterdir(), *(out / "models").glob("*/checkpoint.pt")]
    before = {path: path.stat().st_mtime_ns for path in files}
    again = run_adversarial_study(out, out / "data", device="cpu", workers=1, overrides=TINY, progress=False)
    assert again["table"] == result["table"]
    assert {path: path.stat().st_mtime_ns for path in files} == before


def test_a_finished_study_is_not_overwritten_by_another_config(study, capsys):
    out, _ = study
    checkpoint = out / "models" / "plain" / "checkpoint.pt"
    before = checkpoint.stat().st_mtime_ns
    code = main(["adversarial-study", "--out", str(out), "--data", str(out / "data"), "--device", "cpu",
                 "--workers", "1", *TINY, "seed=1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "seed: 0 in the checkpoint, 1 now" in err
    assert checkpoint.stat().st_mtime_ns == before


def test_a_config_without_adversarial_section_is_refused(study, tmp_path, capsys):
    out, _ = study
    code = main(["adversarial-study", "--out", str(tmp_path / "s"), "--config", "zoo_quick", "--data",
                 str(out / "data")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err.startswith("pixseg adversarial-study: error: config 'zoo_quick' has no adversarial section")


def test_another_inference_mode_scores_the_same_models_again(study, capsys):
    out, result = study
    checkpoint = out / "models" / "plain" / "checkpoint.pt"
    before = checkpoint.stat().st_mtime_ns
    whole = json.loads((out / "results" / "plain.json").read_text())
    assert main(["adversarial-study", "--out", str(out), "--data", str(out / "data"), "--device", "cpu",
                 "--workers", "1", "--mode", "slide", "--crop", "40", "40", *TINY]) == 0
    assert checkpoint.stat().st_mtime_ns == before
    slid = json.loads((out / "results" / "plain.json").read_text())
    assert slid["produced_by"]["inference"]["crop"] == [40, 40] and "inference" not in whole["produced_by"]
    # One 40 x 40 window over 40 x 40 images: the whole images' scores.
    assert {k: v for k, v in slid.items() if k != "produced_by"} == {k: v for k, v in whole.items()
                                                                     if k != "produced_by"}
