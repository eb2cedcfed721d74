"""ResNet-18/34/50/101 with torchvision's parameter names (stride on the 3x3 conv, "v1.5").

The layers are torchvision's `resnet.py` without the ImageNet classifier: conv1, bn1, layer1 ..
layer4, each block with conv1 / bn1 / conv2 / bn2 (/ conv3 / bn3) and `downsample.0` / `.1`.
output_stride 16 or 8 is torchvision's replace_stride_with_dilation: layer4 (and layer3) keep
stride 1 and dilate their 3x3 convs instead, the first block of a dilated stage at the previous
rate. Unlike torchvision, basic blocks dilate too, so ResNet-18/34 also run at stride 8.
"""

import torch
from torch import nn

from pixseg.models.backbones.vgg import check_output_stride
from pixseg.models.backbones.weights import build_backbone, check_width, load_backbone_state, scaled_channels

IMAGENET_CLASSES = 1000


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels, planes, stride=1, downsample=None, dilations=(1, 1)):
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride, dilations[0])
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, 1, dilations[1])
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels, planes, stride=1, downsample=None, dilations=(1, 1)):
        super().__init__()
        # One 3x3 conv per block: it takes the first rate (the stage's entry rate in a dilated
        # stage's first block), as torchvision's does.
        self.conv1 = conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilations[0])
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    """A ResNet trunk returning the layer1 .. layer4 maps (strides 4, 8, 16, 32 at output_stride 32).

    The stride-s map of an H x W input is ceil(H / s) x ceil(W / s). width scales every channel
    count; only width 1 fits a torchvision checkpoint.
    """

    def __init__(self, block, layers, width: float = 1.0, output_stride: int = 32):
        super().__init__()
        width = check_width(width)
        check_output_stride(output_stride)
        self.in_channels = scaled_channels(64, width)
        self.dilation = 1
        self.conv1 = nn.Conv2d(3, self.in_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, stride = [], 4
        for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            step = 1 if index == 0 else 2
            dilate = stride * step > output_stride
            stride = stride if dilate else stride * step
            stages.append(self._make_layer(block, scaled_channels(planes, width), blocks, step, dilate))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.channels = tuple(scaled_channels(p, width) * block.expansion for p in (64, 128, 256, 512))
        self.strides = tuple(min(s, output_stride) for s in (4, 8, 16, 32))
        self.output_stride = output_stride
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and not module.weight.is_meta:
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes: int, blocks: int, stride: int, dilate: bool) -> nn.Sequential:
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.in_channels != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.in_channels, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        # The block that gave up its stride still runs at the previous rate, the rest at the new one.
        layers = [block(self.in_channels, planes, stride, downsample, (previous_dilation, self.dilation))]
        self.in_channels = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.in_channels, planes, 1, None, (self.dilation, self.dilation)))
        return nn.Sequential(*layers)

    def grids(self) -> list[tuple[float, float]]:
        """(origin, stride) of each returned map: every layer is padded symmetrically, so pixel i of
        the stride-s map sits at input coordinate s * i."""
        return [(0.0, stride) for stride in self.strides]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outputs = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            outputs.append(x)
        return outputs

    def load_torchvision(self, path, what: str = "ResNet") -> None:
        """Fill the network from torchvision's checkpoint file at `path` (width 1)."""
        classifier = {"fc.weight": (IMAGENET_CLASSES, self.channels[3]), "fc.bias": (IMAGENET_CLASSES,)}
        load_backbone_state(self, path, what, classifier)


def build_resnet(what: str, block, layers, width, output_stride, pretrained) -> ResNet:
    return build_backbone(lambda: ResNet(block, layers, width, output_stride), width, pretrained, what)


def resnet18(*, width=1.0, output_stride=32, pretrained=None) -> ResNet:
    """ResNet-18 (torchvision `resnet18`); `pretrained` is a resnet18-*.pth file."""
    return build_resnet("ResNet-18", BasicBlock, (2, 2, 2, 2), width, output_stride, pretrained)


def resnet34(*, width=1.0, output_stride=32, pretrained=None) -> ResNet:
    """ResNet-34 (torchvision `resnet34`); `pretrained` is a resnet34-*.pth file."""
    return build_resnet("ResNet-34", BasicBlock, (3, 4, 6, 3), width, output_stride, pretrained)


def resnet50(*, width=1.0, output_stride=32, pretrained=None) -> ResNet:
    """ResNet-50 (torchvision `resnet50`); `pretrained` is a resnet50-*.pth file."""
    return build_resnet("ResNet-50", Bottleneck, (3, 4, 6, 3), width, output_stride, pretrained)


def resnet101(*, width=1.0, output_stride=32, pretrained=None) -> ResNet:
    """ResNet-101 (torchvision `resnet101`); `pretrained` is a resnet101-*.pth file."""
    return build_resnet("ResNet-101", Bottleneck, (3, 4, 23, 3), width, output_stride, pretrained)
