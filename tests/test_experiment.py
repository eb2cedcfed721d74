"""The experiment on a tiny synthetic set: every stage runs, resumes, and report.html matches the CSVs."""

import csv
import json
import re
from html.parser import HTMLParser

import pytest
import torch

from pixseg.data.synthetic import make_synthetic_voc
from pixseg.engine.experiment import IOU_ROWS, format_table, run_experiment, table_csv
from pixseg.engine.train import training_split
from pixseg.report import paper_claims

TINY = ["iterations=2", "val_every=2", "batch_size=2", "data.crop_size=32", "data.holdout=0.25",
        "model.width=0.0625"]


class TableCells(HTMLParser):
    """The text of every <td>/<th> cell, table by table, row by row."""

    def __init__(self):
        super().__init__()
        self.tables, self.cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    out = tmp_path_factory.mktemp("experiment")
    make_synthetic_voc(out / "data", n_train=8, n_val=2, size=(40, 40), seed=4, progress=False)
    result = run_experiment(out, out / "data", models=["fcn16s", "fcn32s"], workers=2, overrides=TINY,
                            progress=False)
    return out, result


def test_report_tables_match_the_csvs(experiment):
    out, _ = experiment
    page = (out / "report.html").read_text()
    assert "<script" not in page and "src=\"http" not in page  # opens offline, nothing fetched
    assert page.count("data:image/png;base64,") == 3
    parser = TableCells()
    parser.feed(page)
    for table, name in zip(parser.tables, ("iou", "recall")):
        with open(out / f"{name}_table.csv", newline="") as handle:
            assert table == list(csv.reader(handle))
    assert [row[0] for row in parser.tables[0][1:6]] == [label for label, _, _ in IOU_ROWS]
    assert parser.tables[0][0] == ["Method", "FCN-32s", "FCN-16s"]  # coarse to fine, whatever the order given
    assert [row[0] for row in parser.tables[2][1:]] == ["0", "0.25", "0.5", "0.75"]  # the weights sweep


def test_every_stage_left_its_files(experiment):
    out, result = experiment
    for name in ("metrics.json", "crf.json", "tables.md", "per_class_iou.png", "panels.png",
                 "weights_sweep.json", "weights_sweep.csv", "weights_sweep.png",
                 "models/fcn32s-softmax/checkpoint.pt", "models/fcn32s-fused-wp0.25/checkpoint.pt",
                 "models/fcn16s-softmax/checkpoint.pt", "models/fcn16s-fused/checkpoint.pt",
                 "results/fcn16s-fused-pos.json", "results/fcn32s-softmax-dense.json",
                 "boundary_model.npz"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["miou"] <= 1 and 0 <= metrics["fg_recall"] <= 1
    assert metrics["miou"] == pytest.approx(result["iou"]["rows"][4][2] / 100)
    sweep = json.loads((out / "weights_sweep.json").read_text())
    assert [row["wp"] for row in sweep["rows"]] == [0.0, 0.25, 0.5, 0.75]
    assert sweep["num_images"] == 2 and sweep["chosen_wp"] in (0.25, 0.5, 0.75)  # held-out train, never val
    chosen = sweep["chosen_wp"]
    assert metrics["fused_weights"] == {"ws": 1 - chosen, "wp": chosen}
    # Staged: FCN-16s starts from the FCN-32s trained with the same loss (the chosen sweep point).
    fine = torch.load(out / "models/fcn16s-fused/checkpoint.pt", weights_only=True)["config"]
    assert fine["model"]["init"] == str(out / f"models/fcn32s-fused-wp{chosen:g}/checkpoint.pt")
    assert fine["loss"] == {"name": "fused", "ws": 1 - chosen, "wp": chosen} and fine["iterations"] == 1
    tuning = json.loads((out / "crf.json").read_text())
    assert tuning["num_images"] == 2  # a quarter of the 8 training images, never val


def test_the_boundary_model_never_sees_the_held_out_images(tmp_path, monkeypatch):
    import pixseg.objectness.learned as learned
    from pixseg.engine.config import load_config
    from pixseg.engine.experiment import objectness_options

    make_synthetic_voc(tmp_path / "data", n_train=8, n_val=2, size=(32, 32), seed=4, progress=False)
    config = load_config(None, [f"data.root={tmp_path / 'data'}", "data.holdout=0.25"])
    seen = []
    monkeypatch.setattr(learned, "train_on_dataset", lambda dataset, out, **_: seen.extend(dataset.ids))
    objectness_options(tmp_path, config, "learned", progress=False)
    held_out = set(training_split(config, held_out=True).ids)
    assert len(seen) == 6 and len(held_out) == 2 and not held_out & set(seen)


def test_a_rerun_reuses_everything(experiment, capsys):
    out, result = experiment
    before = {p: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    again = run_experiment(out, out / "data", models=["fcn32s", "fcn16s"], workers=1, overrides=TINY,
                           progress=False)
    assert again["iou"] == result["iou"]
    assert {p: p.stat().st_mtime_ns for p in (out / "results").iterdir()} == before


def test_paper_claims_are_checked_per_column():
    table = {"columns": ["Method", "A", "B"], "rows": [
        ["SoftmaxLoss", 50, 60], ["FusedLoss", 51, 59], ["SoftmaxLoss + CRFs", 52, 61],
        ["FusedLoss + CRFs", 53, 62], ["FusedLoss + POS-CRFs", 54, 62], ["FusedLoss + centre-prior CRFs", 55, 60]]}
    recall = {"columns": ["Method", "A", "B"], "rows": [["baseline", 70, 70], ["ours", 71, 72]]}
    claims = dict(paper_claims({"iou": table, "recall": recall}))
    verdicts = list(claims.values())
    assert verdicts == [False, True, True, True, True, False]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="fcn64s"):
        run_experiment(tmp_path, tmp_path, models=["fcn64s"])
    with pytest.raises(ValueError, match="budget"):
        run_experiment(tmp_path, tmp_path, budget="huge")
    with pytest.raises(ValueError, match="boundaries"):
        run_experiment(tmp_path, tmp_path, boundaries="sed")


def test_csv_has_two_decimals():
    text = table_csv({"columns": ["Method", "A"], "rows": [["x", 12.3456]]})
    assert text == "Method,A\nx,12.35\n"


def test_console_table_keeps_every_header_apart():
    columns = ["Model", "mIoU", "mIoU+CRF", "fg recall", "recall+CRF"]
    text = format_table({"columns": columns, "rows": [["DeepLab v3+", 27.64, 33.47, 45.89, 100.0]]}, "Accuracy")
    title, header, row = text.strip("\n").split("\n")
    assert re.split(r"\s{2,}", header) == columns
    assert re.split(r"\s{2,}", row) == ["DeepLab v3+", "27.64", "33.47", "45.89", "100.00"]
    assert len(header) == len(row)  # values end under their headers
