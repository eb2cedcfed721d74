"""Strict loading of torchvision ImageNet checkpoints into the backbones, from a local file.

Every backbone keeps torchvision's parameter names, so a checkpoint maps onto it key for key. The
only freedoms are the ones torchvision's files themselves take: the ImageNet classifier (which no
backbone keeps) may be present or not, and BatchNorm's `num_batches_tracked` counters are missing
from the older files. Anything else missing, extra or misshapen is an error naming the key.
"""

import math
import os

import torch
from torch import nn


def scaled_channels(channels: int, width: float) -> int:
    """Channel count `channels` scaled by the width multiplier, at least 1."""
    return max(1, round(channels * width))


def check_width(width) -> float:
    """Return `width` as a float, or raise ValueError unless it is a finite number > 0."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) or width <= 0:
        raise ValueError(f"width must be a finite number > 0, got {width!r}")
    return float(width)


def read_state_dict(path, what: str) -> dict:
    """The state dict stored at `path`; `what` names the network in errors ("VGG16 checkpoint ...")."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} checkpoint {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for a corrupt or foreign file
        raise ValueError(f"{what} checkpoint {path}: cannot be read as a torch state dict ({error})") from error
    if not isinstance(state, dict):
        raise ValueError(f"{what} checkpoint {path}: expected a state dict, found a {type(state).__name__}")
    return state


def check_state_dict(state: dict, expected: dict, optional, path, what: str) -> None:
    """Raise ValueError naming the first problem unless `state` holds exactly the keys of `expected`
    (key -> shape), less any in `optional`, each a tensor of its shape."""
    missing = [key for key in expected if key not in state and key not in optional]
    extra = sorted(str(key) for key in state if key not in expected)
    layout = f"expected torchvision's {what.lower()} layout"
    if missing:
        raise ValueError(f"{what} checkpoint {path}: missing keys {', '.join(missing)} ({layout})")
    if extra:
        raise ValueError(f"{what} checkpoint {path}: unexpected keys {', '.join(extra)} ({layout})")
    for key, value in state.items():
        integer = key.endswith("num_batches_tracked")
        if not isinstance(value, torch.Tensor) or (not integer and not value.is_floating_point()):
            kind = "an integer" if integer else "a floating-point"
            raise ValueError(f"{what} checkpoint {path}: {key} is not {kind} tensor")
        if tuple(value.shape) != tuple(expected[key]):
            raise ValueError(f"{what} checkpoint {path}: {key} has shape {tuple(value.shape)}, "
                             f"expected {tuple(expected[key])}")


def load_backbone_state(backbone: nn.Module, path, what: str, classifier: dict, reshaped: dict = None) -> None:
    """Fill `backbone` (built on any device, meta included) from the torchvision checkpoint at `path`.

    classifier is the key -> shape of torchvision's ImageNet classifier, which the file may hold and
    the backbone drops; reshaped gives the file's shape of tensors the backbone holds in another
    shape of the same size (VGG's fully connected layers as convolutions). The backbone's own
    tensors all come from the file, as float32.
    """
    own = {key: tuple(value.shape) for key, value in backbone.state_dict().items()}
    expected = {**own, **(reshaped or {}), **classifier}
    counters = {key for key in own if key.endswith("num_batches_tracked")}
    state = read_state_dict(path, what)
    check_state_dict(state, expected, set(classifier) | counters, path, what)
    loaded = {key: value if key in counters else value.float().reshape(own[key])
              for key, value in state.items() if key not in classifier}
    for key in counters - set(loaded):
        loaded[key] = torch.tensor(0, dtype=torch.long)
    backbone.load_state_dict(loaded, assign=True)


def build_backbone(make, width, pretrained, what: str) -> nn.Module:
    """make() with random weights, or, given a checkpoint path, built without storage and filled
    from it (no random init of millions of weights to discard)."""
    if pretrained is None:
        return make()
    if check_width(width) != 1.0:
        raise ValueError(f"pretrained {what} weights fit width=1.0 only, got width={width!r}")
    with torch.device("meta"):
        backbone = make()
    backbone.load_torchvision(pretrained, what)
    return backbone
