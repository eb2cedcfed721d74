"""DeepLab v1 (LargeFOV) and v2 (ASPP-L): atrous backbones with dilated classifier heads.

v1, DeepLab-LargeFOV (Chen et al., ICLR 2015): VGG16 at output stride 8 (pool4 and pool5 keep
stride 1, conv5 dilated by 2), fc6 a 3x3 conv with dilation 12 and 1024 channels, fc7 a 1x1 with
1024, ReLU and dropout 0.5 after each, fc8 a 1x1 to the classes: 20,505,429 parameters for 21.
Departures from the Caffe net, which change no parameter: the strided pools are torchvision's 2x2
(Caffe's are 3x3 with padding 1) and pool4 / pool5 are 3x3 stride-1 pools padded by 1; fc6 and fc7
start random, where the paper subsamples 1024 of VGG's 4096 fully connected filters.

v2 with ASPP-L (Chen et al., TPAMI 2018), as the reference port of the Caffe ResNet-101 net builds
it: ResNet-101 at output stride 8, four parallel 3x3 convs straight to the classes with rates 6,
12, 18 and 24, biased, drawn from N(0, 0.01), their outputs summed: 44,048,532 parameters for 21
classes. (The VGG16 version of the paper has fc6-fc7-fc8 per branch instead.) The multi-scale
input fusion (MSC) is left to inference-time augmentation.

Both take `output_stride` (rates are given at 8 and scaled so the field of view in input pixels
stays), `width` and `pretrained` (torchvision's backbone checkpoint). Logits are resampled to the
input on the exact grid of the backbone's map (see layers.py).
"""

import torch
from torch import nn

from pixseg.models.backbones.weights import scaled_channels
from pixseg.models.fcn import check_num_classes
from pixseg.models.layers import check_input, make_backbone, scaled_rates, to_input

VGG_BACKBONES = ("vgg16", "vgg16_bn")
RESNET_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v2")


class DeepLabV1(nn.Module):
    """DeepLab-LargeFOV: backbone, fc6 (3x3, dilated), fc7 (1x1), fc8 (1x1 to the classes)."""

    def __init__(self, backbone: nn.Module, num_classes: int, width: float, rate: int, dropout: float):
        super().__init__()
        self.backbone = backbone
        channels = scaled_channels(1024, width)
        self.head = nn.Sequential(
            nn.Conv2d(backbone.channels[3], channels, 3, padding=rate, dilation=rate), nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(channels, channels, 1), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Conv2d(channels, num_classes, 1),
        )
        for module in self.head.modules():
            if isinstance(module, nn.Conv2d) and not module.weight.is_meta:
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, "DeepLab-v1")
        features = self.backbone(x)[3]
        return to_input(self.head(features), self.backbone.grids()[3], x.shape[-2:])


class ASPPSum(nn.Module):
    """DeepLab-v2's ASPP: parallel dilated 3x3 convs to the classes, summed."""

    def __init__(self, in_channels: int, num_classes: int, rates):
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(in_channels, num_classes, 3, padding=r, dilation=r) for r in rates)
        for branch in self.branches:
            if not branch.weight.is_meta:
                nn.init.normal_(branch.weight, std=0.01)
                nn.init.zeros_(branch.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(branch(x) for branch in self.branches)


class DeepLabV2(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, rates):
        super().__init__()
        self.backbone = backbone
        self.head = ASPPSum(backbone.channels[3], num_classes, rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, "DeepLab-v2")
        features = self.backbone(x)[3]
        return to_input(self.head(features), self.backbone.grids()[3], x.shape[-2:])


def check_dropout(dropout) -> float:
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
    return dropout


def deeplab_v1(num_classes: int, *, backbone="vgg16", output_stride=8, width=1.0, pretrained=None,
               dropout=0.5) -> DeepLabV1:
    """DeepLab-LargeFOV; backbone vgg16 or vgg16_bn; fc6's rate is 12 at output stride 8."""
    check_num_classes(num_classes)
    check_dropout(dropout)
    trunk = make_backbone(backbone, VGG_BACKBONES, width, output_stride, pretrained)
    return DeepLabV1(trunk, num_classes, width, scaled_rates((12,), 8, output_stride)[0], dropout)


def deeplab_v2(num_classes: int, *, backbone="resnet101", output_stride=8, width=1.0, pretrained=None) -> DeepLabV2:
    """DeepLab-v2 with ASPP-L (rates 6, 12, 18, 24 at output stride 8) on a ResNet or MobileNetV2."""
    check_num_classes(num_classes)
    trunk = make_backbone(backbone, RESNET_BACKBONES, width, output_stride, pretrained)
    return DeepLabV2(trunk, num_classes, scaled_rates((6, 12, 18, 24), 8, output_stride))
