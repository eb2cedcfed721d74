"""ImageNet backbones with torchvision's parameter names, behind one small contract.

The contract, which is all a head may rely on. A backbone is an `nn.Module` with

- `forward(x)`: x is N x 3 x H x W (any H, W >= 1); returns a list of four maps, the features at
  nominal strides 4, 8, 16 and 32, in that order. The map at actual stride s is
  ceil(H / s) x ceil(W / s).
- `channels`: tuple of the four maps' channel counts.
- `strides`: tuple of the four maps' actual strides: (4, 8, 16, 32) at output_stride 32,
  (4, 8, 16, 16) at 16, (4, 8, 8, 8) at 8.
- `output_stride`: 8, 16 or 32. Below 32 the later strides are replaced by dilation, so the
  stride-16 and stride-32 maps keep the resolution of the last strided one.
- `grids()`: (origin, stride) per map: pixel i of the map sits at input coordinate origin + stride * i
  (for heads that crop to align exactly, as FCN does).
- `load_torchvision(path)`: fill every backbone tensor from torchvision's ImageNet checkpoint file at
  `path`, strictly (a missing, extra or misshapen key is a ValueError naming it).

Every builder takes the keyword options `width` (channel multiplier; 1.0 is the published network
and the only width a checkpoint fits), `output_stride` and `pretrained` (a checkpoint path or None),
plus its own (VGG: `fc` keeps fc6 / fc7 as convolutions, `first_padding`, `fc6_padding`, `dropout`).
`create_backbone(name, **options)` builds one by name from BACKBONES, a plain dict.
"""

import inspect

from torch import nn

from pixseg.models.backbones.mobilenet import MobileNetV2, mobilenet_v2
from pixseg.models.backbones.resnet import ResNet, resnet18, resnet34, resnet50, resnet101
from pixseg.models.backbones.vgg import VGG16, vgg16, vgg16_bn

BACKBONES = {
    "vgg16": vgg16,
    "vgg16_bn": vgg16_bn,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "mobilenet_v2": mobilenet_v2,
}


def keyword_options(builder) -> dict:
    """A builder's keyword-only parameters (its options) with their defaults."""
    parameters = inspect.signature(builder).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY}


def check_options(valid, options: dict, what: str) -> None:
    """Raise ValueError naming any of `options` not among the `valid` names, and the valid ones."""
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option {', '.join(unknown)} for {what}; valid options: {', '.join(valid)}")


def create_backbone(name: str, **options) -> nn.Module:
    """Build backbone `name` (a key of BACKBONES) with the given options."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of: {', '.join(BACKBONES)}")
    check_options(keyword_options(BACKBONES[name]), options, f"backbone {name!r}")
    return BACKBONES[name](**options)


__all__ = ["BACKBONES", "MobileNetV2", "ResNet", "VGG16", "check_options", "create_backbone", "keyword_options"]
