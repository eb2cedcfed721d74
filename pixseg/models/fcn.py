"""FCN-32s, FCN-16s and FCN-8s on the VGG16 backbone, as Long, Shelhamer & Darrell built them (CVPR 2015).

The layers follow the reference Caffe nets (voc-fcn32s / 16s / 8s): conv1_1 padded by 100, max
pools rounding up, fc6 / fc7 as convolutions with dropout, a 1x1 `score_fr`, zero-initialised
score layers on pool4 and pool3 fused by addition, and upsampling by bilinear-initialised transposed
convolutions (or plain interpolation, see `upsample.py`).

Alignment. Every map's pixel i sits at input coordinate origin + stride * i (the centre of its
receptive field): a k x k conv or pool with padding p and step s moves the origin by
stride * ((k - 1) / 2 - p) and multiplies the stride by s; `upsampled_grid` gives the same for the
upsampling layers. A skip map is cropped where it lines up with the upsampled map, and the output
where it lines up with the input. The offsets are computed from the layers at construction, so
they hold for every upsampling mode and every input size. For the transposed convolutions they are
the reference's: FCN-32s 19; FCN-16s 5 and 27; FCN-8s 5, 9 and 31. Interpolation starts its output
factor / 2 pixels later than the transposed conv, giving FCN-32s 3; FCN-16s 6 and 3; FCN-8s 6, 12, 3.

Padding. "classic" is the reference's conv1_1 padding of 100. It lets any input reach fc6's 7 x 7
window, but a 128 x 128 input is computed at 328 x 328 and fc6 runs on 15 x 15 instead of 4 x 4:
about six times the work. "compact" pads conv1_1 by 1 and fc6 by 3, as modern FCNs do, so the maps
are the input's size over the stride. Its upsampled scores then start before the skip maps (offset
-1 for the transposed conv, 0 for interpolation): a negative offset crops the upsampled scores to
the skip map instead of the skip map to them, and the sum lies on the skip map's grid.
"""

import torch
from torch import nn

from pixseg.models.backbones.vgg import VGG16, vgg16, vgg16_bn
from pixseg.models.layers import conv_bn_relu, make_backbone, outputs, to_input
from pixseg.models.upsample import check_mode, make_upsampler, upsampled_grid

OUTPUT_STRIDES = (32, 16, 8)
# Padding style -> (conv1_1 padding, fc6 padding); see the module docstring.
PADDINGS = {"classic": (100, 0), "compact": (1, 3)}


def _offset(inner: tuple[float, float], outer: tuple[float, float]) -> int:
    """Crop offset into the `outer` map that lines its pixels up with those of the `inner` map
    (negative: `inner` starts first, and is the one to crop, by minus the offset)."""
    offset = (inner[0] - outer[0]) / outer[1]
    assert inner[1] == outer[1] and offset.is_integer(), (inner, outer)
    return int(offset)


def _crop(x: torch.Tensor, offset: int, size) -> torch.Tensor:
    return x[..., offset : offset + size[0], offset : offset + size[1]]


def _fuse(score: torch.Tensor, skip: torch.Tensor, score_layer: nn.Module, offset: int) -> torch.Tensor:
    """Upsampled scores plus the skip map's scores, on the pixels where both are defined."""
    score_start, skip_start = max(-offset, 0), max(offset, 0)
    size = [min(a - score_start, b - skip_start) for a, b in zip(score.shape[-2:], skip.shape[-2:])]
    # Cropping before the 1x1 score layer gives what the reference computes (crop after) for less work.
    return _crop(score, score_start, size) + score_layer(_crop(skip, skip_start, size))


def check_num_classes(num_classes) -> int:
    """Return `num_classes`, or raise ValueError unless it is an integer >= 1."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    return num_classes


def _score_layer(in_channels: int, num_classes: int) -> nn.Conv2d:
    # Zero, as the reference: the net starts as its coarser version and learns to use the skip.
    layer = nn.Conv2d(in_channels, num_classes, 1)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class FCN(nn.Module):
    """FCN with output stride 32, 16 or 8: logits N x num_classes x H x W for an N x 3 x H x W input.

    backbone is a VGG16 with fc6 / fc7, padded as one of PADDINGS; the head taps its stride 8, 16
    and 32 maps (pool3, pool4, fc7) and their grids. upsample is one of UPSAMPLE_MODES. Any
    H, W >= 1 gives an output aligned pixel for pixel with the input.
    """

    def __init__(self, backbone: VGG16, num_classes: int, output_stride: int, upsample: str = "deconv"):
        super().__init__()
        check_num_classes(num_classes)
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}")
        check_mode(upsample)
        self.num_classes = num_classes
        self.output_stride = output_stride
        self.backbone = backbone
        _, pool3, pool4, grid = backbone.grids()
        _, pool3_channels, pool4_channels, fc7_channels = backbone.channels

        self.score_fr = _score_layer(fc7_channels, num_classes)
        if output_stride <= 16:
            self.upscore2 = make_upsampler(num_classes, 2, upsample)
            self.score_pool4 = _score_layer(pool4_channels, num_classes)
            grid = upsampled_grid(*grid, 2, upsample)
            self.pool4_offset = _offset(grid, pool4)
            grid = grid if self.pool4_offset >= 0 else pool4
        if output_stride == 8:
            self.upscore_pool4 = make_upsampler(num_classes, 2, upsample)
            self.score_pool3 = _score_layer(pool3_channels, num_classes)
            grid = upsampled_grid(*grid, 2, upsample)
            self.pool3_offset = _offset(grid, pool3)
            grid = grid if self.pool3_offset >= 0 else pool3
        # The reference names the final layer upscore (32s), upscore16 or upscore8; one name here.
        self.upscore = make_upsampler(num_classes, output_stride, upsample)
        self.offset = _offset((0.0, 1), upsampled_grid(*grid, output_stride, upsample))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"FCN input must be N x 3 x H x W, got shape {tuple(x.shape)}")
        _, pool3, pool4, fc7 = self.backbone(x)
        score = self.score_fr(fc7)
        if self.output_stride <= 16:
            score = _fuse(self.upscore2(score), pool4, self.score_pool4, self.pool4_offset)
        if self.output_stride == 8:
            score = _fuse(self.upscore_pool4(score), pool3, self.score_pool3, self.pool3_offset)
        return _crop(self.upscore(score), self.offset, x.shape[-2:])


def fcn_resnet_head(in_channels: int, num_classes: int) -> nn.Sequential:
    """torchvision's FCNHead: 3x3 conv to a quarter of the channels + BN + ReLU, dropout 0.1, 1x1."""
    return nn.Sequential(conv_bn_relu(in_channels, in_channels // 4, 3), nn.Dropout(0.1),
                         nn.Conv2d(in_channels // 4, num_classes, 1))


class FCNResNet(nn.Module):
    """torchvision's FCN on a ResNet: the head on the last map (dilated to the FCN's output stride,
    8 for torchvision's fcn_resnet50 / 101), logits resampled to the input's pixels; aux adds the
    same head on the stride-16 map, for training only."""

    def __init__(self, backbone: nn.Module, num_classes: int, aux: bool):
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.backbone = backbone
        self.classifier = fcn_resnet_head(backbone.channels[3], num_classes)
        self.aux_classifier = fcn_resnet_head(backbone.channels[2], num_classes) if aux else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"FCN input must be N x 3 x H x W, got shape {tuple(x.shape)}")
        features, grids = self.backbone(x), self.backbone.grids()
        out = to_input(self.classifier(features[3]), grids[3], x.shape[-2:])
        aux = None
        if self.training and self.aux_classifier is not None:
            aux = to_input(self.aux_classifier(features[2]), grids[2], x.shape[-2:])
        return outputs(out, aux, self.training)


RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")


def check_padding(padding) -> tuple[int, int]:
    """(conv1_1 padding, fc6 padding) for a padding style, or ValueError naming the styles."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {', '.join(PADDINGS)}; got {padding!r}")
    return PADDINGS[padding]


def build_fcn(output_stride: int, num_classes: int, width=1.0, upsample="deconv", pretrained=None, dropout=0.5,
              padding="classic", batch_norm=False, backbone="vgg16", aux=False) -> nn.Module:
    """An FCN; `pretrained` is torchvision's checkpoint file for the backbone (vgg16-*.pth,
    vgg16_bn-*.pth with batch_norm, resnet*-*.pth) to start from (width 1 only). On a ResNet it is
    torchvision's FCN-ResNet at this output stride; upsample, padding, dropout and batch_norm
    describe the VGG16 network only."""
    check_num_classes(num_classes)
    if backbone != "vgg16":
        vgg_only = {"upsample": (upsample, "deconv"), "padding": (padding, "classic"), "dropout": (dropout, 0.5),
                    "batch_norm": (batch_norm, False)}
        changed = [name for name, (value, default) in vgg_only.items() if value != default]
        if changed:
            raise ValueError(f"{', '.join(changed)} apply to the VGG16 FCN only, not to backbone={backbone!r}")
        if not isinstance(aux, bool):
            raise ValueError(f"aux must be True or False, got {aux!r}")
        trunk = make_backbone(backbone, RESNETS, width, output_stride, pretrained)
        return FCNResNet(trunk, num_classes, aux)
    if aux:
        raise ValueError("aux: the VGG16 FCN has no auxiliary head (it exists on the ResNet backbones)")
    check_mode(upsample)
    first_padding, fc6_padding = check_padding(padding)
    if not isinstance(batch_norm, bool):
        raise ValueError(f"batch_norm must be True or False, got {batch_norm!r}")
    trunk = (vgg16_bn if batch_norm else vgg16)(width=width, pretrained=pretrained, fc=True, dropout=dropout,
                                                first_padding=first_padding, fc6_padding=fc6_padding)
    return FCN(trunk, num_classes, output_stride, upsample)


def fcn32s(num_classes: int, *, width=1.0, upsample="deconv", pretrained=None, dropout=0.5,
           padding="classic", batch_norm=False, backbone="vgg16", aux=False) -> nn.Module:
    """FCN-32s: fc7's scores upsampled 32x in one step."""
    return build_fcn(32, num_classes, width, upsample, pretrained, dropout, padding, batch_norm, backbone, aux)


def fcn16s(num_classes: int, *, width=1.0, upsample="deconv", pretrained=None, dropout=0.5,
           padding="classic", batch_norm=False, backbone="vgg16", aux=False) -> nn.Module:
    """FCN-16s: fc7's scores upsampled 2x plus pool4's, then upsampled 16x."""
    return build_fcn(16, num_classes, width, upsample, pretrained, dropout, padding, batch_norm, backbone, aux)


def fcn8s(num_classes: int, *, width=1.0, upsample="deconv", pretrained=None, dropout=0.5,
          padding="classic", batch_norm=False, backbone="vgg16", aux=False) -> nn.Module:
    """FCN-8s: as FCN-16s, then 2x plus pool3's scores, then upsampled 8x."""
    return build_fcn(8, num_classes, width, upsample, pretrained, dropout, padding, batch_norm, backbone, aux)
