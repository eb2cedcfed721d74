"""DeepLab v3 (Chen et al., arXiv:1706.05587) and v3+ (Chen et al., ECCV 2018).

ASPP: a 1x1 conv, three 3x3 convs with rates 6, 12, 18 at output stride 16 (doubled at 8) and
image pooling (global average, 1x1 conv, broadcast back), each 256 channels with BN and ReLU,
concatenated and projected by a 1x1 conv to 256 with BN and ReLU.

deeplab_v3, head="paper" (the default): ASPP, then a 1x1 conv to the classes; ResNet-101 gives
58,040,661 parameters for 21 classes. head="torchvision": torchvision's DeepLabHead, which adds
dropout 0.5 after the projection and a 3x3 conv (256, BN, ReLU) before the classifier: 58,630,997,
and 60,996,202 with aux=True (torchvision's FCNHead on the stride-16 map, trained with the
configured aux_weight). The default output stride is the paper's 16 (its training setting;
torchvision runs at 8); output_stride=8 doubles the rates.

deeplab_v3plus: the v3 encoder (without its classifier) at output stride 16, and the decoder:
the encoder's map resampled to the stride-4 map's grid, concatenated with that map reduced to 48
channels (1x1, BN, ReLU), two 3x3 convs (256, BN, ReLU) and a 1x1 to the classes: 59,344,309
parameters with ResNet-101 for 21 classes. separable=True makes the ASPP's 3x3 convs and the
decoder's depthwise-separable (depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU), the paper's
cheaper variant. The paper's decoder has two 3x3 convs; smp's and VainF's have one.

The image-pooling branch normalises a 1 x 1 map over the batch, so training needs batches of at
least two images (torchvision's has the same limit). No multi-grid (torchvision has none either).
"""

import torch
from torch import nn

from pixseg.models.backbones.weights import scaled_channels
from pixseg.models.deeplab import RESNET_BACKBONES
from pixseg.models.fcn import check_num_classes
from pixseg.models.layers import (check_choice, check_flag, check_input, conv_bn_relu, fcn_head, make_backbone,
                                  outputs, resample, scaled_rates, separable_conv_bn_relu, to_input)

HEADS = ("paper", "torchvision")


class ImagePooling(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = conv_bn_relu(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            raise ValueError("DeepLab's image-pooling branch normalises over the batch: training needs "
                             "batch_size >= 2")
        return self.conv(self.pool(x)).expand(-1, -1, *x.shape[-2:])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with image pooling, concatenated and projected."""

    def __init__(self, in_channels: int, channels: int, rates, separable: bool = False, dropout: float = 0.0):
        super().__init__()
        atrous = [separable_conv_bn_relu(in_channels, channels, r) if separable
                  else conv_bn_relu(in_channels, channels, 3, r) for r in rates]
        self.branches = nn.ModuleList([conv_bn_relu(in_channels, channels), *atrous,
                                       ImagePooling(in_channels, channels)])
        self.project = nn.Sequential(conv_bn_relu(channels * len(self.branches), channels), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class DeepLabV3(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, width: float, rates, head: str, aux: bool):
        super().__init__()
        self.backbone = backbone
        channels = scaled_channels(256, width)
        if head == "paper":
            self.head = nn.Sequential(ASPP(backbone.channels[3], channels, rates), nn.Conv2d(channels, num_classes, 1))
        else:
            self.head = nn.Sequential(ASPP(backbone.channels[3], channels, rates, dropout=0.5),
                                      conv_bn_relu(channels, channels, 3), nn.Conv2d(channels, num_classes, 1))
        self.aux = fcn_head(backbone.channels[2], num_classes, width) if aux else None

    def forward(self, x: torch.Tensor):
        check_input(x, "DeepLab-v3")
        features = self.backbone(x)
        grids = self.backbone.grids()
        out = to_input(self.head(features[3]), grids[3], x.shape[-2:])
        aux = to_input(self.aux(features[2]), grids[2], x.shape[-2:]) if self.training and self.aux else None
        return outputs(out, aux, self.training)


class DeepLabV3Plus(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, width: float, rates, separable: bool):
        super().__init__()
        self.backbone = backbone
        channels, reduced = scaled_channels(256, width), scaled_channels(48, width)
        self.encoder = ASPP(backbone.channels[3], channels, rates, separable)
        self.reduce = conv_bn_relu(backbone.channels[0], reduced)
        joined = channels + reduced
        if separable:
            convs = [separable_conv_bn_relu(joined, channels), separable_conv_bn_relu(channels, channels)]
        else:
            convs = [conv_bn_relu(joined, channels, 3), conv_bn_relu(channels, channels, 3)]
        self.decoder = nn.Sequential(*convs, nn.Conv2d(channels, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, "DeepLab-v3+")
        low, _, _, deep = self.backbone(x)
        low_grid, _, _, deep_grid = self.backbone.grids()
        encoded = resample(self.encoder(deep), deep_grid, low_grid, low.shape[-2:])
        logits = self.decoder(torch.cat([encoded, self.reduce(low)], dim=1))
        return to_input(logits, low_grid, x.shape[-2:])


def deeplab_v3(num_classes: int, *, backbone="resnet101", output_stride=16, width=1.0, pretrained=None,
               head="paper", aux=False) -> DeepLabV3:
    """DeepLab-v3: ASPP with image pooling; head "paper" or "torchvision"; aux adds torchvision's
    auxiliary FCN head on the stride-16 map (training only)."""
    check_num_classes(num_classes)
    check_choice("head", head, HEADS)
    check_flag("aux", aux)
    trunk = make_backbone(backbone, RESNET_BACKBONES, width, output_stride, pretrained)
    return DeepLabV3(trunk, num_classes, width, scaled_rates((6, 12, 18), 16, output_stride), head, aux)


def deeplab_v3plus(num_classes: int, *, backbone="resnet101", output_stride=16, width=1.0, pretrained=None,
                   separable=False) -> DeepLabV3Plus:
    """DeepLab-v3+: the v3 encoder and a decoder with 48-channel stride-4 features; separable=True
    uses depthwise-separable 3x3 convs in the ASPP and the decoder."""
    check_num_classes(num_classes)
    check_flag("separable", separable)
    trunk = make_backbone(backbone, RESNET_BACKBONES, width, output_stride, pretrained)
    return DeepLabV3Plus(trunk, num_classes, width, scaled_rates((6, 12, 18), 16, output_stride), separable)
