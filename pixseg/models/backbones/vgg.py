"""VGG16 in fully convolutional form, with torchvision's parameter names, and its checkpoint loader.

`VGG16.features` is laid out exactly like torchvision's (`features.0` ... `features.30`), and
`classifier.0` / `classifier.3` are fc6 / fc7, held as a 7x7 and a 1x1 convolution the way Long et
al. recast them for FCNs. `load_torchvision_vgg16` reads a torchvision ImageNet checkpoint
(`vgg16-*.pth`) and reshapes its fully connected weights into those convolutions.
"""

import math
import os

import torch
from torch import nn

# torchvision's configuration "D": output channels of each 3x3 conv, "M" for a 2x2 max pool.
CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
FC_CHANNELS = 4096
IMAGENET_CLASSES = 1000



def scaled_channels(channels: int, width: float) -> int:
    """Channel count `channels` scaled by the width multiplier, at least 1."""
    return max(1, round(channels * width))


def check_width(width) -> float:
    """Return `width` as a float, or raise ValueError unless it is a finite number > 0."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) or width <= 0:
        raise ValueError(f"width must be a finite number > 0, got {width!r}")
    return float(width)


class VGG16(nn.Module):
    """VGG16 conv1_1 .. fc7; `forward` returns the pool3, pool4 and fc7 maps.

    width scales every layer's channel count (fc6 / fc7 included); 1.0 is the published network and
    the only width a torchvision checkpoint fits. first_padding is conv1_1's zero padding: 1 in
    torchvision, 100 in the FCNs (pool5 is then at least the 7 x 7 fc6 needs, for any input);
    fc6_padding 3 instead keeps fc6's output the size of pool5 for small inputs. batch_norm puts a
    BatchNorm2d after every conv, in torchvision's vgg16_bn layout: deep plain VGGs trained from
    scratch often never leave "everything is background" without it. Max pools round
    their output size up (Caffe's behaviour, which the FCN crop offsets assume); torchvision rounds
    down, which changes no parameter.
    """

    def __init__(self, width: float = 1.0, dropout: float = 0.5, first_padding: int = 1, fc6_padding: int = 0,
                 batch_norm: bool = False):
        super().__init__()
        width = check_width(width)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        layers = []
        in_channels = 3
        for item in CONFIG:
            if item == "M":
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                continue
            out_channels = scaled_channels(item, width)
            padding = first_padding if not layers else 1
            layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=padding))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        # Indices into `features` just past pool3 and pool4: the FCN skip connections tap these outputs.
        pool_ends = [i + 1 for i, layer in enumerate(layers) if isinstance(layer, nn.MaxPool2d)]
        self.pool3_end, self.pool4_end = pool_ends[2], pool_ends[3]
        fc = scaled_channels(FC_CHANNELS, width)
        self.classifier = nn.Sequential(
            nn.Conv2d(in_channels, fc, 7, padding=fc6_padding),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(fc, fc, 1),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.pool3_channels = scaled_channels(256, width)
        self.pool4_channels = scaled_channels(512, width)
        self.out_channels = fc
        for module in self.modules():
            # A meta-device model (built for a checkpoint to fill) has nothing to draw, and normal_
            # there costs seconds (it imports the compiler stack).
            if isinstance(module, nn.Conv2d) and not module.weight.is_meta:
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pool3 = self.features[: self.pool3_end](x)
        pool4 = self.features[self.pool3_end : self.pool4_end](pool3)
        fc7 = self.classifier(self.features[self.pool4_end :](pool4))
        return pool3, pool4, fc7


def torchvision_vgg16_shapes() -> dict[str, tuple[int, ...]]:
    """The key -> shape layout of torchvision's `vgg16` state dict (fc8 = classifier.6 included)."""
    shapes = {}
    index, in_channels = 0, 3
    for item in CONFIG:
        if item == "M":
            index += 1
            continue
        shapes[f"features.{index}.weight"] = (item, in_channels, 3, 3)
        shapes[f"features.{index}.bias"] = (item,)
        index += 2  # the conv and its ReLU
        in_channels = item
    for name, out_features, in_features in (
        ("classifier.0", FC_CHANNELS, in_channels * 7 * 7),
        ("classifier.3", FC_CHANNELS, FC_CHANNELS),
        ("classifier.6", IMAGENET_CLASSES, FC_CHANNELS),
    ):
        shapes[f"{name}.weight"] = (out_features, in_features)
        shapes[f"{name}.bias"] = (out_features,)
    return shapes


def load_torchvision_vgg16(path) -> dict[str, torch.Tensor]:
    """Read a torchvision VGG16 checkpoint into a float32 state dict for `VGG16(width=1.0)`.

    The file must hold torchvision's exact keys and shapes; fc8 (`classifier.6.*`, the ImageNet
    classifier) may be present and is dropped. fc6's 4096 x 25088 matrix becomes a 4096 x 512 x 7 x 7
    kernel by a plain reshape: torchvision flattens the 512 x 7 x 7 pool5 map channel-major, so column
    c * 49 + 7 * y + x multiplies channel c at (y, x), which is kernel entry [:, c, y, x].
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"VGG16 checkpoint {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for a corrupt or foreign file
        raise ValueError(f"VGG16 checkpoint {path}: cannot be read as a torch state dict ({error})") from error
    if not isinstance(state, dict):
        raise ValueError(f"VGG16 checkpoint {path}: expected a state dict, found a {type(state).__name__}")

    expected = torchvision_vgg16_shapes()
    optional = {key for key in expected if key.startswith("classifier.6.")}
    missing = [key for key in expected if key not in state and key not in optional]
    extra = sorted(str(key) for key in state if key not in expected)
    if missing:
        raise ValueError(
            f"VGG16 checkpoint {path}: missing keys {', '.join(missing)} (expected torchvision's vgg16 layout)"
        )
    if extra:
        raise ValueError(
            f"VGG16 checkpoint {path}: unexpected keys {', '.join(extra)} (expected torchvision's vgg16 layout)"
        )
    for key, value in state.items():
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise ValueError(f"VGG16 checkpoint {path}: {key} is not a floating-point tensor")
        if tuple(value.shape) != expected[key]:
            raise ValueError(
                f"VGG16 checkpoint {path}: {key} has shape {tuple(value.shape)}, expected {expected[key]}"
            )

    # float32 whatever the file holds: the model's parameters become these very tensors.
    converted = {key: value.float() for key, value in state.items() if key not in optional}
    converted["classifier.0.weight"] = converted["classifier.0.weight"].reshape(FC_CHANNELS, -1, 7, 7)
    converted["classifier.3.weight"] = converted["classifier.3.weight"].reshape(FC_CHANNELS, FC_CHANNELS, 1, 1)
    return converted
