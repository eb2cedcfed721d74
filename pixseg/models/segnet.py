"""SegNet (Badrinarayanan, Kendall & Cipolla, TPAMI 2017).

The encoder is VGG16-BN's 13 convs (torchvision's vgg16_bn layout, so its ImageNet file loads);
each 2x2 pool keeps the position of every maximum. The decoder mirrors it: each stage max-unpools
its input with the indices of the matching encoder pool (the maxima go back where they came from,
zeros elsewhere: a sparse map) and densifies it with 3x3 convs, each with BN and ReLU, as in the
reference's segnet_train.prototxt; the last conv maps 64 channels straight to the class scores.
Unpooling restores the exact size each pool saw, so the output is the input's size, aligned with
it, for any H, W.
"""

import torch
from torch import nn

from pixseg.models.backbones.vgg import VGG16, vgg16_bn
from pixseg.models.backbones.weights import scaled_channels
from pixseg.models.fcn import check_num_classes

# Output channels of the decoder's convs, stage 5 (first decoded) to stage 1; the final conv to
# the classes follows stage 1's.
DECODER = ((512, 512, 512), (512, 512, 256), (256, 256, 128), (128, 64), (64,))


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


def unpool(x: torch.Tensor, indices: torch.Tensor, size) -> torch.Tensor:
    """Inverse of vgg.pool_with_indices: each value back at its maximum's position, zeros elsewhere.

    F.max_unpool2d as a scatter into zeros (the same values and gradient): max_unpool2d's check of
    the output size cannot be traced, and a scatter exports to ONNX and TorchScript with the
    image size left free."""
    n, c = x.shape[:2]
    flat = x.new_zeros(n, c, size[-2] * size[-1]).scatter(2, indices.flatten(2), x.flatten(2))
    return flat.view(n, c, size[-2], size[-1])


class SegNet(nn.Module):
    """SegNet: logits N x num_classes x H x W for an N x 3 x H x W input of any size."""

    def __init__(self, backbone: VGG16, num_classes: int, width: float = 1.0):
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.backbone = backbone
        stages, in_channels = [], backbone.channels[3]
        for index, outs in enumerate(DECODER):
            layers = []
            for out in outs:
                out = scaled_channels(out, width)
                layers += conv_bn_relu(in_channels, out)
                in_channels = out
            if index == len(DECODER) - 1:
                layers.append(nn.Conv2d(in_channels, num_classes, 3, padding=1))
            stages.append(nn.Sequential(*layers))
        self.decoder = nn.ModuleList(stages)
        for module in self.decoder.modules():
            # He initialisation, as the reference's msra filler.
            if isinstance(module, nn.Conv2d) and not module.weight.is_meta:
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"SegNet input must be N x 3 x H x W, got shape {tuple(x.shape)}")
        x, pools = self.backbone.forward_with_indices(x)
        for stage, (indices, size) in zip(self.decoder, reversed(pools)):
            x = stage(unpool(x, indices, size))
        return x


def segnet(num_classes: int, *, width=1.0, pretrained=None) -> SegNet:
    """SegNet; `pretrained` is torchvision's vgg16_bn-*.pth file for the encoder (width 1 only)."""
    check_num_classes(num_classes)
    return SegNet(vgg16_bn(width=width, pretrained=pretrained), num_classes, width)
