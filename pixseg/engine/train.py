"""The training loop: SGD (or Adam) with poly decay, periodic validation, atomic resumable checkpoints;
one process, or several under torchrun (DistributedDataParallel, see pixseg.engine.distributed)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from pixseg.adversarial import AdversarialTraining
from pixseg.data.transforms import TrainTransform
from pixseg.engine import distributed
from pixseg.engine.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from pixseg.engine.config import OptimConfig, TrainConfig, config_from_dict
from pixseg.engine.datasets import open_split, resolved
from pixseg.engine.evaluate import evaluate
from pixseg.engine.holdout import split_holdout
from pixseg.engine.precision import as_float, autocast, grad_scaler
from pixseg.io import check_output_folder, json_text, remove_stale_temporaries, write_text
from pixseg.losses import create_loss, weight_method
from pixseg.models import CRFRNN, FCN, create_model
from pixseg.models.dilation import Dilation

CHECKPOINT_NAME = "checkpoint.pt"
# The weights of the validation with the highest mIoU so far, beside the last ones.
BEST_NAME = "best.pt"
LOG_NAME = "metrics.jsonl"
LOG_EVERY = 10


def resolve_device(name: str) -> torch.device:
    """The torch device `name` names (auto: CUDA when present), checked to exist here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r} is not a device torch knows (try auto, cpu or cuda)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for, but this torch build sees no CUDA device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"numbered from 0")
    return device


def build_model(config: TrainConfig) -> torch.nn.Module:
    options = {key: value for key, value in config.model.items() if key not in ("name", "init")}
    return create_model(config.model["name"], config.data.num_classes, **options)


def load_initial_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load a finished run's weights (model.init): into the whole model, or into its base network
    when the model adds a CRF-RNN layer the checkpoint has none of."""
    state = load_checkpoint(path)["model"]
    has_crf = any(key.startswith("crf.") for key in state)
    target = model.base if isinstance(model, CRFRNN) and not has_crf else model
    try:
        target.load_state_dict(state)
    except RuntimeError as error:
        if not _first_stage(target, state):
            first = str(error).splitlines()[0]
            raise ValueError(f"model.init = {str(path)!r}: its weights do not fit this model ({first}); expected "
                             f"a checkpoint of the same network, or of its first stage on the same backbone (a "
                             f"coarser FCN, the Dilation front end)") from None
        own = target.state_dict()
        target.load_state_dict({k: v for k, v in state.items() if own[k].shape == v.shape}, strict=False)


def _first_stage(model: torch.nn.Module, state: dict) -> bool:
    """Whether `state` is the network `model` is trained from in stages, on the same backbone: a
    coarser FCN (FCN-32s for an FCN-16s: Long et al. start each finer FCN from the trained coarser
    one) or the Dilation front end (Yu & Koltun add the context module to a trained front end). Its
    layers are a subset of `model`'s; the layers it lacks keep their start: the finer FCN's zero
    score layers and bilinear upsampler, the context module's identity."""
    own = model.state_dict()
    backbone = [k for k in own if k.startswith("backbone.")]
    return (isinstance(model, (FCN, Dilation)) and bool(backbone) and set(state) <= set(own)
            and all(state.get(k) is not None and state[k].shape == own[k].shape for k in backbone))


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
    (seed, epoch), so any step's batch can be regenerated without replaying earlier ones. One of
    `world_size` processes (rank) takes its DistributedSampler share of each epoch, reshuffled per
    epoch by set_epoch; every sample's seed is unique across the processes."""

    def __init__(self, num_samples: int, batch_size: int, seed: int, start: int, total: int,
                 rank: int = 0, world_size: int = 1):
        self.num_samples, self.batch_size = num_samples, batch_size
        self.seed, self.start, self.total = seed, start, total
        self.rank, self.world_size = rank, world_size
        self.sampler = None if world_size == 1 else DistributedSampler(
            range(num_samples), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.per_epoch = num_samples // world_size // batch_size

    def __len__(self):
        return self.total - self.start

    def _order(self, epoch: int) -> list[int]:
        if self.sampler is None:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            return torch.randperm(self.num_samples, generator=generator).tolist()
        self.sampler.set_epoch(epoch)
        return list(self.sampler)

    def __iter__(self):
        epoch, order = -1, None
        for step in range(self.start, self.total):
            if step // self.per_epoch != epoch:
                epoch = step // self.per_epoch
                order = self._order(epoch)
            first = (step % self.per_epoch) * self.batch_size
            slot = (step * self.world_size + self.rank) * self.batch_size
            yield [(index, self.seed * 1_000_003 + slot + offset)
                   for offset, index in enumerate(order[first:first + self.batch_size])]


def training_split(config: TrainConfig, held_out: bool = False):
    """The images a config trains on, or with held_out=True the ones it withholds for tuning."""
    full = open_split(config.data, config.data.train_split)
    fit, held = split_holdout(full, config.data.holdout)
    return held if held_out else fit


def total_iterations(config: TrainConfig, num_samples: int, world_size: int = 1) -> int:
    """Updates in the run; an epoch is the updates that each see batch_size * accumulate new images
    on each of world_size processes."""
    if config.iterations is not None:
        return config.iterations
    return config.epochs * (num_samples // (config.batch_size * config.accumulate * world_size))


def poly_schedule(total: int, power: float, warmup_iters: int = 0, warmup_factor: float = 1.0):
    """The learning rate factor after `step` updates: poly decay, times a linear warm-up from
    warmup_factor to 1 over the first warmup_iters updates."""
    def factor(step):
        warm = 1.0 if step >= warmup_iters else warmup_factor + (1 - warmup_factor) * step / warmup_iters
        return warm * (1 - min(step, total) / total) ** power
    return factor


def parameter_groups(model: torch.nn.Module, optim) -> list[dict]:
    """The trainable parameters grouped by learning rate and weight decay: a CRF-RNN layer's at
    lr * crf_lr_mult, the rest outside the model's backbone (its head) at lr * head_lr_mult, and
    with no_decay_norm_bias the biases and normalisation weights (every 1-D parameter) without
    weight decay. Groups with equal settings merge, so the defaults give one group."""
    # Any module named `backbone`: a wrapper (a CRF-RNN layer on top) keeps its network's.
    in_backbone = {id(p) for name, module in model.named_modules() if name.rsplit(".", 1)[-1] == "backbone"
                   for p in module.parameters()}
    in_crf = {id(p) for p in model.crf.parameters()} if isinstance(model, CRFRNN) else set()
    groups: dict[tuple[float, float], list] = {}
    for parameter in model.parameters():
        if not parameter.requires_grad:
            continue
        if id(parameter) in in_crf:
            lr = optim.lr * optim.crf_lr_mult
        else:
            lr = optim.lr if id(parameter) in in_backbone else optim.lr * optim.head_lr_mult
        decay = 0.0 if optim.no_decay_norm_bias and parameter.ndim <= 1 else optim.weight_decay
        groups.setdefault((lr, decay), []).append(parameter)
    return [{"params": params, "lr": lr, "weight_decay": decay} for (lr, decay), params in groups.items()]


def training_loss(criterion, outputs, labels: torch.Tensor, aux_weight: float) -> torch.Tensor:
    """The loss on a model's logits; a model with an auxiliary head returns {"out": logits,
    "aux": aux_logits} in training (torchvision's convention), and its loss adds aux_weight times
    the loss on the auxiliary logits."""
    if not isinstance(outputs, dict):
        return criterion(outputs, labels)
    loss = criterion(outputs["out"], labels)
    if "aux" in outputs:
        loss = loss + aux_weight * criterion(outputs["aux"], labels)
    return loss


def forward_backward(model, criterion, scaler, images: torch.Tensor, labels: torch.Tensor, *,
                     accumulate: int = 1, aux_weight: float = 0.4, amp: bool = False,
                     adversary: AdversarialTraining | None = None, step: int = 0) -> torch.Tensor:
    """Add to the parameters' gradients those of the loss on a batch, split into `accumulate`
    equal parts that run one after the other (the memory of one part); each part's loss is divided
    by `accumulate`, so the gradients are those of the mean loss over the whole batch. Forward
    passes run under autocast with `amp`, the loss in float32. With an `adversary`, each part's
    loss is its hybrid loss at `step` (the discriminator's step follows the update). Returns the
    batch's loss."""
    total = torch.zeros((), device=images.device)
    parts = list(zip(images.chunk(accumulate), labels.chunk(accumulate)))
    for index, (part_images, part_labels) in enumerate(parts):
        # Across processes, gradients are averaged once, after the last part.
        with distributed.no_sync(model, skip=index < len(parts) - 1):
            with autocast(images.device, amp):
                outputs = model(part_images)
            outputs = as_float(outputs)
            loss = training_loss(criterion, outputs, part_labels, aux_weight)
            if adversary is not None:
                loss = adversary.hybrid_loss(step, part_images, outputs, part_labels, loss)
            loss = loss / len(parts)
            scaler.scale(loss).backward()
        total += loss.detach()
    return total


def apply_update(model, optimizer, scaler, clip_grad_norm: float | None = None) -> float | None:
    """The optimiser step on the gradients forward_backward left: unscaled, then clipped to a total
    norm of clip_grad_norm; returns the norm before clipping (None when not clipping). A float16
    step whose gradients overflowed is skipped by the scaler, which lowers its scale."""
    norm = None
    if clip_grad_norm is not None:
        scaler.unscale_(optimizer)
        norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm))
    scaler.step(optimizer)
    scaler.update()
    return norm


def build_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    return create_optimizer(parameter_groups(model, config.optim), config.optim)


def create_optimizer(params, o) -> torch.optim.Optimizer:
    """The optimiser OptimConfig `o` names, over `params` (parameters or parameter groups)."""
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)


# Keys that change how a run is carried out but not what it computes: a resumed run may change them.
# The inference section changes only how validation scores the model, never the weights.
NEUTRAL_KEYS = ("device", "data.root", "data.num_workers", "data.val_split", "val_every", "checkpoint_every",
                "inference")


def _config_differences(saved: dict, current: dict, defaults: dict, prefix="") -> list[str]:
    """What differs between a checkpoint's config and the current one. A key that a checkpoint
    written by an older pixseg lacks counts as its default: the option did not exist then, and its
    default keeps what such a run computed."""
    keys = sorted(set(saved) | set(current))
    differences = []
    for key in keys:
        a, b = saved.get(key, defaults.get(key)), current.get(key)
        if f"{prefix}{key}" in NEUTRAL_KEYS:
            continue
        if isinstance(a, dict) and isinstance(b, dict) and key != "loss":
            differences += _config_differences(a, b, defaults.get(key) or {}, f"{prefix}{key}.")
        elif a != b and not (isinstance(a, (list, tuple)) and list(a) == list(b or [])):
            differences.append(f"{prefix}{key}: {a!r} in the checkpoint, {b!r} now")
    return differences


def _log_records(log_path: Path) -> list[dict]:
    """The complete lines of a metrics log; a line cut short by a killed run is dropped."""
    if not log_path.exists():
        return []
    records = []
    for line in log_path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _truncate_log(log_path: Path, step: int) -> None:
    """Drop log lines written after `step` by a run that died before its next checkpoint, and a
    last line it left half-written."""
    if not log_path.exists():
        return
    kept = [record for record in _log_records(log_path) if record.get("step", 0) <= step]
    text = "".join(json_text(record, indent=None) + "\n" for record in kept)
    if text != log_path.read_text():
        write_text(log_path, text)


def _append_log(log_path: Path, record: dict) -> None:
    # Opened per line: the run's folder appears with its first line, and a killed run has
    # written whole lines up to its last.
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as log:
        log.write(json_text(record, indent=None) + "\n")


def _loader_error(error: Exception) -> Exception:
    """A loader worker's error as its own one-line message (torch puts the worker's traceback
    into the message it raises again in this process)."""
    text = str(error)
    if "Original Traceback" not in text:
        return error
    last = text.strip().splitlines()[-1]
    return ValueError(last.partition(": ")[2] or last)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message says where the run stopped and what holds its state."""


def restore_training(state: dict, model, optimizer, scheduler, log_path: Path, adversary=None) -> int:
    """Continue from a checkpoint (of the run in log_path's folder): weights, optimiser, schedule
    (the discriminator's too, when training adversarially) and every RNG as saved, and the log cut
    back to the saved step, which is returned."""
    load_weights(model, state, log_path.parent / CHECKPOINT_NAME)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if adversary is not None:
        adversary.load_state_dict(state["adversarial"])
    # A run of several processes saved each one's generators.
    rng = state["rng_ranks"][distributed.rank()] if "rng_ranks" in state else state["rng"]
    restore_rng_state(rng, next(model.parameters()).device)
    if distributed.is_main():
        _truncate_log(log_path, state["step"])
    return state["step"]


def train(config: TrainConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
          progress: bool = True) -> Path:
    """Train a model as `config` says, writing checkpoint.pt, best.pt and metrics.jsonl under out_dir.

    With resume=True an existing checkpoint in out_dir is continued from its step, with the
    same data order, augmentation, optimiser and random state; only the keys in NEUTRAL_KEYS may
    differ from the saved config. A folder holding a run is refused unless resume or overwrite
    (start again) is given. Ctrl-C saves the last finished step; a diverging loss stops the run
    with the last good checkpoint kept. Returns the checkpoint path.

    Called in every process torchrun started (after distributed.process_group), it trains one
    DistributedDataParallel model: each process loads its own batch_size images per batch, and
    rank 0 alone reads and writes the files and shows progress.
    """
    out_dir = Path(out_dir)
    checkpoint_path, log_path, best_path = out_dir / CHECKPOINT_NAME, out_dir / LOG_NAME, out_dir / BEST_NAME
    if resume and overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it: give one")
    distributed.on_main(lambda: _check_run_folder(out_dir, resume, overwrite))
    if config.data.root is None:
        raise ValueError("no dataset given: set data.root in the config or pass --data DIR")
    # Stored absolute, so the checkpoint finds its data from any working folder.
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, root=os.path.abspath(config.data.root)))
    device = distributed.local_device(resolve_device(config.device))
    world = distributed.world_size()
    torch.manual_seed(config.seed)

    train_set = training_split(config)
    # The checkpoint records which dataset and how many classes the model was trained for.
    config = dataclasses.replace(config, data=resolved(config.data, train_set))
    data = config.data
    per_update = config.batch_size * config.accumulate
    if len(train_set) < per_update * world:
        raise ValueError(f"{data.root}: split {data.train_split!r} has {len(train_set)} images, fewer than "
                         f"batch_size {config.batch_size} x accumulate {config.accumulate} x {world} process(es)")
    val_set = open_split(data, data.val_split) if data.val_split else None
    total = total_iterations(config, len(train_set), world)

    model = build_model(config).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = build_loss(config, train_set, progress and distributed.is_main()).to(device)
    optimizer = build_optimizer(config, model)
    schedule = poly_schedule(total, config.optim.poly_power, config.optim.warmup_iters, config.optim.warmup_factor)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    scaler = grad_scaler(device, config.amp)
    adversary = None
    if config.adversarial is not None:
        if world > 1:
            raise ValueError("adversarial training runs in one process: its discriminator is not shared across "
                             "processes; launch without torchrun, or leave the adversarial section out")
        optim = OptimConfig(**config.adversarial["optim"])
        adversary = AdversarialTraining(config.adversarial, data.num_classes, device,
                                        lambda params: create_optimizer(params, optim),
                                        poly_schedule(total, optim.poly_power), train_set.ignore_index)
    if distributed.active():
        # Each process its own dropout masks (the weights are rank 0's, broadcast by DDP).
        torch.manual_seed(config.seed * 1_000_003 + distributed.rank())

    state = distributed.on_main(lambda: _open_run(out_dir, config, resume, overwrite, world))
    start, best = 0, None
    if state is None and config.model.get("init") is not None:
        load_initial_weights(model, config.model["init"])
    if state is not None:
        start = restore_training(state, model, optimizer, scheduler, log_path, adversary)
        # Absent from checkpoints written before these existed: no scaler state, no best yet.
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        best = state.get("best")
    net = model
    model = distributed.wrap_model(net, device, config.sync_batchnorm)
    saved = start if start else None

    def save(step):
        nonlocal saved
        if not all(bool(torch.isfinite(p).all()) for p in net.parameters()):
            raise ValueError(f"training diverged: the weights hold inf or NaN after step {step}; "
                             f"{checkpoint_kept(checkpoint_path, saved)} (lower optim.lr, now {config.optim.lr})")
        if adversary is not None and not adversary.parameters_finite():
            raise ValueError(f"training diverged: the discriminator's weights hold inf or NaN after step {step}; "
                             f"{checkpoint_kept(checkpoint_path, saved)} (lower adversarial.optim.lr, now "
                             f"{config.adversarial['optim']['lr']})")
        rngs = distributed.gather(rng_state(device))
        if distributed.is_main():
            save_checkpoint(checkpoint_path, {
                "model": net.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": rngs[0],
                **({"rng_ranks": rngs} if world > 1 else {}), "world_size": world, "best": best,
                "step": step, "total": total, "config": config.to_dict(), "dataset": train_set.metadata(),
                **({"adversarial": adversary.state_dict()} if adversary is not None else {}),
            })
        saved = step

    if start >= total:
        return checkpoint_path

    if distributed.is_main() and (world > 1 or config.accumulate > 1):
        accumulated = f", {config.accumulate} batches accumulated per update" if config.accumulate > 1 else ""
        print(f"batch size: {config.batch_size} per process{accumulated}; {per_update * world} images per update "
              f"in total ({world} process(es))")
    transform = TrainTransform(data.crop_size, scale_range=data.scale_range, flip=data.flip)
    loader = DataLoader(
        SeededSamples(train_set, transform),
        batch_sampler=ResumableBatches(len(train_set), per_update, config.seed, start, total,
                                       distributed.rank(), world),
        num_workers=data.num_workers, pin_memory=device.type == "cuda",
        # Its own generator: the loader draws a seed per iterator, which must not shift the global
        # RNG that dropout uses, or a resumed run would diverge from an uninterrupted one.
        generator=torch.Generator().manual_seed(config.seed),
    )
    layout = torch.channels_last if config.channels_last else torch.preserve_format
    model.train()
    bar = tqdm(loader, total=total, initial=start, desc="train", unit="it",
               disable=not progress or not distributed.is_main(), dynamic_ncols=True)
    started = time.perf_counter()
    # `done`: the last step whose update finished; `updating`: inside an update, where an
    # interrupted run's weights are half old, half new and must not be saved.
    done, updating, last_loss = start, False, None
    try:
        for step, (images, labels) in enumerate(bar, start=start + 1):
            images = images.to(device, non_blocking=True, memory_format=layout)
            labels = labels.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = forward_backward(model, criterion, scaler, images, labels, accumulate=config.accumulate,
                                    aux_weight=config.aux_weight, amp=config.amp, adversary=adversary, step=step)
            # The mean over the processes: each decides alike whether the run diverged.
            loss = distributed.mean_across(loss)
            if not math.isfinite(loss):
                before = "no step before it" if last_loss is None else f"{last_loss:.4g} at step {step - 1}"
                raise ValueError(f"training diverged: the loss became {loss} at step {step} "
                                 f"(last finite loss {before}); {checkpoint_kept(checkpoint_path, saved)} "
                                 f"(lower optim.lr, now {config.optim.lr})")
            last_loss = loss
            updating = True
            grad_norm = apply_update(model, optimizer, scaler, config.optim.clip_grad_norm)
            scheduler.step()
            logged = adversary.discriminator_step() if adversary is not None else {}
            done, updating = step, False
            lr = config.optim.lr * schedule(step)
            bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}",
                            **{key: f"{value:.3f}" for key, value in logged.items() if key != "seg_loss"})
            if distributed.is_main() and (step % LOG_EVERY == 0 or step == total):
                _append_log(log_path, {"step": step, "loss": last_loss, "lr": lr, **logged,
                                       **({} if grad_norm is None else {"grad_norm": grad_norm}),
                                       "seconds": round(time.perf_counter() - started, 2)})
            if val_set is not None and (step % config.val_every == 0 or step == total):
                distributed.broadcast_buffers(net)
                metrics = evaluate(net, val_set, device, inference=config.inference, progress=False, amp=config.amp)
                model.train()
                if best is None or metrics["miou"] > best["miou"]:
                    best = {"miou": metrics["miou"], "step": step}
                    if distributed.is_main():
                        save_checkpoint(best_path, {"model": net.state_dict(), "step": step, "total": total,
                                                    "miou": metrics["miou"], "config": config.to_dict(),
                                                    "dataset": train_set.metadata()})
                if distributed.is_main():
                    _append_log(log_path, {"step": step, "split": data.val_split,
                                           **{k: v for k, v in metrics.items() if k != "iou"}})
                    bar.write(f"step {step}: {data.val_split} mIoU {metrics['miou']:.4f} "
                              f"pixel acc {metrics['pixel_acc']:.4f} fg recall {metrics['fg_recall']:.4f}")
            if step % config.checkpoint_every == 0 or step == total:
                save(step)
    except KeyboardInterrupt:
        bar.close()
        # Saving gathers every process's state, which interrupted processes cannot give.
        if not updating and done != saved and not distributed.active():
            save(done)
        raise TrainingInterrupted(f"training stopped at step {done} of {total}; {checkpoint_kept(checkpoint_path, saved)}; "
                                  f"continue with --resume") from None
    except (ValueError, OSError) as error:
        raise _loader_error(error) from None
    return checkpoint_path


def _check_run_folder(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse an unusable output folder, or one holding a run, unless resumed or overwritten."""
    check_output_folder(out_dir)
    previous = [name for name in (CHECKPOINT_NAME, LOG_NAME, BEST_NAME) if (out_dir / name).exists()]
    if previous and not (resume or overwrite):
        raise ValueError(f"{out_dir} already holds a training run ({', '.join(previous)}); "
                         f"pass --resume to continue it or --overwrite to start it again")


def _open_run(out_dir: Path, config: TrainConfig, resume: bool, overwrite: bool, world: int) -> dict | None:
    """Ready out_dir for the run: the checkpoint to continue from (None to start afresh), checked
    against the config and number of processes; the log cut back to where the run restarts."""
    checkpoint_path, log_path = out_dir / CHECKPOINT_NAME, out_dir / LOG_NAME
    # Only this run writes here: what a killed writer left is garbage.
    for path in (checkpoint_path, log_path, out_dir / BEST_NAME):
        remove_stale_temporaries(path)
    state = None
    if resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        differences = _config_differences(state["config"], config.to_dict(), TrainConfig().to_dict())
        if differences:
            raise ValueError(f"cannot resume {checkpoint_path}: the config differs in what changes the result: "
                             + "; ".join(differences) + " (start again with --overwrite or another --out)")
        # Which images each process sees, and every process's random state, depend on their number.
        if state.get("world_size", 1) != world:
            raise ValueError(f"cannot resume {checkpoint_path}: it was trained by {state.get('world_size', 1)} "
                             f"process(es), and {world} run now (launch as many with torchrun --nproc_per_node)")
    elif overwrite:
        checkpoint_path.unlink(missing_ok=True)
        (out_dir / BEST_NAME).unlink(missing_ok=True)
    _truncate_log(log_path, state["step"] if state else 0)
    return state


def checkpoint_kept(checkpoint_path: Path, step: int | None) -> str:
    """What an error or interruption leaves: the checkpoint's step, or that none was written."""
    if step is None:
        return "no checkpoint was written"
    return f"{checkpoint_path} holds step {step}"


def load_weights(model: torch.nn.Module, state: dict, source) -> None:
    """Load a checkpoint's weights into `model`, or say what differs between the two."""
    weights, expected = state["model"], model.state_dict()
    problems = []
    missing = [key for key in expected if key not in weights]
    unexpected = [key for key in weights if key not in expected]
    reshaped = [f"{key} is {tuple(weights[key].shape)} there and {tuple(value.shape)} in the model"
                for key, value in expected.items() if key in weights and weights[key].shape != value.shape]
    if missing:
        problems.append(f"{len(missing)} weight(s) missing (first {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} weight(s) the model does not have (first {unexpected[0]})")
    if reshaped:
        problems.append(f"{len(reshaped)} of another shape (first: {reshaped[0]})")
    if problems:
        saved = state["config"]
        raise ValueError(f"checkpoint {source}: its weights do not fit the model its config describes "
                         f"(model {saved.get('model')}, {saved.get('data', {}).get('num_classes')} classes): "
                         + "; ".join(problems))
    model.load_state_dict(weights)


def load_trained_model(checkpoint: str | Path, device: torch.device | str = "cpu"):
    """Rebuild the model a checkpoint was trained as and load its weights; returns (model, config)."""
    state = load_checkpoint(checkpoint)
    config = config_from_dict(state["config"], str(checkpoint))
    # Pretrained backbone and initial weights are already inside the checkpoint.
    config.model.pop("pretrained", None)
    config.model.pop("init", None)
    model = build_model(config)
    load_weights(model, state, checkpoint)
    model.to(device).eval()
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
