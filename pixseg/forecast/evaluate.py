"""Scoring forecasts: the model rolled out, copy-last and flow warping, mIoU per method and horizon,
written as results.json, a curve, panels and report.html."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from pixseg.data.cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
from pixseg.data.sequences import SequenceWindows
from pixseg.engine.train import resolve_device
from pixseg.forecast.baselines import copy_last, estimate_motion, flow_forecast
from pixseg.forecast.model import MODELS, rollout
from pixseg.forecast.train import load_forecaster, window_tensor
from pixseg.io import atomic_path, file_digest, json_text, write_text
from pixseg.metrics import ConfusionMatrix
from pixseg.report import image_html, table_html, write_page
from pixseg.viz import colorize, overlay, save_panel

METHODS = ("model", "copy-last", "flow")
RESULTS_NAME = "results.json"
PANEL_ROWS = 4
FORECAST_BORDER = (220, 40, 40)


def parse_horizons(text: str) -> tuple[int, ...]:
    try:
        horizons = tuple(int(part) for part in text.split(","))
    except ValueError:
        horizons = ()
    if not horizons or min(horizons) < 1 or len(set(horizons)) != len(horizons):
        raise ValueError(f"--horizons {text!r}: expected distinct positive frame counts separated by commas, "
                         "e.g. 3,9")
    return tuple(sorted(horizons))


def evaluate_forecasts(checkpoint, data, out_dir, *, split: str = "val", horizons=(3, 9), stride: int = 5,
                       device: str = "auto", progress: bool = True) -> dict:
    """mIoU of the model's rolled-out forecast, copy-last and flow warping at each horizon, over the
    windows of `split` (one every `stride` frames); writes results.json, curve.png, panels.png,
    rollout.gif and report.html under out_dir and returns {"miou": {method: {horizon: value}}, ...}.
    A folder holding results of another checkpoint, dataset or setting is refused."""
    out_dir = Path(out_dir)
    device = resolve_device(device)
    model, config = load_forecaster(checkpoint, device)  # first: a missing or foreign file is named as a checkpoint
    key = {"checkpoint_sha256": file_digest(checkpoint), "data": str(Path(data).resolve()), "split": split,
           "horizons": list(horizons), "stride": stride}
    _check_same_evaluation(out_dir / RESULTS_NAME, key)
    bad = [h for h in horizons if h % config.gap]
    if bad:
        raise ValueError(f"horizons {bad} are not multiples of {config.gap}, the frame gap {checkpoint} "
                         "was trained with (the model forecasts that many frames per step)")
    windows = SequenceWindows(data, split, config.num_classes, config.inputs, config.gap, horizons,
                              stride=stride, frames=True, labels=config.labels, label_suffix=config.label_suffix)
    frames_in = MODELS[config.model][0]
    scores = {m: {h: ConfusionMatrix(config.num_classes) for h in horizons} for m in METHODS}
    panel_every = max(1, len(windows) // PANEL_ROWS)
    palette = CITYSCAPES_PALETTE if config.num_classes == len(CITYSCAPES_CLASSES) else None
    panels = []
    with torch.no_grad():
        for index in tqdm(range(len(windows)), desc="forecast eval", unit="window", disable=not progress):
            item = windows[index]
            x = window_tensor(item["inputs"], config.num_classes, item["input_images"] if frames_in else None)
            predictions = rollout(model, x[None].to(device), max(horizons) // config.gap)
            images, last = item["input_images"], item["inputs"][-1]
            motion = estimate_motion(images[-2], images[-1])
            forecasts = {}
            for k, h in enumerate(horizons):
                forecasts[h] = {
                    "model": predictions[h // config.gap - 1][0, :config.num_classes].argmax(0).cpu().numpy(),
                    "copy-last": copy_last(item["inputs"]),
                    "flow": flow_forecast(last, motion, h / config.gap),
                }
                for method, forecast in forecasts[h].items():
                    scores[method][h].update(forecast, item["targets"][k])
            if index == 0:
                animation = [*item["inputs"], *(p[0, :config.num_classes].argmax(0).cpu().numpy() for p in predictions)]
            if index % panel_every == 0 and len(panels) < PANEL_ROWS:
                h = max(horizons)
                panels.append([overlay(images[-1], last, palette=palette),
                               *(colorize(forecasts[h][m], palette) for m in METHODS),
                               colorize(item["targets"][-1], palette)])
    miou = {m: {h: scores[m][h].compute()["miou"] for h in horizons} for m in METHODS}
    results = {"checkpoint": str(checkpoint), **key, "windows": len(windows), "model": config.model, "miou": miou}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / RESULTS_NAME, json_text(results) + "\n")
    h = max(horizons)
    save_panel(out_dir / "panels.png", panels,
               ["past (last input)", f"{config.model} t+{h}", f"copy-last t+{h}", f"flow t+{h}", f"target t+{h}"])
    _save_curve(out_dir / "curve.png", miou, horizons, config.model)
    _save_rollout_gif(out_dir / "rollout.gif", animation, config.inputs, palette)
    _write_report(out_dir, results)
    return results


def _check_same_evaluation(path: Path, key: dict) -> None:
    """An evaluation is deterministic, so writing the same one again changes nothing; results of
    another checkpoint, dataset or setting would be lost, so they are refused."""
    if not path.exists():
        return
    try:
        saved = json.loads(path.read_text())
        differences = [f"{name} {saved.get(name)!r} there, {value!r} now" for name, value in key.items()
                       if saved.get(name) != value]
    except (json.JSONDecodeError, AttributeError):
        differences = ["it is not a forecast evaluation's results"]
    if differences:
        raise ValueError(f"{path} holds another evaluation ({'; '.join(differences)}); choose another --out")


def _label(method: str, model_name: str) -> str:
    return model_name.upper() if method == "model" else method


def _save_curve(path: Path, miou: dict, horizons, model_name: str) -> None:
    from matplotlib.figure import Figure  # a figure of its own: pyplot's global backend is left alone

    figure = Figure(figsize=(5, 3.4))
    axis = figure.subplots()
    for method, values in miou.items():
        axis.plot(horizons, [100 * values[h] for h in horizons], marker="o", label=_label(method, model_name))
    axis.set_xlabel("frames ahead")
    axis.set_ylabel("mIoU (%)")
    axis.set_xticks(list(horizons))
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)


def _save_rollout_gif(path: Path, maps: list, inputs: int, palette) -> None:
    """The first window as an animation: its past segmentations, then each rolled-out forecast in a
    red frame, so a viewer tells the two apart."""
    frames = []
    for k, labels in enumerate(maps):
        picture = np.pad(colorize(labels, palette), ((3, 3), (3, 3), (0, 0)))
        if k >= inputs:
            for edge in (np.s_[:3], np.s_[-3:], np.s_[:, :3], np.s_[:, -3:]):
                picture[edge] = FORECAST_BORDER
        frames.append(Image.fromarray(picture).resize((2 * picture.shape[1], 2 * picture.shape[0]), Image.NEAREST))
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=500, loop=0)


def _write_report(out_dir: Path, results: dict) -> None:
    horizons = results["horizons"]
    table = {"columns": ["method", *(f"t+{h}" for h in horizons)],
             "rows": [[_label(m, results["model"]), *(100 * v[h] for h in horizons)]
                      for m, v in results["miou"].items()]}
    sections = [
        "<h1>pixseg: forecasting future segmentations</h1>",
        f"<p class='meta'>Checkpoint {html.escape(results['checkpoint'])} &middot; data "
        f"{html.escape(results['data'])} ({html.escape(results['split'])}, {results['windows']} windows)</p>",
        "<h2>Mean IoU (%) of the forecast against the target labels</h2>", table_html(table),
        "<h2>mIoU against horizon</h2>", image_html(out_dir / "curve.png", "mIoU against horizon"),
        f"<h2>Past | forecasts | target at t+{max(horizons)}</h2>",
        image_html(out_dir / "panels.png", "forecast panels"),
        "<h2>The first window rolled out: past segmentations, then forecasts (red frame)</h2>",
        image_html(out_dir / "rollout.gif", "rolled-out forecast"),
    ]
    write_page(out_dir / "report.html", "pixseg forecast report", sections)
