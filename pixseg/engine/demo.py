"""The demo: synthetic VOC data, a narrow FCN-8s trained on the CPU, its scores and example panels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from pixseg.data import VOCSegmentation
from pixseg.data.synthetic import make_synthetic_voc
from pixseg.engine.config import load_config
from pixseg.engine.evaluate import evaluate, predict_probs
from pixseg.engine.train import load_trained_model, resolve_device, train
from pixseg.io import write_text
from pixseg.viz import colorize, save_panel

DEMO_DATA = {"n_train": 400, "n_val": 100, "size": (128, 128), "seed": 0}
PANEL_IMAGES = 4


def ensure_synthetic_data(root: Path, n_train: int, n_val: int, size, seed: int) -> Path:
    """Make the synthetic dataset under `root` unless a complete one is already there."""
    splits = root / "ImageSets" / "Segmentation"
    if (splits / "train.txt").is_file() and (splits / "val.txt").is_file():
        return root
    print(f"making synthetic VOC data in {root} ({n_train} train + {n_val} val, {size[0]}x{size[1]})")
    return make_synthetic_voc(root, n_train=n_train, n_val=n_val, size=size, seed=seed)


def write_panels(path: Path, model, dataset, device, count: int = PANEL_IMAGES) -> None:
    rows = []
    for index in range(min(count, len(dataset))):
        image, label = dataset[index]
        prediction = predict_probs(model, image, device).argmax(0).cpu().numpy()
        rows.append([image, colorize(np.asarray(label)), colorize(prediction)])
    save_panel(path, rows, ["image", "ground truth", "prediction"])


def run_demo(out: str | Path, data: str | Path | None = None, overrides=(), device: str = "auto") -> dict:
    """Run the demo into `out` (resumable: finished stages are reused) and return its metrics."""
    out = Path(out)
    root = ensure_synthetic_data(Path(data) if data else out / "data", **DEMO_DATA)
    config = load_config("demo", [f"data.root={root}", f"device={device}", *overrides])
    checkpoint = train(config, out / "model", resume=True)
    torch_device = resolve_device(device)
    model, _ = load_trained_model(checkpoint, torch_device)
    val = VOCSegmentation(root, "val")
    metrics = evaluate(model, val, torch_device, desc="eval val")
    write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    write_panels(out / "panels.png", model, val, torch_device)
    return metrics
