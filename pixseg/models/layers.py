"""Pieces the context-family heads share: resampling between map grids, conv + BN + ReLU blocks,
the auxiliary FCN head, and the checks on their options.

Alignment. A backbone's map pixel i sits at input coordinate origin + stride * i (its `grids()`).
`resample` reads a map at the positions of another grid by bilinear interpolation on those exact
coordinates, so a head's output lines up with its input for every input size; interpolating by
size ratio (align_corners=False, as torchvision does) shifts the output by up to (stride - 1) / 2
pixels instead.
"""

import torch
import torch.nn.functional as F
from torch import nn

from pixseg.models.backbones import BACKBONES, create_backbone
from pixseg.models.backbones.weights import scaled_channels

Grid = tuple[float, float]


def _axis(size: int, source: Grid, source_size: int, target: Grid, device, dtype) -> torch.Tensor:
    """grid_sample's normalised coordinates (align_corners=True) of the target pixels in the source map."""
    index = (target[0] + target[1] * torch.arange(size, device=device, dtype=dtype) - source[0]) / source[1]
    return index * (2 / (source_size - 1)) - 1 if source_size > 1 else torch.zeros_like(index)


def resample(x: torch.Tensor, source: Grid, target: Grid, size) -> torch.Tensor:
    """The map x (on grid `source`) read bilinearly at the `size` pixels of grid `target`; beyond
    its first and last pixels the map is extended by its border values."""
    height, width = size
    ys = _axis(height, source, x.shape[-2], target, x.device, x.dtype)
    xs = _axis(width, source, x.shape[-1], target, x.device, x.dtype)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1).expand(x.shape[0], height, width, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def to_input(x: torch.Tensor, grid: Grid, size) -> torch.Tensor:
    """Logits on `grid` resampled to the input's pixels."""
    return resample(x, grid, (0.0, 1.0), size)


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    """A padded conv without bias (BN has one), BatchNorm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=(kernel - 1) // 2 * dilation, dilation=dilation,
                  bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def separable_conv_bn_relu(in_channels: int, out_channels: int, dilation: int = 1) -> nn.Sequential:
    """DeepLabv3+'s depthwise-separable 3x3: depthwise conv + BN + ReLU, then pointwise conv + BN + ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, padding=dilation, dilation=dilation, groups=in_channels, bias=False),
        nn.BatchNorm2d(in_channels),
        nn.ReLU(inplace=True),
        conv_bn_relu(in_channels, out_channels),
    )


def fcn_head(in_channels: int, num_classes: int, width: float, dropout: float = 0.1) -> nn.Sequential:
    """torchvision's FCNHead (also PSPNet's auxiliary head): 3x3 conv to 256 + BN + ReLU, dropout, 1x1."""
    channels = scaled_channels(256, width)
    return nn.Sequential(conv_bn_relu(in_channels, channels, 3), nn.Dropout(dropout),
                         nn.Conv2d(channels, num_classes, 1))


def check_input(x: torch.Tensor, what: str) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{what} input must be N x 3 x H x W, got shape {tuple(x.shape)}")


def check_choice(name: str, value, choices) -> None:
    if isinstance(value, bool) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


def check_flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def make_backbone(name, choices, width, output_stride, pretrained) -> nn.Module:
    """Backbone `name`, one of `choices` (the ones a head is built for), at the given stride."""
    check_choice("backbone", name, [c for c in BACKBONES if c in choices])
    return create_backbone(name, width=width, output_stride=output_stride, pretrained=pretrained)


def scaled_rates(rates, at_stride: int, output_stride: int) -> tuple[int, ...]:
    """Dilation rates given at output stride `at_stride`, for `output_stride`: the same receptive
    field in input pixels, so halving the stride doubles the rates (DeepLabv3's 6/12/18 at 16,
    12/24/36 at 8)."""
    return tuple(max(1, round(rate * at_stride / output_stride)) for rate in rates)


def outputs(out: torch.Tensor, aux: torch.Tensor | None, training: bool):
    """The model contract: logits, or {"out", "aux"} in training when there is an auxiliary head."""
    return {"out": out, "aux": aux} if training and aux is not None else out
