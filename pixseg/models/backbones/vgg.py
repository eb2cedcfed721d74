"""VGG16 and VGG16-BN with torchvision's parameter names, fc6 / fc7 optionally kept as convolutions.

`VGG16.features` is laid out exactly like torchvision's `vgg16` / `vgg16_bn` (`features.0` ...), and
with fc=True `classifier.0` / `classifier.3` are fc6 / fc7, held as a 7x7 and a 1x1 convolution the
way Long et al. recast them for FCNs; a torchvision checkpoint's fully connected weights are
reshaped into them on loading (torchvision flattens the 512 x 7 x 7 pool5 map channel-major, so
column c * 49 + 7 * y + x multiplies channel c at (y, x): kernel entry [:, c, y, x]).
"""

import torch
import torch.nn.functional as F
from torch import nn

from pixseg.models.backbones.weights import build_backbone, check_width, load_backbone_state, scaled_channels

# torchvision's configuration "D": output channels of each 3x3 conv, "M" for a 2x2 max pool.
CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
FC_CHANNELS = 4096
IMAGENET_CLASSES = 1000
OUTPUT_STRIDES = (8, 16, 32)


def check_output_stride(output_stride) -> int:
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {', '.join(map(str, OUTPUT_STRIDES))}, got {output_stride!r}")
    return output_stride


def layer_grid(layers, origin: float, stride: float) -> tuple[float, float]:
    """(origin, stride) of the map `layers` produce from a map whose pixel i sits at input
    coordinate origin + stride * i: a k x k conv or pool with dilation d, padding p and step s moves
    the origin by stride * (d * (k - 1) / 2 - p) and multiplies the stride by s."""
    for layer in layers:
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            kernel, step, padding, dilation = (
                v if isinstance(v, int) else v[0]
                for v in (layer.kernel_size, layer.stride, layer.padding, layer.dilation)
            )
            origin += stride * (dilation * (kernel - 1) / 2 - padding)
            stride *= step
    return origin, stride


def tapped(features: nn.Sequential, taps, x: torch.Tensor) -> list[torch.Tensor]:
    """`features` run on x, returning the maps just before each index in `taps` and the last one."""
    outputs, start = [], 0
    for end in [*taps, len(features)]:
        x = features[start:end](x)
        outputs.append(x)
        start = end
    return outputs


def pool_with_indices(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Size]:
    """VGG's 2x2 / 2 max pool (rounding up), with where each maximum came from and the input size."""
    pooled, indices = F.max_pool2d(x, 2, 2, ceil_mode=True, return_indices=True)
    return pooled, indices, x.shape[-2:]


class VGG16(nn.Module):
    """VGG16 conv1_1 .. pool5 (fc7 with fc=True) returning the pool2, pool3, pool4 and pool5 / fc7 maps.

    width scales every layer's channel count (fc6 / fc7 included); 1.0 is the published network and
    the only width a torchvision checkpoint fits. batch_norm puts a BatchNorm2d after every conv, in
    torchvision's vgg16_bn layout. Max pools round their output size up, so the stride-s map of an
    H x W input is ceil(H / s) x ceil(W / s) (torchvision rounds down, which changes no parameter).
    output_stride 16 or 8 replaces pool5 (and pool4) by a 3 x 3 stride-1 pool and dilates the
    layers after it, as DeepLab-LargeFOV and the Dilation front end do.
    first_padding is conv1_1's zero padding: 1 in torchvision, 100 in the FCNs (pool5 is then at
    least the 7 x 7 fc6 needs, for any input); fc6_padding 3 instead keeps fc6's output the size of
    pool5 for small inputs.
    """

    def __init__(self, width: float = 1.0, batch_norm: bool = False, output_stride: int = 32, fc: bool = False,
                 dropout: float = 0.5, first_padding: int = 1, fc6_padding: int = 0):
        super().__init__()
        width = check_width(width)
        check_output_stride(output_stride)
        for name, value in (("batch_norm", batch_norm), ("fc", fc)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        layers, taps, channels = [], [], []
        in_channels, stride, dilation = 3, 1, 1
        for item in CONFIG:
            if item == "M":
                if stride * 2 <= output_stride:
                    layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                    stride *= 2
                else:
                    layers.append(nn.MaxPool2d(3, stride=1, padding=1))
                    dilation *= 2
                taps.append(len(layers))
                channels.append(in_channels)
                continue
            out_channels = scaled_channels(item, width)
            padding = first_padding if not layers else dilation
            layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=padding, dilation=dilation))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        # Indices into `features` just past pool2, pool3 and pool4: the stride 4, 8, 16 outputs.
        self.taps = taps[1:4]
        self.channels = tuple(channels[1:])
        self.output_stride = output_stride
        self.strides = tuple(min(s, output_stride) for s in (4, 8, 16, 32))
        if fc:
            width_fc = scaled_channels(FC_CHANNELS, width)
            self.classifier = nn.Sequential(
                nn.Conv2d(in_channels, width_fc, 7, padding=fc6_padding * dilation, dilation=dilation),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Conv2d(width_fc, width_fc, 1),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
            )
            self.channels = (*self.channels[:3], width_fc)
        self.fc = fc
        for module in self.modules():
            # A meta-device model (built for a checkpoint to fill) has nothing to draw, and normal_
            # there costs seconds (it imports the compiler stack).
            if isinstance(module, nn.Conv2d) and not module.weight.is_meta:
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def grids(self) -> list[tuple[float, float]]:
        """(origin, stride) of each returned map: its pixel i sits at input coordinate origin + stride * i."""
        grids, start, grid = [], 0, (0.0, 1)
        for end in [*self.taps, len(self.features)]:
            grid = layer_grid(self.features[start:end], *grid)
            grids.append(grid)
            start = end
        if self.fc:
            grids[-1] = layer_grid(self.classifier, *grid)
        return grids

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = tapped(self.features, self.taps, x)
        if self.fc:
            outputs[-1] = self.classifier(outputs[-1])
        return outputs

    def forward_with_indices(self, x: torch.Tensor) -> tuple[torch.Tensor, list]:
        """pool5 and, for each of the five 2x2 pools, (argmax indices, size of the map it pooled),
        for decoders that unpool (SegNet, DeconvNet). Output stride 32 only: every pool strided."""
        if self.output_stride != 32:
            raise ValueError(f"pooling indices need output_stride 32, got {self.output_stride}")
        pools = []
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                x, indices, size = pool_with_indices(x)
                pools.append((indices, size))
            else:
                x = layer(x)
        return x, pools

    def load_torchvision(self, path, what: str = "VGG16") -> None:
        """Fill the network from torchvision's vgg16 / vgg16_bn checkpoint file at `path` (width 1)."""
        fc = {"classifier.0": (FC_CHANNELS, CONFIG[-2] * 49), "classifier.3": (FC_CHANNELS, FC_CHANNELS),
              "classifier.6": (IMAGENET_CLASSES, FC_CHANNELS)}
        shapes = {f"{name}.{kind}": shape if kind == "weight" else shape[:1]
                  for name, shape in fc.items() for kind in ("weight", "bias")}
        if self.fc:
            reshaped = {key: shapes[key] for key in ("classifier.0.weight", "classifier.3.weight")}
            classifier = {key: shape for key, shape in shapes.items() if key.startswith("classifier.6.")}
        else:
            reshaped, classifier = {}, shapes
        load_backbone_state(self, path, what, classifier, reshaped)

def build_vgg16(batch_norm: bool, width, output_stride, pretrained, fc, dropout, first_padding, fc6_padding):
    def make():
        return VGG16(width, batch_norm, output_stride, fc, dropout, first_padding, fc6_padding)

    return build_backbone(make, width, pretrained, "VGG16-BN" if batch_norm else "VGG16")


def vgg16(*, width=1.0, output_stride=32, pretrained=None, fc=False, dropout=0.5, first_padding=1,
          fc6_padding=0) -> VGG16:
    """VGG16 (torchvision `vgg16`); `pretrained` is a vgg16-*.pth file."""
    return build_vgg16(False, width, output_stride, pretrained, fc, dropout, first_padding, fc6_padding)


def vgg16_bn(*, width=1.0, output_stride=32, pretrained=None, fc=False, dropout=0.5, first_padding=1,
             fc6_padding=0) -> VGG16:
    """VGG16 with BatchNorm after every conv (torchvision `vgg16_bn`); `pretrained` is a vgg16_bn-*.pth file."""
    return build_vgg16(True, width, output_stride, pretrained, fc, dropout, first_padding, fc6_padding)
