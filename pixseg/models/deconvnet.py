"""DeconvNet (Noh, Hong & Han, ICCV 2015), after the reference's inference prototxt.

VGG16's conv1 .. conv5 with BatchNorm after every conv (torchvision's vgg16_bn layout, so its
ImageNet file loads) and 2x2 pools that keep their argmax positions; fc6 (7x7) and fc7 (1x1) as
convolutions with BN and ReLU; then the mirrored deconvolution network: a 7x7 transposed conv back
to 512 channels, and per stage an unpooling with the matching pool's indices followed by 3x3
transposed convs with BN and ReLU; a 1x1 conv scores the classes.

fc6_padding: the reference runs fc6 unpadded on 224 x 224 proposal crops, so pool5 (7 x 7) becomes
one fc6 pixel and the 7x7 transposed conv grows it back. Unpadded, pool5 must be at least 7 x 7
(inputs of 193 pixels and up). The default pads fc6 and the transposed conv by 3, so maps keep
pool5's size and any input works: the same parameters, the whole image seen as many windows.
"""

import torch
from torch import nn

from pixseg.models.backbones.vgg import VGG16, vgg16_bn
from pixseg.models.backbones.weights import scaled_channels
from pixseg.models.fcn import check_num_classes
from pixseg.models.segnet import unpool

FC_CHANNELS = 4096
# Output channels of the 3x3 deconvolutions, stage 5 (first decoded) to stage 1.
DECODER = ((512, 512, 512), (512, 512, 256), (256, 256, 128), (128, 64), (64, 64))
FC6_PADDINGS = (0, 3)


def with_bn_relu(layer: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(layer, nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class DeconvNet(nn.Module):
    """DeconvNet: logits N x num_classes x H x W for an N x 3 x H x W input (see fc6_padding)."""

    def __init__(self, backbone: VGG16, num_classes: int, width: float = 1.0, fc6_padding: int = 3):
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        if fc6_padding not in FC6_PADDINGS:
            raise ValueError(f"fc6_padding must be 0 (the reference) or 3 (any input size), got {fc6_padding!r}")
        self.fc6_padding = fc6_padding
        self.backbone = backbone
        pool5, fc = backbone.channels[3], scaled_channels(FC_CHANNELS, width)
        self.fc6 = with_bn_relu(nn.Conv2d(pool5, fc, 7, padding=fc6_padding), fc)
        self.fc7 = with_bn_relu(nn.Conv2d(fc, fc, 1), fc)
        self.fc6_deconv = with_bn_relu(nn.ConvTranspose2d(fc, pool5, 7, padding=fc6_padding), pool5)
        stages, in_channels = [], pool5
        for outs in DECODER:
            layers = []
            for out in outs:
                out = scaled_channels(out, width)
                layers.append(with_bn_relu(nn.ConvTranspose2d(in_channels, out, 3, padding=1), out))
                in_channels = out
            stages.append(nn.Sequential(*layers))
        self.decoder = nn.ModuleList(stages)
        self.score = nn.Conv2d(in_channels, num_classes, 1)
        for module in [self.fc6_deconv, *self.decoder]:
            for layer in module.modules():
                # The reference draws its deconvolutions from N(0, 0.01) with zero bias.
                if isinstance(layer, nn.ConvTranspose2d) and not layer.weight.is_meta:
                    nn.init.normal_(layer.weight, std=0.01)
                    nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"DeconvNet input must be N x 3 x H x W, got shape {tuple(x.shape)}")
        x, pools = self.backbone.forward_with_indices(x)
        if self.fc6_padding == 0 and min(x.shape[-2:]) < 7:
            raise ValueError(f"DeconvNet with fc6_padding=0 needs inputs of at least 193 x 193 (pool5 of 7 x 7), "
                             f"got {tuple(pools[0][1])}")
        x = self.fc6_deconv(self.fc7(self.fc6(x)))
        for stage, (indices, size) in zip(self.decoder, reversed(pools)):
            x = stage(unpool(x, indices, size))
        return self.score(x)


def deconvnet(num_classes: int, *, width=1.0, pretrained=None, fc6_padding=3) -> DeconvNet:
    """DeconvNet; `pretrained` is torchvision's vgg16_bn-*.pth file for conv1 .. conv5 (width 1 only)."""
    check_num_classes(num_classes)
    return DeconvNet(vgg16_bn(width=width, pretrained=pretrained), num_classes, width, fc6_padding)
