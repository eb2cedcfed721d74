"""Liu & Lew's study as one resumable run: train, tune the CRF on held-out images, evaluate, report.

Training follows Long et al.: the coarsest FCN first, then each finer one initialised from the
trained coarser one (the "staged" schedule; "scratch" trains each from its own initialisation).
The fused loss's weights are chosen the way the CRF's parameters are: the coarsest FCN is trained
with each candidate Wp (Ws = 1 - Wp; Wp = 0 is the SoftmaxLoss model), scored on the held-out part
of train, never val, and the best pair is used for every FusedLoss model; the chosen run is the
coarsest FusedLoss model itself.

Every stage writes its result to a file under `out` before the next starts, and a rerun reuses
whatever is there: trained models (checkpoints resume mid-training), the weights sweep, the tuned
CRF, each evaluation, and the objectness maps (cached by image content).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pixseg.engine.config import config_from_dict, load_config
from pixseg.engine.datasets import open_split
from pixseg.data.synthetic import make_synthetic_voc
from pixseg.engine.evaluate import evaluate, predict_probs
from pixseg.engine.inference import InferenceConfig, inference_key, prediction_settings
from pixseg.engine.refine import make_refiner
from pixseg.engine.train import LOG_NAME, load_trained_model, resolve_device, train, training_split
from pixseg.engine.tune_crf import candidate_settings, tune_crf
from pixseg.io import cached_json, file_digest, json_text, write_text

LOSSES = ("softmax", "fused")
SOFTMAX = {"name": "ce"}
MODEL_TITLES = {"fcn32s": "FCN-32s", "fcn16s": "FCN-16s", "fcn8s": "FCN-8s"}  # coarse to fine
SCHEDULES = ("staged", "scratch")
# Candidate Wp values of the weights sweep (Ws = 1 - Wp); Wp = 0 is the SoftmaxLoss model, trained anyway.
SWEEP_VALUES = {"quick": (0.25, 0.5, 0.75), "full": (0.1, 0.3, 0.5, 0.7, 0.9)}
# A finer FCN that starts from a trained coarser one trains for this fraction of the budget's
# iterations: it begins as the coarser net and only has to learn to use its skip.
FINETUNE_FRACTION = 0.5
# Seconds between looks at the logs of models training in other processes.
POLL_SECONDS = 2.0
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


def check_study(models, known, budget: str, budgets: dict) -> None:
    """Raise ValueError unless `models` are some of `known` and `budget` one of `budgets`."""
    unknown = [m for m in models if m not in known]
    if unknown or not models:
        raise ValueError(f"--models {','.join(models)}: expected some of {', '.join(known)}")
    if budget not in budgets:
        raise ValueError(f"--budget {budget!r}: expected one of {', '.join(budgets)}")


def study_data(out: Path, data, config: str, overrides) -> tuple[Path, object, object]:
    """A study's data folder (the synthetic set under out/data unless `data` names one), the
    budget's config for it and its val split as that config reads it."""
    load_config(config, list(overrides))  # a bad key or value fails before any data is made
    root = Path(data) if data else ensure_synthetic_data(out / "data", **SYNTHETIC_DATA)
    base = load_config(config, [f"data.root={root}", *overrides])
    val = open_split(base.data, base.data.val_split)
    print(f"{root} ({val.name}, {val.num_classes} classes): {len(val)} {base.data.val_split} images")
    return root, base, val


def stage_length(config, fraction: float) -> str:
    """The override that trains for `fraction` of `config`'s iterations (or epochs)."""
    key, value = ("iterations", config.iterations) if config.iterations is not None else ("epochs", config.epochs)
    return f"{key}={max(1, round(value * fraction))}"


def run_name(model: str, loss: str) -> str:
    return f"{model}-{loss}"


def fused_spec(wp: float) -> dict:
    return {"name": "fused", "ws": round(1.0 - wp, 6), "wp": wp}


def run_experiment(out: str | Path, data: str | Path | None = None, models=("fcn32s", "fcn16s", "fcn8s"),
                   budget: str = "quick", device: str = "auto", pretrained: str | None = None,
                   workers: int = 1, overrides=(), progress: bool = True, schedule: str = "staged",
                   boundaries: str = "learned") -> dict:
    """Run the whole study into `out` and return {"iou": table, "recall": table, "runs": metrics}.

    `boundaries`: "learned" (the proposals' boundary model is trained on the training masks first)
    or "gradient" (training-free Lab gradients).
    """
    out = Path(out)
    check_study(models, MODEL_TITLES, budget, BUDGETS)
    if schedule not in SCHEDULES:
        raise ValueError(f"--schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
    models = [m for m in MODEL_TITLES if m in models]
    if boundaries not in ("learned", "gradient"):
        raise ValueError(f"--boundaries {boundaries!r}: expected learned or gradient")
    if pretrained is not None and not Path(pretrained).is_file():
        raise ValueError(f"--pretrained {pretrained}: no such file")
    stages = Stages(7)

    stages.begin("data")
    root, base, val = study_data(out, data, BUDGETS[budget], overrides)
    torch_device = resolve_device(device)
    parallel = workers if torch_device.type == "cpu" else 1

    def config(model, loss_spec, init_from=None):
        settings = [f"data.root={root}", f"model.name={model}", f"loss={json.dumps(loss_spec)}", f"device={device}",
                    *([f"model.pretrained={pretrained}"] if pretrained and init_from is None else []), *overrides]
        if init_from is None:
            return load_config(BUDGETS[budget], settings)
        full = load_config(BUDGETS[budget], settings)
        return load_config(BUDGETS[budget], [*settings, f"model.init={init_from}",
                                             stage_length(full, FINETUNE_FRACTION)])

    first = models[0]
    values = SWEEP_VALUES[budget]
    stages.begin(f"loss weights: {MODEL_TITLES[first]} with SoftmaxLoss and FusedLoss at Wp = "
                 f"{', '.join(f'{v:g}' for v in values)} ({budget} budget)")
    jobs = {run_name(first, "softmax"): (config(first, SOFTMAX), out / "models" / run_name(first, "softmax"))}
    for wp in values:
        jobs[f"{first}-fused-wp{wp:g}"] = (config(first, fused_spec(wp)), out / "models" / f"{first}-fused-wp{wp:g}")
    trained = train_all(jobs, parallel, progress)
    sweep = weights_sweep(out, {0.0: trained[run_name(first, "softmax")],
                                **{wp: trained[f"{first}-fused-wp{wp:g}"] for wp in values}}, torch_device, progress,
                          base.inference)
    chosen = sweep["chosen_wp"]
    checkpoints = {run_name(first, "softmax"): trained[run_name(first, "softmax")],
                   run_name(first, "fused"): trained[f"{first}-fused-wp{chosen:g}"]}
    specs = {"softmax": SOFTMAX, "fused": fused_spec(chosen)}

    stages.begin(f"training {', '.join(MODEL_TITLES[m] for m in models[1:]) or 'no finer FCN'} "
                 f"({schedule} schedule, FusedLoss Ws = {1 - chosen:g}, Wp = {chosen:g})")
    if schedule == "staged":
        for coarser, model in zip(models, models[1:]):
            print(f"{MODEL_TITLES[model]} starts from the trained {MODEL_TITLES[coarser]}", flush=True)
            checkpoints.update(train_all({
                run_name(model, loss): (config(model, specs[loss], checkpoints[run_name(coarser, loss)]),
                                        out / "models" / run_name(model, loss)) for loss in LOSSES}, parallel, progress))
    else:
        checkpoints.update(train_all({
            run_name(model, loss): (config(model, specs[loss]), out / "models" / run_name(model, loss))
            for model in models[1:] for loss in LOSSES}, parallel, progress))

    stages.begin("choosing CRF parameters on held-out training images (never val)")
    crf_settings = tuned_crf_settings(out, checkpoints[run_name(models[-1], "softmax")], torch_device,
                                      TUNE_TRIALS[budget], progress, base.inference)

    stages.begin("pixel objectness for the val images")
    pos_cache = out / "pos_cache"
    pos_options = objectness_options(out, base, boundaries, progress)
    from pixseg.objectness.cache import precompute

    precompute([val.image_path(i) for i in range(len(val))], pos_cache, workers=workers, **pos_options)

    stages.begin("evaluating every model without CRF, with the CRF and with the POS-CRF")
    runs = {}
    for model in models:
        for _, loss, mode in IOU_ROWS + CHECK_ROWS:
            key = f"{run_name(model, loss)}-{mode}"
            runs[key] = evaluation(out / "results" / f"{key}.json", checkpoints[run_name(model, loss)], val,
                                   torch_device, mode, crf_settings, pos_cache, progress, pos_options,
                                   base.inference)

    stages.begin("tables, figures and report")
    tables = {"iou": iou_table(models, runs), "recall": recall_table(models, runs)}
    write_tables(out, tables)
    figures = {
        "per-class IoU": plot_per_class(out / "per_class_iou.png", models[-1], runs, val.classes),
        "effect of the loss weights (held-out part of train)": out / "weights_sweep.png",
        "examples": write_example_panels(out / "panels.png", models[-1], checkpoints, val, torch_device,
                                         crf_settings, pos_cache, pos_options, base.inference),
    }
    from pixseg.report import render_report

    report = render_report(out / "report.html", tables=tables, figures=figures, crf=crf_settings,
                           data=f"{root} ({val.name})", budget=budget, models=[MODEL_TITLES[m] for m in models],
                           training=training_notes(models, schedule, sweep, config(first, SOFTMAX)),
                           sweep=sweep_table(sweep))
    headline = runs[f"{run_name(models[-1], 'fused')}-pos"]
    write_text(out / "metrics.json", json_text({
        "method": f"{MODEL_TITLES[models[-1]]} FusedLoss + POS-CRFs",
        "miou": headline["miou"], "fg_recall": headline["fg_recall"], "pixel_acc": headline["pixel_acc"],
        "tables": tables, "runs": runs, "crf": crf_settings, "schedule": schedule,
        "fused_weights": {"ws": 1 - sweep["chosen_wp"], "wp": sweep["chosen_wp"]}}))
    print(format_table(tables["iou"], "Mean IoU (%)"))
    print(format_table(tables["recall"], "Foreground recall (%)"))
    print(f"\nreport: {report}")
    return {**tables, "runs": runs}


def training_notes(models, schedule: str, sweep: dict, config) -> list[str]:
    """What the report says about how the models were trained and which loss comparison it makes."""
    titles = [MODEL_TITLES[m] for m in models]
    steps = f"{config.iterations} iterations" if config.iterations is not None else f"{config.epochs} epochs"
    order = (f"staged: {titles[0]} from its initialisation, then "
             + ", ".join(f"{b} from the trained {a}" for a, b in zip(titles, titles[1:]))
             if schedule == "staged" and len(titles) > 1 else "every model from its own initialisation")
    chosen = sweep["chosen_wp"]
    if schedule == "staged" and len(titles) > 1:
        steps = f"{steps} for {titles[0]}, {FINETUNE_FRACTION:g} of that for each finer FCN"
    else:
        steps = f"{steps} per model"
    notes = [f"Schedule: {order}; {steps} ({config.optim.name}, lr {config.optim.lr:g}).",
             f"FusedLoss weights: Ws = {1 - chosen:g}, Wp = {chosen:g}, the best FusedLoss pair by mIoU on "
             f"{sweep['num_images']} held-out training images (never val); Wp = 0 is the SoftmaxLoss model."]
    if config.optim.name in ("adam", "adamw"):
        notes.append("Comparison at equal effective learning rate: Adam's steps do not depend on the scale of the "
                     "loss, so Ws + Wp = 1 does not shrink the step the way halving the cross-entropy would under "
                     "SGD; SoftmaxLoss and FusedLoss models differ only in the loss.")
    else:
        notes.append("Comparison at equal learning rate and Ws + Wp = 1: background pixels get the cross-entropy's "
                     "gradient; object pixels share it between their class and 'not background'.")
    return notes


def sweep_table(sweep: dict) -> dict:
    return {"columns": ["Wp (Ws = 1 - Wp)", "mIoU", "foreground recall"],
            "rows": [[f"{row['wp']:g}", 100 * row["miou"], 100 * row["fg_recall"]] for row in sweep["rows"]]}


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
    if workers <= 1 or len(jobs) == 1:
        checkpoints, began = {}, time.perf_counter()
        for done, (name, (config, out_dir)) in enumerate(jobs.items()):
            minutes_left = (time.perf_counter() - began) / max(done, 1) * (len(jobs) - done) / 60
            eta = f", about {minutes_left:.1f} min left" if done else ""
            print(f"model {done + 1}/{len(jobs)}: {name}{eta}", flush=True)
            checkpoints[name] = train(config, out_dir, resume=True, progress=progress)
        return checkpoints
    print(f"{len(jobs)} models, {min(workers, len(jobs))} at a time in separate processes", flush=True)
    finished = {}
    watch = TrainingWatch(jobs, progress)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_train_in_process, config.to_dict(), str(out_dir)): name
                   for name, (config, out_dir) in jobs.items()}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                for future in done:
                    finished[futures[future]] = Path(future.result())
                watch.update(finished)
        finally:
            watch.close()
    return {name: finished[name] for name in jobs}


def last_logged_step(log_path: Path) -> tuple[int, float | None]:
    """(step, loss) of the last training line a run has logged, (0, None) before the first."""
    step, loss = 0, None
    if log_path.is_file():
        for line in log_path.read_text().splitlines():
            entry = json.loads(line) if line.strip() else {}
            if "loss" in entry:
                step, loss = entry["step"], entry["loss"]
    return step, loss


class TrainingWatch:
    """One progress bar per model training in another process (steps, loss, ETA), read from the
    logs the runs write, and one for the whole set: its ETA is the stage's."""

    def __init__(self, jobs: dict, enabled: bool):
        self.logs = {name: out_dir / LOG_NAME for name, (_, out_dir) in jobs.items()}
        totals = {name: config.iterations for name, (config, _) in jobs.items()}
        self.bars = {}
        if enabled:
            self.total = tqdm(total=sum(t or 0 for t in totals.values()), desc="all models", unit="it",
                              position=0, dynamic_ncols=True)
            for position, name in enumerate(jobs, start=1):
                self.bars[name] = tqdm(total=totals[name], desc=name, unit="it", position=position,
                                       dynamic_ncols=True)

    def update(self, finished: dict) -> None:
        if not self.bars:
            return
        for name, bar in self.bars.items():
            step, loss = last_logged_step(self.logs[name])
            if name in finished and bar.total:
                step = bar.total
            if loss is not None:
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            bar.update(step - bar.n)
        self.total.update(sum(bar.n for bar in self.bars.values()) - self.total.n)

    def close(self) -> None:
        for bar in [*self.bars.values(), *([self.total] if self.bars else [])]:
            bar.close()


def weights_sweep(out: Path, checkpoints: dict, device, progress: bool, inference: InferenceConfig) -> dict:
    """Score each Wp's model on the held-out part of train; the best mIoU gives the chosen pair.

    Writes weights_sweep.json / .csv / .png (the curve), reused on a rerun.
    """
    from pixseg.engine.sweep import HELD_OUT, plot_sweep, write_csv

    path = out / "weights_sweep.json"
    if not path.is_file():
        rows = []
        for wp, checkpoint in sorted(checkpoints.items()):
            model, config = load_trained_model(checkpoint, device)
            held_out = training_split(config, held_out=True)
            metrics = evaluate(model, held_out, device, inference=inference, progress=progress,
                               desc=f"held-out Wp={wp:g}")
            rows.append({"wp": wp, "ws": 1.0 - wp, **{k: metrics[k] for k in ("miou", "fg_recall", "pixel_acc",
                                                                              "mean_acc")}})
        best = max(rows, key=lambda row: row["miou"])
        # Wp = 0 is the SoftmaxLoss model: FusedLoss proper needs Wp > 0, the best of those is chosen.
        fused = max((row for row in rows if row["wp"] > 0), key=lambda row: row["miou"])
        write_text(path, json_text({"rows": rows, "chosen_wp": fused["wp"], "best_wp": best["wp"],
                                     "num_images": len(held_out)}, indent=2))
    sweep = json.loads(path.read_text())
    write_csv(out / "weights_sweep.csv", sweep["rows"])
    plot_sweep(out / "weights_sweep.png", sweep["rows"], HELD_OUT)
    for row in sweep["rows"]:
        print(f"Wp {row['wp']:.2f} Ws {row['ws']:.2f}: held-out mIoU {100 * row['miou']:.2f}, "
              f"fg recall {100 * row['fg_recall']:.2f}")
    print(f"FusedLoss weights chosen on {sweep['num_images']} held-out training images: "
          f"Ws = {1 - sweep['chosen_wp']:g}, Wp = {sweep['chosen_wp']:g}")
    return sweep


def tuned_crf_settings(out: Path, checkpoint: Path, device, trials: int, progress: bool,
                       inference: InferenceConfig) -> dict:
    def tune():
        model, config = load_trained_model(checkpoint, device)
        held_out = training_split(config, held_out=True)
        return tune_crf(model, held_out, device, candidate_settings(trials, CRF_ITERATIONS), progress=progress,
                        inference=inference)

    # Tuned again when the model was retrained, the search changed or the model is applied otherwise.
    result = cached_json(out / "crf.json", {"checkpoint_sha256": file_digest(checkpoint), "trials": trials,
                                            "iterations": CRF_ITERATIONS, **inference_key(inference)}, tune)
    best = result["best"]
    print(f"CRF: appearance {best['appearance']}, smoothness {best['smoothness']}, "
          f"{best['iterations']} iterations (held-out mIoU {100 * result['best_miou']:.2f}, "
          f"no CRF {100 * result['no_crf_miou']:.2f})")
    return {"iterations": best["iterations"], "appearance": tuple(best["appearance"]),
            "smoothness": tuple(best["smoothness"])}


def objectness_options(out: Path, config, boundaries: str, progress: bool) -> dict:
    """Options for pixel_objectness; with learned boundaries the model is trained once on the masks
    of the images `config` trains on (never val, never the held-out part that tunes the CRF) and
    kept in `out`."""
    if boundaries == "gradient":
        return {}
    from pixseg.objectness.learned import train_on_dataset

    path = out / "boundary_model.npz"
    if not path.is_file():
        train_on_dataset(training_split(config), path, progress=progress)
    return {"boundary_method": "learned", "boundary_model": str(path)}


def evaluation(path: Path, checkpoint: Path, dataset, device, mode: str, crf_settings: dict,
               pos_cache: Path, progress: bool, pos_options: dict | None = None,
               inference: InferenceConfig | None = None) -> dict:
    pos_options = pos_options or {}
    inference = inference or InferenceConfig()

    def evaluate_now():
        model, _ = load_trained_model(checkpoint, device)
        refine = make_refiner(mode, crf_options=crf_settings, pos_cache=pos_cache, pos_options=pos_options)
        return evaluate(model, dataset, device, refine=refine, inference=inference, progress=progress,
                        desc=f"{path.stem}")

    # Evaluated again when the model was retrained, the CRF re-tuned or the boundary model relearned.
    boundary_model = pos_options.get("boundary_model") if mode == "pos" else None
    produced_by = {"checkpoint_sha256": file_digest(checkpoint), "mode": mode,
                   "val_images": hashlib.sha256("\n".join(dataset.ids).encode()).hexdigest(),
                   "crf": crf_settings if mode != "none" else None,
                   "boundary_model_sha256": file_digest(Path(boundary_model)) if boundary_model else None,
                   **inference_key(inference)}
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
    """The table as aligned text: each column as wide as its header or widest value, two spaces apart."""
    cells = [[row[0], *[f"{v:.2f}" for v in row[1:]]] for row in table["rows"]]
    widths = [max(len(str(cell)) for cell in column) for column in zip(table["columns"], *cells)]
    lines = [f"\n{title}"]
    for row in [table["columns"], *cells]:
        lines.append(row[0].ljust(widths[0]) + "".join(f"  {cell:>{width}}" for cell, width in zip(row[1:], widths[1:])))
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
                         pos_cache: Path, pos_options: dict, inference: InferenceConfig) -> Path:
    from pixseg.objectness.cache import cached_pixel_objectness
    from pixseg.viz import colorize, heatmap, save_panel

    baseline_model, _ = load_trained_model(checkpoints[run_name(model, BASELINE[1])], device)
    ours_model, _ = load_trained_model(checkpoints[run_name(model, OURS[1])], device)
    baseline_refine = make_refiner(BASELINE[2], crf_options=crf_settings, pos_cache=pos_cache)
    ours_refine = make_refiner(OURS[2], crf_options=crf_settings, pos_cache=pos_cache, pos_options=pos_options)
    rows = []
    for index in range(min(PANEL_IMAGES, len(dataset))):
        image, label = dataset[index]
        pos = cached_pixel_objectness(image, pos_cache, **pos_options)
        baseline = baseline_refine(image, predict_probs(baseline_model, image, device, inference).cpu().numpy())
        ours = ours_refine(image, predict_probs(ours_model, image, device, inference).cpu().numpy())
        # Scaled to each map's maximum: POS rarely nears 1, and the unscaled map reads as black.
        rows.append([image, heatmap(pos / max(float(pos.max()), 1e-6)), colorize(np.asarray(label), dataset.palette),
                     colorize(baseline, dataset.palette), colorize(ours, dataset.palette)])
    save_panel(path, rows, ["input", "POS map (scaled to its max)", "ground truth", "SoftmaxLoss + CRF",
                            "FusedLoss + POS-CRF"])
    return path
