"""Training configuration: YAML read into dataclasses and validated once, at the edge."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class ModelConfig:
    name: str = "fcn8s"
    width: float = 1.0
    upsample: str = "deconv"
    pretrained: str | None = None
    dropout: float = 0.5
    padding: str = "classic"
    batch_norm: bool = False
    # false, true or a mapping of CRF-as-RNN options (pixseg.models.crfrnn): that layer on top.
    crf_rnn: Any = False
    # A finished run's checkpoint to start from; a model with crf_rnn takes a checkpoint of its
    # base network alone (the paper's second stage starts from the first stage's network).
    init: str | None = None


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
    val_split: str = "val"
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


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    # Passed to pixseg.losses.create_loss, which validates it.
    loss: dict = field(default_factory=lambda: {"name": "ce"})
    batch_size: int = 8
    # Exactly one of the two sets the length of training; epochs are converted once the dataset
    # size is known.
    iterations: int | None = 1000
    epochs: int | None = None
    val_every: int = 500
    checkpoint_every: int = 500
    seed: int = 0
    device: str = "auto"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


OPTIMIZERS = ("sgd", "adam", "adamw")
UPSAMPLE_MODES = ("nearest", "bilinear", "deconv_frozen", "deconv")


def _build(cls, values: dict, where: str):
    """Build dataclass `cls` from a dict, rejecting unknown keys by name."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(values).__name__} {values!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys are {', '.join(known)}"
        )
    kwargs = {}
    for name, value in values.items():
        section = known[name].default_factory
        if section in (ModelConfig, DataConfig, OptimConfig):
            kwargs[name] = _build(section, value or {}, name)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _check(config: TrainConfig, source: str) -> TrainConfig:
    def fail(key, value, expected):
        raise ValueError(f"{source}: {key} = {value!r}; expected {expected}")

    if config.model.width <= 0:
        fail("model.width", config.model.width, "a positive number")
    if config.model.upsample not in UPSAMPLE_MODES:
        fail("model.upsample", config.model.upsample, f"one of {', '.join(UPSAMPLE_MODES)}")
    if config.optim.name not in OPTIMIZERS:
        fail("optim.name", config.optim.name, f"one of {', '.join(OPTIMIZERS)}")
    if config.optim.lr <= 0:
        fail("optim.lr", config.optim.lr, "a positive number")
    if config.batch_size < 1:
        fail("batch_size", config.batch_size, "an integer >= 1")
    if (config.iterations is None) == (config.epochs is None):
        raise ValueError(
            f"{source}: set exactly one of iterations ({config.iterations!r}) and epochs "
            f"({config.epochs!r}); the other must be null"
        )
    for key in ("iterations", "epochs"):
        value = getattr(config, key)
        if value is not None and (not isinstance(value, int) or value < 1):
            fail(key, value, "an integer >= 1 or null")
    if config.val_every < 1 or config.checkpoint_every < 1:
        fail("val_every/checkpoint_every", (config.val_every, config.checkpoint_every), "integers >= 1")
    if config.data.crop_size < 1:
        fail("data.crop_size", config.data.crop_size, "an integer >= 1")
    if config.data.num_classes is not None and config.data.num_classes < 2:
        fail("data.num_classes", config.data.num_classes, "an integer >= 2, or null for the dataset's own")
    from pixseg.data import DATASETS

    if config.data.dataset is not None and config.data.dataset not in DATASETS:
        fail("data.dataset", config.data.dataset, f"null (detect) or one of {', '.join(DATASETS)}")
    if not isinstance(config.data.options, dict):
        fail("data.options", config.data.options, "a mapping of the dataset reader's options")
    if not 0 <= config.data.holdout < 1:
        fail("data.holdout", config.data.holdout, "a fraction in [0, 1)")
    low, high = config.data.scale_range
    if not 0 < low <= high:
        fail("data.scale_range", config.data.scale_range, "[low, high] with 0 < low <= high")
    if not isinstance(config.loss, dict) or "name" not in config.loss:
        fail("loss", config.loss, "a mapping with a 'name' key, e.g. {name: fused, ws: 0.5, wp: 0.5}")
    config.data.scale_range = (float(low), float(high))
    return config


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
        if isinstance(value, dict) and isinstance(current, dict) and not renames_loss:
            merged[key] = _merge(current, value)
        else:
            merged[key] = value
    return merged


def config_from_dict(values: dict, source: str = "config") -> TrainConfig:
    return _check(_build(TrainConfig, values, "config"), source)


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
