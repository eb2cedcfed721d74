"""Liu & Lew's study as one resumable run: train, tune the CRF on held-out images, evaluate, report.

Every stage writes its result to a file under `out` before the next starts, and a rerun reuses
whatever is there: trained models (checkpoints resume mid-training), the tuned CRF, each
evaluation, and the objectness maps (cached by image content).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pixseg.engine.config import config_from_dict, load_config
from pixseg.engine.datasets import open_split
from pixseg.data.synthetic import make_synthetic_voc
from pixseg.engine.evaluate import evaluate, predict_probs
from pixseg.engine.refine import make_refiner
from pixseg.engine.train import load_trained_model, resolve_device, train, training_split
from pixseg.engine.tune_crf import candidate_settings, tune_crf
from pixseg.io import cached_json, file_digest, json_text, write_text

LOSSES = {"softmax": {"name": "ce"}, "fused": {"name": "fused", "ws": 0.5, "wp": 0.5}}
MODEL_TITLES = {"fcn32s": "FCN-32s", "fcn16s": "FCN-16s", "fcn8s": "FCN-8s"}
# The paper's IoU table: (row, loss, post-processing).
IOU_ROWS = (
    ("SoftmaxLoss", "softmax", "none"),
    ("FusedLoss", "fused", "none"),
    ("SoftmaxLoss + CRFs", "softmax", "dense"),
    ("FusedLoss + CRFs", "fused", "dense"),
    ("FusedLoss + POS-CRFs", "fused", "pos"),
)
# Not in the paper: the centred-Gaussian "objectness" that POS has to beat (docs/method/objectness.md).
CHECK_ROWS = (("FusedLoss + centre-prior CRFs", "fused", "center"),)
BASELINE = ("Baseline: SoftmaxLoss + CRFs", "softmax", "dense")
OURS = ("Ours: FusedLoss + POS-CRFs", "fused", "pos")
BUDGETS = {"quick": "experiment_quick", "full": "experiment_full"}
PANEL_IMAGES = 4
TUNE_TRIALS = {"quick": 12, "full": 32}
CRF_ITERATIONS = 5


# The synthetic set the quick budget trains on when no --data is given.
SYNTHETIC_DATA = {"n_train": 400, "n_val": 100, "size": (128, 128), "seed": 0}


def ensure_synthetic_data(root: Path, n_train: int, n_val: int, size, seed: int) -> Path:
    """Make the synthetic dataset under `root` unless a complete one is already there."""
    splits = root / "ImageSets" / "Segmentation"
    if (splits / "train.txt").is_file() and (splits / "val.txt").is_file():
        return root
    print(f"making synthetic VOC data in {root} ({n_train} train + {n_val} val, {size[0]}x{size[1]})")
    # A set without split files was interrupted: this run's own folder, made again from the start.
    return make_synthetic_voc(root, n_train=n_train, n_val=n_val, size=size, seed=seed, overwrite=True)


class Stages:
    """Prints numbered stages with the time spent so far, so a long run says what it is doing."""

    def __init__(self, total: int):
        self.total, self.number, self.started = total, 0, time.perf_counter()

    def begin(self, text: str) -> None:
        self.number += 1
        elapsed = time.perf_counter() - self.started
        print(f"\n[{self.number}/{self.total}] {text}  (elapsed {elapsed / 60:.1f} min)", flush=True)


def run_name(model: str, loss: str) -> str:
    return f"{model}-{loss}"


def run_experiment(out: str | Path, data: str | Path | None = None, models=("fcn32s", "fcn16s", "fcn8s"),
                   budget: str = "quick", device: str = "auto", pretrained: str | None = None,
                   workers: int = 1, overrides=(), progress: bool = True) -> dict:
    """Run the whole study into `out` and return {"iou": table, "recall": table, "runs": metrics}."""
    out = Path(out)
    unknown = [m for m in models if m not in MODEL_TITLES]
    if unknown or not models:
        raise ValueError(f"--models {','.join(models)}: expected some of {', '.join(MODEL_TITLES)}")
    if budget not in BUDGETS:
        raise ValueError(f"--budget {budget!r}: expected one of {', '.join(BUDGETS)}")
    stages = Stages(6)

    stages.begin("data")
    root = Path(data) if data else ensure_synthetic_data(out / "data", **SYNTHETIC_DATA)
    base = load_config(BUDGETS[budget], [f"data.root={root}", *overrides])
    val = open_split(base.data, base.data.val_split)
    print(f"{root} ({val.name}, {val.num_classes} classes): {len(val)} {base.data.val_split} images")

    stages.begin(f"training {len(models) * len(LOSSES)} models ({budget} budget)")
    jobs = {}
    for model in models:
        for loss, spec in LOSSES.items():
            config = load_config(BUDGETS[budget], [
                f"data.root={root}", f"model.name={model}", f"loss={json.dumps(spec)}", f"device={device}",
                *([f"model.pretrained={pretrained}"] if pretrained else []), *overrides])
            jobs[run_name(model, loss)] = (config, out / "models" / run_name(model, loss))
    parallel = workers if resolve_device(device).type == "cpu" else 1
    checkpoints = train_all(jobs, parallel, progress)
    torch_device = resolve_device(device)

    stages.begin("choosing CRF parameters on held-out training images (never val)")
    crf_settings = tuned_crf_settings(out, checkpoints[run_name(models[-1], "softmax")], torch_device,
                                      TUNE_TRIALS[budget], progress)

    stages.begin("pixel objectness for the val images")
    pos_cache = out / "pos_cache"
    from pixseg.objectness.cache import precompute

    precompute([val.image_path(i) for i in range(len(val))], pos_cache, workers=workers)

    stages.begin("evaluating every model without CRF, with the CRF and with the POS-CRF")
    runs = {}
    for model in models:
        for _, loss, mode in IOU_ROWS + CHECK_ROWS:
            key = f"{run_name(model, loss)}-{mode}"
            runs[key] = evaluation(out / "results" / f"{key}.json", checkpoints[run_name(model, loss)], val,
                                   torch_device, mode, crf_settings, pos_cache, progress)

    stages.begin("tables, figures and report")
    tables = {"iou": iou_table(models, runs), "recall": recall_table(models, runs)}
    write_tables(out, tables)
    figures = {
        "per-class IoU": plot_per_class(out / "per_class_iou.png", models[-1], runs, val.classes),
        "examples": write_example_panels(out / "panels.png", models[-1], checkpoints, val, torch_device,
                                         crf_settings, pos_cache),
    }
    from pixseg.report import render_report

    report = render_report(out / "report.html", tables=tables, figures=figures, crf=crf_settings,
                           data=f"{root} ({val.name})", budget=budget, models=[MODEL_TITLES[m] for m in models])
    headline = runs[f"{run_name(models[-1], 'fused')}-pos"]
    write_text(out / "metrics.json", json_text({
        "method": f"{MODEL_TITLES[models[-1]]} FusedLoss + POS-CRFs",
        "miou": headline["miou"], "fg_recall": headline["fg_recall"], "pixel_acc": headline["pixel_acc"],
        "tables": tables, "runs": runs, "crf": crf_settings}))
    print(format_table(tables["iou"], "Mean IoU (%)"))
    print(format_table(tables["recall"], "Foreground recall (%)"))
    print(f"\nreport: {report}")
    return {**tables, "runs": runs}


def _train_in_process(config: dict, out_dir: str) -> str:
    """One training run in a worker process: one thread each, as several share the cores."""
    import torch

    torch.set_num_threads(1)
    return str(train(config_from_dict(config), out_dir, resume=True, progress=False))


def train_all(jobs: dict, workers: int, progress: bool) -> dict:
    """Train every (config, out_dir) of `jobs` (resuming what is on disk), `workers` at a time.

    Narrow models on a CPU keep one core busy whatever the thread count, so separate processes
    finish the set about `workers` times sooner than one process with all the threads.
    """
    if workers <= 1:
        checkpoints, began = {}, time.perf_counter()
        for done, (name, (config, out_dir)) in enumerate(jobs.items()):
            minutes_left = (time.perf_counter() - began) / max(done, 1) * (len(jobs) - done) / 60
            eta = f", about {minutes_left:.1f} min left" if done else ""
            print(f"model {done + 1}/{len(jobs)}: {name}{eta}", flush=True)
            checkpoints[name] = train(config, out_dir, resume=True, progress=progress)
        return checkpoints
    print(f"{len(jobs)} models, {workers} at a time in separate processes", flush=True)
    finished = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool, \
            tqdm(total=len(jobs), desc="models trained", unit="model", disable=not progress,
                 dynamic_ncols=True) as bar:
        futures = {pool.submit(_train_in_process, config.to_dict(), str(out_dir)): name
                   for name, (config, out_dir) in jobs.items()}
        for future in as_completed(futures):
            finished[futures[future]] = Path(future.result())
            bar.write(f"finished {futures[future]}")
            bar.update()
    return {name: finished[name] for name in jobs}


def tuned_crf_settings(out: Path, checkpoint: Path, device, trials: int, progress: bool) -> dict:
    def tune():
        model, config = load_trained_model(checkpoint, device)
        held_out = training_split(config, held_out=True)
        return tune_crf(model, held_out, device, candidate_settings(trials, CRF_ITERATIONS), progress=progress)

    # Tuned again when the model was retrained or the search changed.
    result = cached_json(out / "crf.json", {"checkpoint_sha256": file_digest(checkpoint), "trials": trials,
                                            "iterations": CRF_ITERATIONS}, tune)
    best = result["best"]
    print(f"CRF: appearance {best['appearance']}, smoothness {best['smoothness']}, "
          f"{best['iterations']} iterations (held-out mIoU {100 * result['best_miou']:.2f}, "
          f"no CRF {100 * result['no_crf_miou']:.2f})")
    return {"iterations": best["iterations"], "appearance": tuple(best["appearance"]),
            "smoothness": tuple(best["smoothness"])}


def evaluation(path: Path, checkpoint: Path, dataset, device, mode: str, crf_settings: dict,
               pos_cache: Path, progress: bool) -> dict:
    def evaluate_now():
        model, _ = load_trained_model(checkpoint, device)
        refine = make_refiner(mode, crf_options=crf_settings, pos_cache=pos_cache)
        return evaluate(model, dataset, device, refine=refine, progress=progress, desc=f"{path.stem}")

    # Evaluated again when the model was retrained or the CRF re-tuned.
    produced_by = {"checkpoint_sha256": file_digest(checkpoint), "mode": mode,
                   "val_images": hashlib.sha256("\n".join(dataset.ids).encode()).hexdigest(),
                   "crf": crf_settings if mode != "none" else None}
    return cached_json(path, produced_by, evaluate_now)


def iou_table(models, runs) -> dict:
    rows = [[label, *[100 * runs[f"{run_name(m, loss)}-{mode}"]["miou"] for m in models]]
            for label, loss, mode in IOU_ROWS + CHECK_ROWS]
    return {"columns": ["Method", *[MODEL_TITLES[m] for m in models]], "rows": rows}


def recall_table(models, runs) -> dict:
    rows = [[label, *[100 * runs[f"{run_name(m, loss)}-{mode}"]["fg_recall"] for m in models]]
            for label, loss, mode in (BASELINE, OURS)]
    return {"columns": ["Method", *[MODEL_TITLES[m] for m in models]], "rows": rows}


def format_table(table: dict, title: str) -> str:
    width = max(len(row[0]) for row in table["rows"]) + 2
    lines = [f"\n{title}", table["columns"][0].ljust(width) + "".join(f"{c:>10}" for c in table["columns"][1:])]
    lines += [row[0].ljust(width) + "".join(f"{v:10.2f}" for v in row[1:]) for row in table["rows"]]
    return "\n".join(lines)


def table_csv(table: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table["columns"])
    writer.writerows([[row[0], *[f"{v:.2f}" for v in row[1:]]] for row in table["rows"]])
    return buffer.getvalue()


def table_markdown(table: dict) -> str:
    lines = ["| " + " | ".join(table["columns"]) + " |", "|" + "---|" * len(table["columns"])]
    lines += ["| " + " | ".join([row[0], *[f"{v:.2f}" for v in row[1:]]]) + " |" for row in table["rows"]]
    return "\n".join(lines) + "\n"


def write_tables(out: Path, tables: dict) -> None:
    titles = {"iou": "Mean IoU (%) on val", "recall": "Foreground recall (%) on val"}
    markdown = []
    for name, table in tables.items():
        write_text(out / f"{name}_table.csv", table_csv(table))
        markdown.append(f"### {titles[name]}\n\n{table_markdown(table)}")
    write_text(out / "tables.md", "\n".join(markdown))


def plot_per_class(path: Path, model: str, runs: dict, classes) -> Path:
    from matplotlib.figure import Figure  # a figure of its own: pyplot's global backend is left alone

    from pixseg.io import atomic_path

    # Background, where the dataset has one, is left out: the plot is about the objects.
    first = 1 if classes[0] == "background" else 0
    baseline = runs[f"{run_name(model, BASELINE[1])}-{BASELINE[2]}"]["iou"][first:]
    ours = runs[f"{run_name(model, OURS[1])}-{OURS[2]}"]["iou"][first:]
    positions = np.arange(len(baseline))
    figure = Figure(figsize=(11, 3.8))
    axis = figure.subplots()
    # Undefined IoUs are null in the results' JSON: drawn as 0.
    axis.bar(positions - 0.2, 100 * np.nan_to_num(np.asarray(baseline, dtype=float)), 0.4, label=BASELINE[0])
    axis.bar(positions + 0.2, 100 * np.nan_to_num(np.asarray(ours, dtype=float)), 0.4, label=OURS[0])
    axis.set_xticks(positions, classes[first:], rotation=45, ha="right")
    axis.set_ylabel("IoU (%)")
    axis.set_title(f"{MODEL_TITLES[model]}: per-class IoU" + (" of the object classes" if first else ""))
    axis.legend()
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return path


def write_example_panels(path: Path, model: str, checkpoints: dict, dataset, device, crf_settings: dict,
                         pos_cache: Path) -> Path:
    from pixseg.objectness.cache import cached_pixel_objectness
    from pixseg.viz import colorize, heatmap, save_panel

    baseline_model, _ = load_trained_model(checkpoints[run_name(model, BASELINE[1])], device)
    ours_model, _ = load_trained_model(checkpoints[run_name(model, OURS[1])], device)
    baseline_refine = make_refiner(BASELINE[2], crf_options=crf_settings, pos_cache=pos_cache)
    ours_refine = make_refiner(OURS[2], crf_options=crf_settings, pos_cache=pos_cache)
    rows = []
    for index in range(min(PANEL_IMAGES, len(dataset))):
        image, label = dataset[index]
        pos = cached_pixel_objectness(image, pos_cache)
        baseline = baseline_refine(image, predict_probs(baseline_model, image, device).cpu().numpy())
        ours = ours_refine(image, predict_probs(ours_model, image, device).cpu().numpy())
        # Scaled to each map's maximum: POS rarely nears 1, and the unscaled map reads as black.
        rows.append([image, heatmap(pos / max(float(pos.max()), 1e-6)), colorize(np.asarray(label), dataset.palette),
                     colorize(baseline, dataset.palette), colorize(ours, dataset.palette)])
    save_panel(path, rows, ["input", "POS map (scaled to its max)", "ground truth", "SoftmaxLoss + CRF",
                            "FusedLoss + POS-CRF"])
    return path
