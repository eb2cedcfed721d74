"""MobileNetV2 with torchvision's parameter names (`features.0` ... `features.18`).

Each inverted residual block is torchvision's: `conv.0` a 1x1 expansion (conv + BN + ReLU6, absent
at expansion 1), then the 3x3 depthwise conv + BN + ReLU6, a linear 1x1 projection and its BN.
The returned maps are the last ones at strides 4, 8, 16 and 32: features.3 (24 channels), .6 (32),
.13 (96) and .18 (1280). output_stride 16 or 8 removes the later strides and dilates the depthwise
convs after them; the block that gave up its stride keeps the previous rate.
"""

import torch
from torch import nn

from pixseg.models.backbones.vgg import check_output_stride, tapped
from pixseg.models.backbones.weights import build_backbone, check_width, load_backbone_state

IMAGENET_CLASSES = 1000
# (expansion t, channels c, blocks n, stride of the first block s), the paper's Table 2.
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1))


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's channel rounding: to the nearest multiple of `divisor`, never 10% below `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn_relu(in_channels, out_channels, kernel=3, stride=1, groups=1, dilation=1) -> nn.Sequential:
    padding = (kernel - 1) // 2 * dilation
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, padding, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int, dilation: int = 1):
        super().__init__()
        hidden = int(round(in_channels * expansion))
        self.use_residual = stride == 1 and in_channels == out_channels
        layers = [conv_bn_relu(in_channels, hidden, kernel=1)] if expansion != 1 else []
        layers += [
            conv_bn_relu(hidden, hidden, stride=stride, groups=hidden, dilation=dilation),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2's feature extractor; width is torchvision's width_mult (channels rounded to 8)."""

    def __init__(self, width: float = 1.0, output_stride: int = 32):
        super().__init__()
        width = check_width(width)
        check_output_stride(output_stride)
        in_channels = make_divisible(32 * width)
        last_channels = make_divisible(1280 * max(1.0, width))
        layers = [conv_bn_relu(3, in_channels, stride=2)]
        taps, channels, stride, dilation = [], [], 2, 1
        for expansion, c, n, s in SETTINGS:
            out_channels = make_divisible(c * width)
            for i in range(n):
                step = s if i == 0 else 1
                rate = dilation
                if step > 1:
                    # The map so far is the last one at the current stride.
                    if stride >= 4:
                        taps.append(len(layers))
                        channels.append(in_channels)
                    if stride * step > output_stride:
                        dilation *= step
                        step = 1
                    else:
                        stride *= step
                layers.append(InvertedResidual(in_channels, out_channels, step, expansion, rate))
                in_channels = out_channels
        layers.append(conv_bn_relu(in_channels, last_channels, kernel=1))
        self.features = nn.Sequential(*layers)
        self.taps = taps
        self.channels = (*channels, last_channels)
        self.strides = tuple(min(s, output_stride) for s in (4, 8, 16, 32))
        self.output_stride = output_stride
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and not module.weight.is_meta:
                nn.init.kaiming_normal_(module.weight, mode="fan_out")

    def grids(self) -> list[tuple[float, float]]:
        """(origin, stride) of each returned map: every layer is padded symmetrically, so pixel i of
        the stride-s map sits at input coordinate s * i."""
        return [(0.0, stride) for stride in self.strides]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return tapped(self.features, self.taps, x)

    def load_torchvision(self, path, what: str = "MobileNetV2") -> None:
        """Fill the network from torchvision's mobilenet_v2-*.pth file at `path` (width 1)."""
        classifier = {"classifier.1.weight": (IMAGENET_CLASSES, self.channels[3]),
                      "classifier.1.bias": (IMAGENET_CLASSES,)}
        load_backbone_state(self, path, what, classifier)


def mobilenet_v2(*, width=1.0, output_stride=32, pretrained=None) -> MobileNetV2:
    """MobileNetV2 (torchvision `mobilenet_v2`); `pretrained` is a mobilenet_v2-*.pth file."""
    return build_backbone(lambda: MobileNetV2(width, output_stride), width, pretrained, "MobileNetV2")
