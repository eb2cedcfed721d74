"""PSPNet (Zhao et al., CVPR 2017), as the authors' PyTorch code (semseg) builds it.

A dilated ResNet at output stride 8; the pyramid pooling module averages the last map over 1x1,
2x2, 3x3 and 6x6 bins, reduces each to a quarter of its channels (1x1 conv, BN, ReLU; 512 for
ResNet-50/101), upsamples them back (bilinear, align_corners=True as semseg) and concatenates them
with the map; a 3x3 conv to 512 (BN, ReLU, dropout 0.1) and a 1x1 give the classes. The auxiliary
head on the stride-16 stage (layer3: 3x3 conv to 256, BN, ReLU, dropout 0.1, 1x1) is trained with
the configured aux_weight (the paper's 0.4) and dropped at test time.

semseg's ResNet has a deep stem (three 3x3 convs, 128 channels into layer1); this one keeps
torchvision's 7x7 stem so torchvision's ImageNet checkpoints load. For ResNet-101 and 21 classes
that gives 65,584,725 parameters (semseg: 65,708,501) and 67,949,930 with the aux head
(68,073,706).
"""

import torch
import torch.nn.functional as F
from torch import nn

from pixseg.models.backbones.weights import scaled_channels
from pixseg.models.deeplab import RESNET_BACKBONES
from pixseg.models.fcn import check_num_classes
from pixseg.models.layers import check_flag, check_input, conv_bn_relu, fcn_head, make_backbone, outputs, to_input

BINS = (1, 2, 3, 6)


def bin_average_matrix(size: int, bins: int, dtype: torch.dtype, device) -> torch.Tensor:
    """bins x size: row i averages pixels floor(i size / bins) .. ceil((i + 1) size / bins) - 1,
    exactly the bins of F.adaptive_avg_pool2d along one axis."""
    index = torch.arange(bins, device=device)
    start = index * size // bins
    stop = ((index + 1) * size + bins - 1) // bins
    position = torch.arange(size, device=device)
    inside = (position >= start[:, None]) & (position < stop[:, None])
    return inside.to(dtype) / (stop - start)[:, None].to(dtype)


class BinAverage(nn.Module):
    """nn.AdaptiveAvgPool2d(bins) as two products with averaging matrices. The bin bounds are
    arithmetic on the map's size, so an exported graph (ONNX has no adaptive pooling) computes
    them for any size instead of keeping the traced example's."""

    def __init__(self, bins: int):
        super().__init__()
        self.bins = bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = bin_average_matrix(x.shape[-2], self.bins, x.dtype, x.device)
        columns = bin_average_matrix(x.shape[-1], self.bins, x.dtype, x.device)
        return rows @ x @ columns.T


class PyramidPooling(nn.Module):
    def __init__(self, in_channels: int, bins=BINS):
        super().__init__()
        self.stages = nn.ModuleList(nn.Sequential(BinAverage(b), conv_bn_relu(in_channels, in_channels // len(bins)))
                                    for b in bins)
        self.channels = in_channels + len(bins) * (in_channels // len(bins))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(stage(x), size, mode="bilinear", align_corners=True) for stage in self.stages]
        return torch.cat([x, *pooled], dim=1)


class PSPNet(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, width: float, aux: bool):
        super().__init__()
        self.backbone = backbone
        self.ppm = PyramidPooling(backbone.channels[3])
        channels = scaled_channels(512, width)
        self.head = nn.Sequential(conv_bn_relu(self.ppm.channels, channels, 3), nn.Dropout2d(0.1),
                                  nn.Conv2d(channels, num_classes, 1))
        self.aux = fcn_head(backbone.channels[2], num_classes, width) if aux else None

    def forward(self, x: torch.Tensor):
        check_input(x, "PSPNet")
        features = self.backbone(x)
        grids = self.backbone.grids()
        out = to_input(self.head(self.ppm(features[3])), grids[3], x.shape[-2:])
        aux = to_input(self.aux(features[2]), grids[2], x.shape[-2:]) if self.training and self.aux else None
        return outputs(out, aux, self.training)


def pspnet(num_classes: int, *, backbone="resnet101", output_stride=8, width=1.0, pretrained=None,
           aux=True) -> PSPNet:
    """PSPNet: pyramid pooling (bins 1, 2, 3, 6) on a dilated ResNet; aux adds the stride-16 auxiliary head."""
    check_num_classes(num_classes)
    check_flag("aux", aux)
    trunk = make_backbone(backbone, RESNET_BACKBONES, width, output_stride, pretrained)
    return PSPNet(trunk, num_classes, width, aux)
