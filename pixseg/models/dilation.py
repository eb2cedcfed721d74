"""Multi-scale context aggregation by dilated convolutions (Yu & Koltun, ICLR 2016).

Front end: VGG16 with pool4 and pool5 removed (not replaced by stride-1 pools, as DeepLab does),
conv5 dilated by 2, fc6 a 7x7 conv with dilation 4 and 4096 channels, fc7 a 1x1 with 4096, dropout
0.5 after each, and a 1x1 to the classes drawn from N(0, 0.001): 134,346,581 parameters for 21
classes, at output stride 8. The reference convolves without padding and reflection-pads the
input by 186 pixels; here every conv is padded (fc6 by 12) so the maps keep the input's size over
8 and the logits are resampled to the input on the map's exact grid.

Context module (context="basic" or "large", the default): 3x3 convs with dilations 1, 1, 2, 4, 8,
16, 1, each followed by ReLU, then a 1x1 without; padded by their dilation as the reference code
does. Basic keeps C (= num_classes) channels in every layer (64 C^2 parameters); large has 2C, 2C,
4C, 8C, 16C, 32C, 32C, then C. Both start as the identity, which the paper found essential (random
initialisation failed): basic with the centre tap 1 from a channel to itself and 0 elsewhere;
large with C / c_out at the centre tap from input channel a to output channel b when
floor(a C / c_in) = floor(b C / c_out), and N(0, 0.01) noise elsewhere. context="none" is the
front end alone.
"""

import torch
from torch import nn

from pixseg.models.backbones import create_backbone
from pixseg.models.deeplab import VGG_BACKBONES, check_dropout
from pixseg.models.fcn import check_num_classes
from pixseg.models.layers import check_choice, check_input, to_input

CONTEXTS = ("none", "basic", "large")
DILATIONS = (1, 1, 2, 4, 8, 16, 1)
# Large module: each layer's channels as a multiple of C; the last 3x3 and the 1x1 keep 32 C -> C.
LARGE = (2, 2, 4, 8, 16, 32, 32)


def identity_init(conv: nn.Conv2d, noise: float) -> None:
    """The paper's identity initialisation for a conv from c_in to c_out channels carrying C classes
    (C = the smaller of the two counts here, as in every layer of the module)."""
    out_channels, in_channels = conv.weight.shape[:2]
    classes = min(in_channels, out_channels)
    a = torch.arange(in_channels) * classes // in_channels
    b = torch.arange(out_channels) * classes // out_channels
    centre = (b[:, None] == a[None, :]).float() * (classes / out_channels)
    with torch.no_grad():
        conv.weight.normal_(std=noise) if noise else conv.weight.zero_()
        middle = conv.weight.shape[-1] // 2
        mask = centre > 0
        conv.weight[..., middle, middle][mask] = centre[mask]
        conv.bias.zero_()


def context_module(num_classes: int, kind: str) -> nn.Sequential:
    multiples = (1,) * len(DILATIONS) if kind == "basic" else LARGE
    layers, in_channels = [], num_classes
    for multiple, dilation in zip(multiples, DILATIONS):
        out_channels = multiple * num_classes
        layers += [nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True)]
        in_channels = out_channels
    layers.append(nn.Conv2d(in_channels, num_classes, 1))
    noise = 0.0 if kind == "basic" else 0.01
    for layer in layers:
        if isinstance(layer, nn.Conv2d) and not layer.weight.is_meta:
            identity_init(layer, noise)
    return nn.Sequential(*layers)


class Dilation(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, context: str):
        super().__init__()
        # The front end drops the pools that lost their stride; they hold no parameters, so the
        # layer indices (and torchvision's key names) stay.
        for index, layer in enumerate(backbone.features):
            if isinstance(layer, nn.MaxPool2d) and layer.stride == 1:
                backbone.features[index] = nn.Identity()
        self.backbone = backbone
        self.final = nn.Conv2d(backbone.channels[3], num_classes, 1)
        if not self.final.weight.is_meta:
            nn.init.normal_(self.final.weight, std=0.001)
            nn.init.zeros_(self.final.bias)
        self.context = context_module(num_classes, context) if context != "none" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, "Dilation")
        logits = self.context(self.final(self.backbone(x)[3]))
        return to_input(logits, self.backbone.grids()[3], x.shape[-2:])


def dilation(num_classes: int, *, backbone="vgg16", output_stride=8, width=1.0, pretrained=None, dropout=0.5,
             context="large") -> Dilation:
    """Yu & Koltun's front end (VGG16 or VGG16-BN without pool4 / pool5) and context module
    ("basic", "large" or "none"); fc6 is dilated by 32 / output_stride."""
    check_num_classes(num_classes)
    check_dropout(dropout)
    check_choice("context", context, CONTEXTS)
    check_choice("backbone", backbone, VGG_BACKBONES)
    trunk = create_backbone(backbone, width=width, output_stride=output_stride, pretrained=pretrained, fc=True,
                            dropout=dropout, fc6_padding=3)
    return Dilation(trunk, num_classes, context)
