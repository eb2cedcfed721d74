"""Does adversarial training help? One network trained with and without the adversarial term.

Both runs share the config (the network, seed, data order, augmentation and budget); the second
adds the config's `adversarial` section. Each is scored on val by mIoU, pixel accuracy and two
region-level scores (metrics.RegionMatches): the share of predicted regions that match a
ground-truth region and the share of ground-truth regions matched. The paper's argument is that the
adversarial term makes label maps look like ground truth as a whole, fewer spurious blobs and
broken objects, which pixel scores hardly see and region precision counts one by one.

Stages and files follow `pixseg zoo`: trained models resume, evaluations are kept with the
checkpoint they scored, and a changed config is refused by the training runs themselves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pixseg.engine.evaluate import predict_probs
from pixseg.engine.inference import InferenceConfig, inference_key
from pixseg.engine.experiment import Stages, format_table, study_data, table_csv, table_markdown, train_all
from pixseg.engine.train import LOG_NAME, load_trained_model, resolve_device
from pixseg.io import cached_json, file_digest, json_text, write_text
from pixseg.metrics import ConfusionMatrix, RegionMatches

RUNS = {"plain": "segmentation loss only", "adversarial": "+ adversarial term"}
COLUMNS = ["Training", "mIoU", "pixel acc", "reg. prec", "reg. rec"]
SCORES = ("miou", "pixel_acc", "region_precision", "region_recall")
PANEL_IMAGES = 4


def run_adversarial_study(out: str | Path, data: str | Path | None = None, config: str = "adversarial_quick",
                          device: str = "auto", workers: int = 2, overrides=(), progress: bool = True) -> dict:
    """Train `config` without and with its adversarial section into `out`, score both on val, and
    write the table (CSV, Markdown), metrics.json, panels.png and report.html; returns
    {"table": ..., "runs": {name: scores}}."""
    out = Path(out)
    stages = Stages(4)
    stages.begin("data")
    root, adversarial, val = study_data(out, data, config, overrides)
    adversarial = dataclasses.replace(adversarial, device=device)
    if adversarial.adversarial is None:
        raise ValueError(f"config {config!r} has no adversarial section: the study compares training with and "
                         f"without it (add adversarial={{lambda: 0.1}})")
    jobs = {"plain": (dataclasses.replace(adversarial, adversarial=None), out / "models" / "plain"),
            "adversarial": (adversarial, out / "models" / "adversarial")}

    settings = adversarial.adversarial
    stages.begin(f"training {adversarial.model['name']} twice, {adversarial.iterations} iterations each: without "
                 f"and with the adversarial term (lambda {settings['lambda']:g}, {settings['discriminator']} "
                 f"discriminator)")
    torch_device = resolve_device(device)
    checkpoints = train_all(jobs, workers if torch_device.type == "cpu" else 1, progress)

    stages.begin("scoring both on val: pixels and regions")
    runs = {name: scores(out / "results" / f"{name}.json", checkpoints[name], val, torch_device, progress,
                         adversarial.inference) for name in RUNS}

    stages.begin("table, figures and report")
    table = {"columns": COLUMNS, "rows": [[f"{name} ({RUNS[name]})", *[100 * runs[name][key] for key in SCORES]]
                                          for name in RUNS]}
    write_text(out / "adversarial_table.csv", table_csv(table))
    write_text(out / "adversarial_table.md", table_markdown(table))
    write_text(out / "metrics.json", json_text({"table": table, "runs": runs, "adversarial": settings}, indent=2))
    panels = write_panels(out / "panels.png", checkpoints, val, torch_device, adversarial.inference)
    curves = plot_discriminator(out / "discriminator.png", out / "models" / "adversarial" / LOG_NAME,
                                settings["start_after"])
    report = render_study_report(out / "report.html", table, runs, panels, curves, f"{root} ({val.name})",
                                 jobs["adversarial"][0], overrides)
    print(format_table(table, "Scores (%) on val"))
    print(f"\nreport: {report}")
    return {"table": table, "runs": runs}


def scores(path: Path, checkpoint: Path, dataset, device, progress: bool, inference: InferenceConfig) -> dict:
    """Pixel (ConfusionMatrix) and region (RegionMatches) scores of a checkpoint on `dataset`,
    predicted as `inference` says, kept in `path` with the checkpoint, images and settings they
    were computed from."""
    def compute():
        model, _ = load_trained_model(checkpoint, device)
        matrix = ConfusionMatrix(dataset.num_classes, dataset.ignore_index)
        regions = RegionMatches(dataset.num_classes, dataset.ignore_index)
        for index in tqdm(range(len(dataset)), desc=path.stem, unit="img", disable=not progress,
                          dynamic_ncols=True):
            image, label = dataset[index]
            prediction = predict_probs(model, image, device, inference).argmax(0).cpu().numpy()
            label = np.asarray(label, dtype=np.int64)
            matrix.update(prediction, label)
            regions.update(prediction, label)
        return {**matrix.compute(), **regions.compute(), "num_images": len(dataset)}

    produced_by = {"checkpoint_sha256": file_digest(checkpoint),
                   "val_images": hashlib.sha256("\n".join(dataset.ids).encode()).hexdigest(),
                   **inference_key(inference)}
    return cached_json(path, produced_by, compute)


def write_panels(path: Path, checkpoints: dict, dataset, device, inference: InferenceConfig) -> Path:
    """The first val images with their ground truth and both runs' predictions."""
    from pixseg.viz import colorize, save_panel

    models = {name: load_trained_model(checkpoints[name], device)[0] for name in RUNS}
    rows = []
    for index in range(min(PANEL_IMAGES, len(dataset))):
        image, label = dataset[index]
        rows.append([image, colorize(np.asarray(label), dataset.palette),
                     *[colorize(predict_probs(model, image, device, inference).argmax(0).cpu().numpy(), dataset.palette)
                       for model in models.values()]])
    save_panel(path, rows, ["input", "ground truth", *[f"{name} ({RUNS[name]})" for name in RUNS]])
    return path


def plot_discriminator(path: Path, log_path: Path, start_after: int) -> Path:
    """The discriminator's accuracy on ground-truth and predicted maps, and its loss, over training."""
    from matplotlib.figure import Figure  # a figure of its own: pyplot's global backend is left alone

    from pixseg.io import atomic_path

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    lines = [line for line in lines if "d_loss" in line]
    steps = [line["step"] for line in lines]
    figure = Figure(figsize=(9, 3.2))
    accuracy, loss = figure.subplots(1, 2)
    accuracy.plot(steps, [100 * line["d_acc_real"] for line in lines], label="on ground-truth maps")
    accuracy.plot(steps, [100 * line["d_acc_fake"] for line in lines], label="on predicted maps")
    accuracy.set_ylabel("discriminator accuracy (%)")
    loss.plot(steps, [line["d_loss"] for line in lines], label="discriminator")
    loss.plot([s for s, line in zip(steps, lines) if "adv_loss" in line],
              [line["adv_loss"] for line in lines if "adv_loss" in line], label="adversarial term (segmenter)")
    loss.axhline(2 * np.log(2), color="grey", linestyle=":", label="discriminator at chance (2 ln 2)")
    loss.set_ylabel("loss")
    for axis in (accuracy, loss):
        axis.axvline(start_after, color="grey", linestyle="--")
        axis.set_xlabel("step (dashed: the term starts)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return path


def render_study_report(path: Path, table: dict, runs: dict, panels: Path, curves: Path, data: str, config,
                        overrides=()) -> Path:
    import html

    from pixseg.report import image_html, table_html, write_page

    settings = config.adversarial
    counts = "".join(f"<li><b>{name}</b>: {runs[name]['regions_predicted']} predicted regions, "
                     f"{runs[name]['regions_matched']} matched, of {runs[name]['regions_truth']} in the ground "
                     f"truth</li>" for name in RUNS)
    sections = [
        "<h1>pixseg adversarial study: does the adversarial term help?</h1>",
        f"<p class='meta'>Data: {html.escape(data)} &middot; network: {html.escape(json.dumps(config.model))} "
        f"&middot; {config.iterations} iterations, seed {config.seed}, the same for both runs"
        + (f" &middot; overrides: {html.escape(' '.join(overrides))}" if overrides else "") + "</p>",
        f"<p class='meta'>Adversarial term: lambda {settings['lambda']:g}, {settings['discriminator']} "
        f"discriminator ({settings['channels']} channels, maps pooled {settings['downsample']}x), from step "
        f"{settings['start_after'] + 1}; discriminator {settings['optim']['name']} at lr "
        f"{settings['optim']['lr']:g}.</p>",
        "<h2>Scores (%) on val</h2>",
        "<p class='meta'>reg. prec (region precision): predicted regions (8-connected, one class) whose IoU "
        "with a ground-truth region of that class exceeds 0.5, over all predicted regions; reg. rec (region "
        "recall): the same matches over all ground-truth regions. Spurious blobs and broken objects lower "
        "region precision.</p>",
        table_html(table), f"<ul>{counts}</ul>",
        "<h2>The discriminator during training</h2>", image_html(curves, "discriminator accuracy and losses"),
        "<h2>Examples</h2>", image_html(panels, "predictions without and with the adversarial term"),
    ]
    return write_page(path, "pixseg adversarial study", sections)
