"""The paper's "effect of weights" study: one model per Wp (Ws = 1 - Wp), same seed and budget."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

from pixseg.engine.config import TrainConfig
from pixseg.engine.datasets import open_split
from pixseg.engine.evaluate import evaluate
from pixseg.engine.inference import inference_key
from pixseg.engine.train import load_trained_model, resolve_device, train, training_split
from pixseg.io import atomic_path, cached_json, check_output_folder, file_digest, write_text

COLUMNS = ("wp", "ws", "miou", "fg_recall", "pixel_acc", "mean_acc")
# Weights are chosen like the CRF parameters: on the part of train each model never trained on.
HELD_OUT = "held-out part of train"


def parse_values(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--values {text!r}: expected comma-separated numbers in [0, 1]") from None
    bad = [v for v in values if not 0 <= v <= 1]
    if not values or bad:
        raise ValueError(f"--values {text!r}: every Wp must lie in [0, 1]; got {bad or 'nothing'}")
    return values


def sweep_weights(config: TrainConfig, values: list[float], out: str | Path, progress: bool = True,
                  score_on: str = "held-out") -> list[dict]:
    """Train and evaluate one fused-loss model per Wp in `values`; write sweep.csv and sweep.png.

    `score_on`: "held-out" (the fraction data.holdout of train that no point trains on) or "val".
    Each point is scored as `config.inference` says (whole images, sliding windows, scales). Each
    point lives in its own folder and is reused when its metrics exist, so an interrupted sweep
    continues where it stopped.
    """
    if score_on not in ("held-out", "val"):
        raise ValueError(f"--score-on {score_on!r}: expected held-out or val")
    if score_on == "held-out" and config.data.holdout <= 0:
        raise ValueError("data.holdout = 0 leaves no held-out training images to score the weights on; "
                         "set data.holdout (e.g. data.holdout=0.1) or give --score-on val")
    out = check_output_folder(out)
    device = resolve_device(config.device)
    scored_on = HELD_OUT if score_on == "held-out" else f"{config.data.val_split} (chosen by the user)"
    rows = []
    for wp in values:
        point = out / f"wp_{wp:.3f}"
        point_config = dataclasses.replace(config, loss={"name": "fused", "ws": 1.0 - wp, "wp": wp})
        # A finished point returns at once; a changed config is refused by name.
        checkpoint = train(point_config, point, resume=True, progress=progress)

        def evaluate_point():
            model, trained = load_trained_model(checkpoint, device)
            images = (training_split(trained, held_out=True) if score_on == "held-out"
                      else open_split(trained.data, trained.data.val_split))
            return evaluate(model, images, device, progress=progress, desc=f"{score_on} Wp={wp:g}",
                            inference=config.inference, amp=config.amp)

        split = "held-out" if score_on == "held-out" else config.data.val_split
        metrics = cached_json(point / "metrics.json", {"checkpoint_sha256": file_digest(checkpoint), "split": split,
                                                       **inference_key(config.inference)}, evaluate_point)
        rows.append({"wp": wp, "ws": 1.0 - wp, **{k: metrics[k] for k in COLUMNS[2:]}})
    write_csv(out / "sweep.csv", rows)
    plot_sweep(out / "sweep.png", rows, scored_on)
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: f"{row[k]:.6f}" for k in COLUMNS})
    write_text(path, buffer.getvalue())


def plot_sweep(path: Path, rows: list[dict], scored_on: str) -> None:
    from matplotlib.figure import Figure  # a figure of its own: pyplot's global backend is left alone

    wp = [r["wp"] for r in rows]
    figure = Figure(figsize=(5, 3.4))
    axis = figure.subplots()
    axis.plot(wp, [100 * r["miou"] for r in rows], "o-", label="mean IoU")
    axis.plot(wp, [100 * r["fg_recall"] for r in rows], "s--", label="foreground recall")
    axis.set_xlabel("Wp (Ws = 1 - Wp)")
    axis.set_ylabel(f"% on {scored_on}")
    axis.set_title("Effect of the fused loss weights")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
