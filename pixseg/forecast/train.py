"""Training a forecaster: random crops of forecasting windows, L1 + GDL on every rolled-out step,
atomic resumable checkpoints, a progress bar and a metrics log."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from pixseg.data.base import VOID
from pixseg.data.cityscapes import CITYSCAPES_CLASSES
from pixseg.data.sequences import GAP, INPUTS, LABEL_FOLDER, LABEL_SUFFIX, SequenceWindows
from pixseg.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint
from pixseg.engine.train import (CHECKPOINT_NAME, LOG_EVERY, LOG_NAME, ResumableBatches, TrainingInterrupted,
                                 checkpoint_kept, poly_schedule, resolve_device, restore_training)
from pixseg.forecast.losses import forecast_loss
from pixseg.forecast.model import MODELS, create_forecaster, rollout
from pixseg.io import remove_stale_temporaries


# Settings a resumed run may change: they do not change what it computes.
NEUTRAL = ("data", "device", "checkpoint_every")


@dataclass
class ForecastConfig:
    data: str
    split: str = "train"
    model: str = "s2s"
    width: float = 1.0
    residual: bool = True  # add the newest input to the output (see S2S); False is the published network
    num_classes: int = len(CITYSCAPES_CLASSES)
    inputs: int = INPUTS
    gap: int = GAP
    # Steps rolled out per training sample: 1 trains the short-term model; the paper's mid-term model
    # is trained on 3 steps, each prediction fed back as an input.
    rollout_steps: int = 1
    crop: int = 64
    batch_size: int = 4
    iterations: int = 2000
    optimizer: str = "adam"
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    labels: str = LABEL_FOLDER
    label_suffix: str = LABEL_SUFFIX
    checkpoint_every: int = 100
    # A forecast checkpoint to start from (the paper fine-tunes its short-term model with rollout).
    init: str | None = None

    def check(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model {self.model!r} is not one of {', '.join(MODELS)}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer {self.optimizer!r} is not one of sgd, adam")
        if self.rollout_steps > 1 and not (MODELS[self.model][0] <= MODELS[self.model][1]):
            raise ValueError(f"model {self.model} sees frames it does not predict, so it cannot be trained "
                             f"with rollout_steps {self.rollout_steps}; use s2s or xs2xs")
        for name in ("inputs", "gap", "rollout_steps", "batch_size", "iterations", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.crop < 8 or self.crop % 2:
            raise ValueError(f"crop must be an even number of pixels, at least 8, got {self.crop}")
        if not (self.lr > 0 and self.width > 0):
            raise ValueError(f"lr and width must be positive, got lr {self.lr}, width {self.width}")


def window_tensor(labels: np.ndarray, num_classes: int, images: np.ndarray | None = None) -> torch.Tensor:
    """T×H×W label maps (and T×H×W×3 images) as a T×K×H×W float window: one-hot class channels
    (all zero at void pixels), then the images scaled to [-1, 1]."""
    labels = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
    valid = labels != VOID
    onehot = F.one_hot(labels * valid, num_classes).permute(0, 3, 1, 2).float() * valid[:, None]
    if images is None:
        return onehot
    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    return torch.cat([onehot, pixels], 1)


class TrainingCrops:
    """A random crop (and horizontal flip) of a window, drawn from a seed the sampler chooses."""

    def __init__(self, windows: SequenceWindows, config: ForecastConfig):
        self.windows, self.config = windows, config
        self.frames_in, self.frames_out = MODELS[config.model]

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, index_and_seed):
        index, seed = index_and_seed
        item = self.windows[index]
        rng = np.random.default_rng(seed)
        h, w = item["inputs"].shape[1:]
        size = self.config.crop
        if h < size or w < size:
            raise ValueError(f"window {item['name']}: frames of {h}x{w} are smaller than crop {size}")
        top, left = rng.integers(h - size + 1), rng.integers(w - size + 1)
        step = -1 if rng.random() < 0.5 else 1

        def cut(array):
            return array[:, top:top + size, left:left + size][:, :, ::step]

        c = self.config.num_classes
        images = item.get("input_images")
        x = window_tensor(cut(item["inputs"]), c, cut(images) if self.frames_in else None)
        y = window_tensor(cut(item["targets"]), c, cut(item["target_images"]) if self.frames_out else None)
        mask = torch.from_numpy(np.ascontiguousarray(cut(item["targets"]) != VOID))[:, None].float()
        return x, y, mask


def _optimizer(config: ForecastConfig, model):
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    return torch.optim.Adam(model.parameters(), lr=config.lr)


def train_forecaster(config: ForecastConfig, out_dir, *, resume: bool = False, overwrite: bool = False,
                     progress: bool = True) -> Path:
    """Train as `config` says, writing checkpoint.pt and metrics.jsonl under out_dir; with resume=True
    a checkpoint there is continued with the same data order and optimiser state, with overwrite=True
    a run there is started again; otherwise a folder holding a run is refused. Ctrl-C saves the last
    finished step. Returns the checkpoint's path."""
    config.check()
    out_dir = Path(out_dir)
    checkpoint_path, log_path = out_dir / CHECKPOINT_NAME, out_dir / LOG_NAME
    if resume and overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it: give one")
    previous = [path.name for path in (checkpoint_path, log_path) if path.exists()]
    if previous and not (resume or overwrite):
        raise ValueError(f"{out_dir} already holds a forecast run ({', '.join(previous)}); "
                         f"pass --resume to continue it or --overwrite to start it again")
    device = resolve_device(config.device)
    frames_in, frames_out = MODELS[config.model]
    windows = SequenceWindows(config.data, config.split, config.num_classes, config.inputs, config.gap,
                              [config.gap * k for k in range(1, config.rollout_steps + 1)],
                              frames=frames_in, labels=config.labels, label_suffix=config.label_suffix)
    if len(windows) < config.batch_size:
        raise ValueError(f"{config.data}: split {config.split!r} has {len(windows)} windows, "
                         f"fewer than batch_size {config.batch_size}")
    torch.manual_seed(config.seed)
    model = create_forecaster(config.model, config.num_classes, config.inputs, config.width, config.residual).to(device)
    optimizer = _optimizer(config, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly_schedule(config.iterations, 0.9))
    start = 0
    # Only this run writes here: what a killed writer left is garbage.
    remove_stale_temporaries(checkpoint_path)
    if resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        differences = [f"{k}: {state['config'].get(k)!r} in the checkpoint, {v!r} now"
                       for k, v in asdict(config).items() if state["config"].get(k) != v and k not in NEUTRAL]
        if differences:
            raise ValueError(f"cannot resume {checkpoint_path}: the settings differ: " + "; ".join(differences))
        start = restore_training(state, model, optimizer, scheduler, log_path)
    else:
        if config.init is not None:
            _start_from(model, config, device)
        out_dir.mkdir(parents=True, exist_ok=True)
        checkpoint_path.unlink(missing_ok=True)
        log_path.unlink(missing_ok=True)
    if start >= config.iterations:
        return checkpoint_path

    loader = DataLoader(TrainingCrops(windows, config),
                        batch_sampler=ResumableBatches(len(windows), config.batch_size, config.seed, start,
                                                       config.iterations))
    model.train()
    bar = tqdm(loader, total=config.iterations, initial=start, desc="forecast train", unit="it",
               disable=not progress, dynamic_ncols=True)
    started = time.perf_counter()

    def save(step):
        save_checkpoint(checkpoint_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": rng_state(device),
            "step": step, "config": asdict(config)})

    # `done`: the last step whose update finished; `updating`: inside an update, where the weights
    # are half old, half new and must not be saved.
    saved, done, updating = start, start, False
    with log_path.open("a") as log:
        try:
            for step, (x, y, mask) in enumerate(bar, start=start + 1):
                x, y, mask = x.to(device), y.to(device), mask.to(device)
                outputs = rollout(model, x, config.rollout_steps, all_scales=True)
                loss = sum(forecast_loss(out, y[:, k], mask[:, k]) for k, out in enumerate(outputs))
                if not math.isfinite(loss.item()):
                    raise ValueError(f"training diverged: the loss became {loss.item()} at step {step}; "
                                     f"{checkpoint_kept(checkpoint_path, saved or None)}; lower --lr (now {config.lr})")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                updating = True
                optimizer.step()
                scheduler.step()
                done, updating = step, False
                bar.set_postfix(loss=f"{loss.item():.4f}")
                if step % LOG_EVERY == 0 or step == config.iterations:
                    log.write(json.dumps({"step": step, "loss": loss.item(), "lr": optimizer.param_groups[0]["lr"],
                                          "seconds": round(time.perf_counter() - started, 2)}) + "\n")
                if step % config.checkpoint_every == 0 or step == config.iterations:
                    log.flush()
                    save(step)
                    saved = step
        except KeyboardInterrupt:
            bar.close()
            if not updating and done != saved:
                log.flush()
                save(done)
                saved = done
            raise TrainingInterrupted(f"forecast training stopped at step {done} of {config.iterations}; "
                                      f"{checkpoint_kept(checkpoint_path, saved or None)}; continue with --resume") from None
    return checkpoint_path


def _start_from(model, config: ForecastConfig, device) -> None:
    state = load_checkpoint(config.init, map_location=device)
    saved = _saved_config(state, config.init)
    differences = [f"{k} {getattr(saved, k)!r} there, {getattr(config, k)!r} here"
                   for k in ("model", "width", "num_classes", "inputs", "residual") if getattr(saved, k) != getattr(config, k)]
    if differences:
        raise ValueError(f"cannot start from {config.init}: the networks differ: " + "; ".join(differences))
    model.load_state_dict(state["model"])


def _saved_config(state: dict, path) -> ForecastConfig:
    known = {f.name for f in fields(ForecastConfig)}
    if not set(state["config"]) <= known or "model" not in state["config"]:
        raise ValueError(f"checkpoint {path} was not written by `pixseg forecast train`")
    return ForecastConfig(**state["config"])


def load_forecaster(checkpoint, device="cpu"):
    """The model a checkpoint was trained as, with its weights, in eval mode; returns (model, config)."""
    state = load_checkpoint(checkpoint, map_location=device)
    config = _saved_config(state, checkpoint)
    model = create_forecaster(config.model, config.num_classes, config.inputs, config.width, config.residual).to(device)
    model.load_state_dict(state["model"])
    model.eval()
    return model, config
