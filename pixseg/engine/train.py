"""The training loop: SGD (or Adam) with poly decay, periodic validation, atomic resumable checkpoints."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pixseg.data.transforms import TrainTransform
from pixseg.engine.checkpoint import load_checkpoint, save_checkpoint
from pixseg.engine.config import TrainConfig, config_from_dict
from pixseg.engine.datasets import open_split, resolved
from pixseg.engine.evaluate import evaluate
from pixseg.engine.holdout import split_holdout
from pixseg.io import check_output_folder
from pixseg.losses import create_loss, weight_method
from pixseg.models import CRFRNN, create_model

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "metrics.jsonl"
LOG_EVERY = 10


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but this torch build sees no CUDA device")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r} is not a device torch knows (try auto, cpu or cuda)") from None


def build_model(config: TrainConfig) -> torch.nn.Module:
    m = config.model
    return create_model(m.name, config.data.num_classes, width=m.width, upsample=m.upsample,
                        pretrained=m.pretrained, dropout=m.dropout, padding=m.padding,
                        batch_norm=m.batch_norm, crf_rnn=m.crf_rnn)


def load_initial_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load a finished run's weights (model.init): into the whole model, or into its base network
    when the model adds a CRF-RNN layer the checkpoint has none of."""
    state = load_checkpoint(path)["model"]
    has_crf = any(key.startswith("crf.") for key in state)
    target = model.base if isinstance(model, CRFRNN) and not has_crf else model
    try:
        target.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise ValueError(f"model.init = {str(path)!r}: its weights do not fit this model ({first}); expected a "
                         f"checkpoint of the same network") from None


def build_loss(config: TrainConfig, train_set, progress: bool = True) -> torch.nn.Module:
    """The configured loss; class weights named by method are computed from the training images."""
    class_weights = None
    method = weight_method(config.loss)
    if method is not None:
        from pixseg.class_weights import METHODS, class_frequencies

        if method not in METHODS:
            raise ValueError(f"loss.weight = {method!r}; expected a list or one of {', '.join(METHODS)}")
        freq = class_frequencies(train_set, train_set.num_classes, progress=progress)
        class_weights = torch.as_tensor(METHODS[method](freq), dtype=torch.float32)
    return create_loss(config.loss, train_set.num_classes, class_weights=class_weights)


class SeededSamples(Dataset):
    """Applies a random transform with a seed chosen by the sampler, so a resumed run sees the
    same augmented samples as an uninterrupted one, whatever the number of loader workers."""

    def __init__(self, dataset, transform):
        self.dataset = dataset
        self.transform = transform

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index_and_seed):
        index, seed = index_and_seed
        image, label = self.dataset[index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image, label)


class ResumableBatches:
    """Batches of (index, seed) for steps start..total: each epoch is a permutation fixed by
    (seed, epoch), so any step's batch can be regenerated without replaying earlier ones."""

    def __init__(self, num_samples: int, batch_size: int, seed: int, start: int, total: int):
        self.num_samples, self.batch_size = num_samples, batch_size
        self.seed, self.start, self.total = seed, start, total
        self.per_epoch = num_samples // batch_size

    def __len__(self):
        return self.total - self.start

    def __iter__(self):
        epoch, order = -1, None
        for step in range(self.start, self.total):
            if step // self.per_epoch != epoch:
                epoch = step // self.per_epoch
                generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                order = torch.randperm(self.num_samples, generator=generator).tolist()
            first = (step % self.per_epoch) * self.batch_size
            yield [(index, self.seed * 1_000_003 + step * self.batch_size + offset)
                   for offset, index in enumerate(order[first:first + self.batch_size])]


def training_split(config: TrainConfig, held_out: bool = False):
    """The images a config trains on, or with held_out=True the ones it withholds for tuning."""
    full = open_split(config.data, config.data.train_split)
    fit, held = split_holdout(full, config.data.holdout)
    return held if held_out else fit


def total_iterations(config: TrainConfig, num_samples: int) -> int:
    if config.iterations is not None:
        return config.iterations
    return config.epochs * (num_samples // config.batch_size)


def poly_schedule(total: int, power: float):
    return lambda step: (1 - min(step, total) / total) ** power


def build_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    o = config.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)


def _config_differences(saved: dict, current: dict, prefix="") -> list[str]:
    keys = sorted(set(saved) | set(current))
    differences = []
    for key in keys:
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key != "loss":
            differences += _config_differences(a, b, f"{prefix}{key}.")
        elif a != b and not (isinstance(a, (list, tuple)) and list(a) == list(b or [])):
            differences.append(f"{prefix}{key}: {a!r} in the checkpoint, {b!r} now")
    return differences


def _truncate_log(log_path: Path, step: int) -> None:
    """Drop log lines written after `step` by a run that died before its next checkpoint."""
    if not log_path.exists():
        return
    kept = [line for line in log_path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    log_path.write_text("".join(line + "\n" for line in kept))


def restore_training(state: dict, model, optimizer, scheduler, log_path: Path) -> int:
    """Continue from a checkpoint: weights, optimiser, schedule and RNG as saved, and the log cut
    back to the saved step, which is returned."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    _truncate_log(log_path, state["step"])
    return state["step"]


def train(config: TrainConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
          progress: bool = True) -> Path:
    """Train a model as `config` says, writing checkpoint.pt and metrics.jsonl under out_dir.

    With resume=True an existing checkpoint in out_dir is continued from its step, with the
    same data order, augmentation and optimiser state; the config must match the saved one.
    A folder holding a run is refused unless resume or overwrite (start again) is given.
    Returns the checkpoint path.
    """
    out_dir = Path(out_dir)
    checkpoint_path, log_path = out_dir / CHECKPOINT_NAME, out_dir / LOG_NAME
    if resume and overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it: give one")
    check_output_folder(out_dir)
    previous = [path.name for path in (checkpoint_path, log_path) if path.exists()]
    if previous and not (resume or overwrite):
        raise ValueError(f"{out_dir} already holds a training run ({', '.join(previous)}); "
                         f"pass --resume to continue it or --overwrite to start it again")
    if config.data.root is None:
        raise ValueError("no dataset given: set data.root in the config or pass --data DIR")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)

    train_set = training_split(config)
    # The checkpoint records which dataset and how many classes the model was trained for.
    config = dataclasses.replace(config, data=resolved(config.data, train_set))
    data = config.data
    if len(train_set) < config.batch_size:
        raise ValueError(f"{data.root}: split {data.train_split!r} has {len(train_set)} images, "
                         f"fewer than batch_size {config.batch_size}")
    val_set = open_split(data, data.val_split) if data.val_split else None
    total = total_iterations(config, len(train_set))

    model = build_model(config).to(device)
    criterion = build_loss(config, train_set, progress).to(device)
    optimizer = build_optimizer(config, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly_schedule(total, config.optim.poly_power))

    start = 0
    if config.model.init is not None and not (resume and checkpoint_path.exists()):
        load_initial_weights(model, config.model.init)
    if resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, map_location=device)
        differences = _config_differences(state["config"], config.to_dict())
        if differences:
            raise ValueError(f"cannot resume {checkpoint_path}: the config differs: " + "; ".join(differences))
        start = restore_training(state, model, optimizer, scheduler, log_path)
    elif overwrite:
        checkpoint_path.unlink(missing_ok=True)
        log_path.unlink(missing_ok=True)

    def save(step):
        save_checkpoint(checkpoint_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(),
            "step": step, "total": total, "config": config.to_dict(), "dataset": train_set.metadata(),
        })

    if start >= total:
        return checkpoint_path

    transform = TrainTransform(data.crop_size, scale_range=data.scale_range, flip=data.flip)
    loader = DataLoader(
        SeededSamples(train_set, transform),
        batch_sampler=ResumableBatches(len(train_set), config.batch_size, config.seed, start, total),
        num_workers=data.num_workers, pin_memory=device.type == "cuda",
        # Its own generator: the loader draws a seed per iterator, which must not shift the global
        # RNG that dropout uses, or a resumed run would diverge from an uninterrupted one.
        generator=torch.Generator().manual_seed(config.seed),
    )
    model.train()
    bar = tqdm(loader, total=total, initial=start, desc="train", unit="it", disable=not progress,
               dynamic_ncols=True)
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as log:
        for step, (images, labels) in enumerate(bar, start=start + 1):
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            loss = criterion(model(images), labels)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(
                    f"loss became {loss.item()} at step {step}; lower optim.lr (now {config.optim.lr})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            lr = optimizer.param_groups[0]["lr"]
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}")
            if step % LOG_EVERY == 0 or step == total:
                log.write(json.dumps({"step": step, "loss": loss.item(), "lr": lr,
                                      "seconds": round(time.perf_counter() - started, 2)}) + "\n")
            if val_set is not None and (step % config.val_every == 0 or step == total):
                metrics = evaluate(model, val_set, device, progress=False)
                model.train()
                log.write(json.dumps({"step": step, "split": data.val_split,
                                      **{k: v for k, v in metrics.items() if k != "iou"}}) + "\n")
                bar.write(f"step {step}: {data.val_split} mIoU {metrics['miou']:.4f} "
                          f"pixel acc {metrics['pixel_acc']:.4f} fg recall {metrics['fg_recall']:.4f}")
            if step % config.checkpoint_every == 0 or step == total:
                log.flush()
                save(step)
    return checkpoint_path


def load_trained_model(checkpoint: str | Path, device: torch.device | str = "cpu"):
    """Rebuild the model a checkpoint was trained as and load its weights; returns (model, config)."""
    state = load_checkpoint(checkpoint, map_location=device)
    config = config_from_dict(state["config"], str(checkpoint))
    # Pretrained backbone and initial weights are already inside the checkpoint.
    config.model.pretrained = config.model.init = None
    model = build_model(config).to(device)
    model.load_state_dict(state["model"])
    model.eval()
    return model, config


def trained_metadata(checkpoint: str | Path) -> dict:
    """The metadata (classes, palette, ...) of the dataset a checkpoint was trained on; VOC's for
    checkpoints written before checkpoints recorded it."""
    state = load_checkpoint(checkpoint)
    if "dataset" in state:
        return state["dataset"]
    from pixseg.data import VOC_CLASSES, voc_colormap

    num_classes = config_from_dict(state["config"], str(checkpoint)).data.num_classes or len(VOC_CLASSES)
    classes = VOC_CLASSES if num_classes == len(VOC_CLASSES) else [f"class_{k}" for k in range(num_classes)]
    return {"dataset": "voc", "num_classes": num_classes, "classes": list(classes),
            "palette": voc_colormap(num_classes).tolist(), "ignore_index": 255}
