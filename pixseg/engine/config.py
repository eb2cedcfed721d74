"""Training configuration: YAML read into dataclasses and validated once, at the edge."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pixseg.engine.inference import InferenceConfig, check_inference


@dataclass
class DataConfig:
    root: str | None = None
    # A name from pixseg.data.DATASETS; None detects it from the layout of root.
    dataset: str | None = None
    # None takes the dataset's own class count.
    num_classes: int | None = None
    # Keyword options of the dataset's reader, e.g. {num_classes: 59} for pascal_context.
    options: dict = field(default_factory=dict)
    train_split: str = "train"
    # null: no validation during training.
    val_split: str | None = "val"
    crop_size: int = 320
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    num_workers: int = 0
    # Fraction of the train split withheld from training, used to tune the CRF (never val).
    holdout: float = 0.0


@dataclass
class OptimConfig:
    name: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    # Learning-rate multiplier for a CRF-RNN layer's weights (model.crf_rnn): they move by units
    # while the network's weights move by hundredths (the paper used 1000 to 10000 with SGD).
    crf_lr_mult: float = 1.0
    # Learning rate of everything outside the model's `backbone`, as a multiple of lr (DeepLab
    # trains its new head 10x faster than the pretrained backbone).
    head_lr_mult: float = 1.0
    # No weight decay on biases and normalisation weights (every parameter of one dimension).
    no_decay_norm_bias: bool = False
    # Linear warm-up: the learning rate rises from warmup_factor * lr to the schedule's over the
    # first warmup_iters updates (large batches diverge at the full rate from random heads).
    warmup_iters: int = 0
    warmup_factor: float = 0.001
    # Largest norm of the gradient (all parameters together) an update uses; null: unclipped.
    clip_grad_norm: float | None = None


@dataclass
class TrainConfig:
    # {name: <a pixseg.models.MODELS name>, option: value, ...}: every key but name and init goes
    # to create_model (the builder's options, and crf_rnn: the CRF-as-RNN layer on top). init is a
    # finished run's checkpoint to start from; a model with crf_rnn takes a checkpoint of its base
    # network alone (the paper's second stage starts from the first stage's network).
    model: dict = field(default_factory=lambda: {"name": "fcn8s"})
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    # Passed to pixseg.losses.create_loss, which validates it.
    loss: dict = field(default_factory=lambda: {"name": "ce"})
    # How evaluation (validation during training, eval, experiment, zoo) and predict apply the
    # model: whole images, sliding windows or several scales (pixseg.engine.inference).
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    # Weight of the loss on a model's auxiliary output, for models that return one in training.
    aux_weight: float = 0.4
    # Images per process and batch; under torchrun each of N processes loads its own.
    batch_size: int = 8
    # Batches whose gradients add up before each update: an update sees batch_size * accumulate
    # images per process, with the memory of batch_size.
    accumulate: int = 1
    # Mixed precision: forward passes under autocast (bfloat16 on CPU, float16 with a gradient
    # scaler on CUDA), the loss in float32; validation runs under autocast too.
    amp: bool = False
    # Weights and images in channels-last memory layout (faster convolutions on tensor cores).
    channels_last: bool = False
    # Under torchrun: batch norm statistics over every process's batch (CUDA only).
    sync_batchnorm: bool = False
    # Exactly one of the two sets the length of training; epochs are converted once the dataset
    # size is known.
    iterations: int | None = 1000
    epochs: int | None = None
    val_every: int = 500
    checkpoint_every: int = 500
    seed: int = 0
    device: str = "auto"
    # Adversarial training (pixseg.adversarial): null for none, or {lambda, discriminator, tau,
    # channels, downsample, start_after, optim}; keys left out take ADVERSARIAL_DEFAULTS.
    adversarial: dict | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


OPTIMIZERS = ("sgd", "adam", "adamw")
# Not the paper's values, which are not published: a term small next to the segmentation loss, and
# a discriminator learning slowly enough that it does not win at once.
ADVERSARIAL_DEFAULTS = {
    "lambda": 0.1, "discriminator": "product", "tau": 0.9, "channels": 16, "downsample": 4, "start_after": 0,
    "optim": {"name": "adam", "lr": 1e-4, "momentum": 0.9, "weight_decay": 0.0, "poly_power": 0.9},
}


def _build(cls, values: dict, where: str):
    """Build dataclass `cls` from a dict, rejecting unknown keys by name and values of the wrong
    type by key, value and the type expected (see `_typed`)."""
    if not isinstance(values, dict):
        raise ValueError(f"{where or 'config'}: expected a mapping, got {type(values).__name__} {values!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(
            f"{where or 'config'}: unknown key(s) {', '.join(unknown)}; valid keys are {', '.join(known)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(hints[name]):
            kwargs[name] = _build(hints[name], value or {}, key)
        else:
            kwargs[name] = _typed(value, hints[name], key)
    return cls(**kwargs)


class ConfigValueError(ValueError):
    """A config value of the wrong type; `config_from_dict` adds where it came from."""


# A number that YAML 1.1 leaves as text: 1e-3 (no dot) is read as a string.
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _typed(value, hint, key: str):
    """`value` as the field type `hint` asks: bool only from true/false, int only from whole
    numbers, float from any finite number (also one YAML left as text, like 1e-3), tuples of the
    right length, None only where the type allows it."""
    def wrong(expected):
        return ConfigValueError(f"{key} = {value!r}; expected {expected}")

    if hint is Any:  # validated where it is used
        return value
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [arg for arg in args if arg is not type(None)]
        try:
            return _typed(value, inner[0], key)
        except ConfigValueError:
            raise wrong(f"{_describe(inner[0])} or null") from None
    if hint is float and isinstance(value, str) and NUMBER.fullmatch(value.strip()):
        value = float(value)
    plain_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if (hint is bool and isinstance(value, bool) or hint is str and isinstance(value, str)
            or hint is int and plain_number and isinstance(value, int)
            or hint is dict and isinstance(value, dict)):
        return value
    if hint is float and plain_number and math.isfinite(value):
        return float(value)
    if typing.get_origin(hint) is tuple and args[-1] is Ellipsis and isinstance(value, (list, tuple)):
        try:
            return tuple(_typed(item, args[0], key) for item in value)
        except ConfigValueError:
            pass
    if typing.get_origin(hint) is tuple and isinstance(value, (list, tuple)) and len(value) == len(args):
        try:
            return tuple(_typed(item, arg, key) for item, arg in zip(value, args))
        except ConfigValueError:
            pass
    raise wrong(_describe(hint))


def _describe(hint) -> str:
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if args[-1] is Ellipsis:
            return f"a list of {_describe(args[0]).removeprefix('a ')}s"
        return f"a list of {len(args)} {_describe(args[0]).removeprefix('a ')}s"
    return {bool: "true or false", int: "a whole number", float: "a finite number", str: "a string",
            dict: "a mapping"}[hint]


def _check(config: TrainConfig, source: str) -> TrainConfig:
    """Ranges, once every value has its type."""
    def fail(key, value, expected):
        raise ValueError(f"{source}: {key} = {value!r}; expected {expected}")

    _check_model(config.model, source)
    _check_optim(config.optim, "optim", fail)
    if not config.optim.crf_lr_mult > 0:
        fail("optim.crf_lr_mult", config.optim.crf_lr_mult, "a positive number")
    if config.optim.head_lr_mult <= 0:
        fail("optim.head_lr_mult", config.optim.head_lr_mult, "a positive number")
    if config.optim.warmup_iters < 0:
        fail("optim.warmup_iters", config.optim.warmup_iters, "an integer >= 0")
    if not 0 < config.optim.warmup_factor <= 1:
        fail("optim.warmup_factor", config.optim.warmup_factor, "a number in (0, 1]")
    if config.optim.clip_grad_norm is not None and not config.optim.clip_grad_norm > 0:
        fail("optim.clip_grad_norm", config.optim.clip_grad_norm, "a positive number, or null for no clipping")
    if config.aux_weight < 0:
        fail("aux_weight", config.aux_weight, "a number >= 0")
    if config.batch_size < 1:
        fail("batch_size", config.batch_size, "an integer >= 1")
    if config.accumulate < 1:
        fail("accumulate", config.accumulate, "an integer >= 1 (batches per update)")
    if (config.iterations is None) == (config.epochs is None):
        raise ValueError(
            f"{source}: set exactly one of iterations ({config.iterations!r}) and epochs "
            f"({config.epochs!r}); the other must be null"
        )
    for key in ("iterations", "epochs", "val_every", "checkpoint_every"):
        value = getattr(config, key)
        if value is not None and value < 1:
            fail(key, value, "an integer >= 1")
    if config.seed < 0:
        fail("seed", config.seed, "an integer >= 0")
    if config.data.crop_size < 1:
        fail("data.crop_size", config.data.crop_size, "an integer >= 1")
    if config.data.num_classes is not None and config.data.num_classes < 2:
        fail("data.num_classes", config.data.num_classes, "an integer >= 2, or null for the dataset's own")
    from pixseg.data import DATASETS

    if config.data.dataset is not None and config.data.dataset not in DATASETS:
        fail("data.dataset", config.data.dataset, f"null (detect) or one of {', '.join(DATASETS)}")
    if config.data.num_workers < 0:
        fail("data.num_workers", config.data.num_workers, "an integer >= 0")
    if not 0 <= config.data.holdout < 1:
        fail("data.holdout", config.data.holdout, "a fraction in [0, 1)")
    low, high = config.data.scale_range
    if not 0 < low <= high:
        fail("data.scale_range", list(config.data.scale_range), "[low, high] with 0 < low <= high")
    try:
        check_inference(config.inference)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    if "name" not in config.loss:
        fail("loss", config.loss, "a mapping with a 'name' key, e.g. {name: fused, ws: 0.5, wp: 0.5}")
    if config.adversarial is not None:
        try:
            config.adversarial = _adversarial(config.adversarial)
        except ValueError as error:
            raise type(error)(f"{source}: {error}") from None
    return config


def _check_optim(optim: OptimConfig, prefix: str, fail) -> None:
    if optim.name not in OPTIMIZERS:
        fail(f"{prefix}.name", optim.name, f"one of {', '.join(OPTIMIZERS)}")
    if optim.lr <= 0:
        fail(f"{prefix}.lr", optim.lr, "a positive number")
    if not 0 <= optim.momentum < 1:
        fail(f"{prefix}.momentum", optim.momentum, "a number in [0, 1)")
    for key in ("weight_decay", "poly_power"):
        if getattr(optim, key) < 0:
            fail(f"{prefix}.{key}", getattr(optim, key), "a number >= 0")


def _adversarial(spec: dict) -> dict:
    """The adversarial section complete (defaults for the keys left out), typed and in range."""
    from pixseg.adversarial import DISCRIMINATORS

    def fail(key, value, expected):
        raise ValueError(f"{key} = {value!r}; expected {expected}")

    defaults = ADVERSARIAL_DEFAULTS
    unknown = sorted(set(spec) - set(defaults))
    if unknown:
        raise ValueError(f"adversarial: unknown key(s) {', '.join(unknown)}; valid keys are {', '.join(defaults)}")
    optim = spec.get("optim") or {}
    if not isinstance(optim, dict):
        fail("adversarial.optim", optim, "a mapping, e.g. {name: adam, lr: 0.0001}")
    unknown = sorted(set(optim) - set(defaults["optim"]))
    if unknown:
        raise ValueError(f"adversarial.optim: unknown key(s) {', '.join(unknown)}; valid keys are "
                         f"{', '.join(defaults['optim'])}")
    hints = {"lambda": float, "discriminator": str, "tau": float, "channels": int, "downsample": int,
             "start_after": int}
    full = {key: _typed(spec.get(key, defaults[key]), hint, f"adversarial.{key}") for key, hint in hints.items()}
    optim = _build(OptimConfig, {**defaults["optim"], **optim}, "adversarial.optim")
    _check_optim(optim, "adversarial.optim", fail)
    full["optim"] = {key: getattr(optim, key) for key in defaults["optim"]}
    if full["lambda"] <= 0:
        fail("adversarial.lambda", full["lambda"], "a positive number (leave adversarial out to train without)")
    if full["discriminator"] not in DISCRIMINATORS:
        fail("adversarial.discriminator", full["discriminator"], f"one of {', '.join(DISCRIMINATORS)}")
    if not 0.5 < full["tau"] <= 1:
        fail("adversarial.tau", full["tau"], "a number in (0.5, 1], so the true class keeps the most mass")
    for key in ("channels", "downsample"):
        if full[key] < 1:
            fail(f"adversarial.{key}", full[key], "an integer >= 1")
    if full["start_after"] < 0:
        fail("adversarial.start_after", full["start_after"], "an integer >= 0")
    return full


def _check_model(model, source: str) -> None:
    """The model section names a model and only options its builder takes."""
    from pixseg.models import MODELS, check_model

    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise ValueError(f"{source}: model = {model!r}; expected a mapping with a 'name' key, "
                         "e.g. {name: unet, width: 0.25}")
    if model["name"] not in MODELS:
        raise ValueError(f"{source}: model.name = {model['name']!r}; expected one of {', '.join(MODELS)}")
    options = {key: value for key, value in model.items() if key not in ("name", "init")}
    try:
        check_model(model["name"], options)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def _model_options(name) -> set:
    from pixseg.models import MODELS, model_options

    return set(model_options(name)) if name in MODELS else set()


def parse_overrides(pairs: list[str]) -> dict:
    """Turn ['optim.lr=0.01', 'loss={name: fused}'] into a nested dict; values are YAML."""
    nested: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"override {pair!r}: expected key=value, e.g. optim.lr=0.01")
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw)
    return nested


def _merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        current = merged.get(key)
        # A loss override naming another loss replaces the whole spec: the old loss's options
        # would not apply to the new one.
        renames_loss = key == "loss" and isinstance(current, dict) and isinstance(value, dict) \
            and value.get("name", current.get("name")) != current.get("name")
        # One naming another model keeps only the options the new model takes too (a width, say):
        # the rest belonged to the old model.
        renames_model = key == "model" and isinstance(current, dict) and isinstance(value, dict) \
            and value.get("name", current.get("name")) != current.get("name")
        if renames_model:
            kept = _model_options(value["name"])
            merged[key] = {**{k: v for k, v in current.items() if k in kept}, **value}
        elif isinstance(value, dict) and isinstance(current, dict) and not renames_loss:
            merged[key] = _merge(current, value)
        else:
            merged[key] = value
    return merged


def config_from_dict(values: dict, source: str = "config") -> TrainConfig:
    try:
        config = _build(TrainConfig, values, "")
    except ConfigValueError as error:
        raise ConfigValueError(f"{source}: {error}") from None
    return _check(config, source)


PACKAGED_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def packaged_config_names() -> list[str]:
    return sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.yaml"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A YAML path as given, or the name of a config shipped with pixseg (e.g. 'fcn8s_voc')."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = PACKAGED_CONFIGS / f"{name_or_path}.yaml"
    if packaged.is_file():
        return packaged
    raise ValueError(f"config {str(name_or_path)!r} is neither a file nor a packaged config "
                     f"({', '.join(packaged_config_names())})")


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML config (a path or a packaged config's name; defaults when None) and apply
    key=value overrides."""
    values: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = resolve_config_path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"config file {path} is not valid YAML: {error}") from None
        source = str(path)
    values = _merge(values, parse_overrides(list(overrides)))
    try:
        return config_from_dict(values, source)
    except TypeError as error:
        raise ValueError(f"{source}: {error}") from None
