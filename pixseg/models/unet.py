"""U-Net (Ronneberger, Fischer & Brox, MICCAI 2015): the common padded version and the original.

Padded (the default, as most ports build it): each step is two 3x3 convs padded by 1, each
followed by BatchNorm and ReLU (conv bias off: BN has its own), 2x2 max pools, and 2x2 transposed
convs halving the channels (or bilinear x2 with bilinear=True, where the deepest stage and the
decoder convs are halved instead). Pools round their output size up and each upsampled map is
cropped to its skip map's size from the top-left: a 2x2/2 pool's pixel i covers input pixels 2i
and 2i + 1, exactly the two a 2x2/2 transposed conv (or bilinear x2 interpolation with
align_corners=False) puts it back on, so the output lines up with the input for any size.

Original (valid=True): unpadded 3x3 convs with bias and ReLU, no BN, dropout at the end of the
contracting path, up-convolutions, centre-cropped skips. A 572 x 572 tile gives 388 x 388; in
general an output tile of size o needs an input tile of o + 184, with o = 16 k - 60 for k >= 4.
Any image is predicted with the overlap-tile strategy: the output is cut into tiles of at most
`tile` pixels a side, each computed from its window of the image with 92 pixels of context, the
context beyond the image mirrored.
"""

import torch
from torch import nn

from pixseg.models.backbones.weights import check_width, scaled_channels
from pixseg.models.fcn import check_num_classes

CHANNELS = (64, 128, 256, 512, 1024)
# Context the valid network consumes on each side of its output: 92 = (184 input - output) / 2.
VALID_MARGIN = 92


def double_conv(in_channels: int, out_channels: int, mid_channels: int, valid: bool) -> nn.Sequential:
    if valid:
        return nn.Sequential(nn.Conv2d(in_channels, mid_channels, 3), nn.ReLU(inplace=True),
                             nn.Conv2d(mid_channels, out_channels, 3), nn.ReLU(inplace=True))
    return nn.Sequential(
        nn.Conv2d(in_channels, mid_channels, 3, padding=1, bias=False), nn.BatchNorm2d(mid_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Up(nn.Module):
    """Upsample x2, join the skip map (channels: skip first), two 3x3 convs."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, bilinear: bool, valid: bool):
        super().__init__()
        self.valid = valid
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            joined = skip_channels + in_channels
            self.conv = double_conv(joined, out_channels, joined // 2, valid)
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
            self.conv = double_conv(skip_channels + in_channels // 2, out_channels, out_channels, valid)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        height, width = x.shape[-2:]
        if self.valid:
            # The skip map is larger; its centre lines up with the upsampled map.
            top, left = (skip.shape[-2] - height) // 2, (skip.shape[-1] - width) // 2
            skip = skip[..., top : top + height, left : left + width]
        else:
            x = x[..., : skip.shape[-2], : skip.shape[-1]]
        return self.conv(torch.cat([skip, x], dim=1))


def mirror_indices(start: int, stop: int, size: int) -> torch.Tensor:
    """Indices into a length-`size` axis for coordinates start .. stop - 1, mirrored at both ends
    (numpy's "reflect", repeated as often as needed, so any amount of context exists)."""
    coordinates = torch.arange(start, stop)
    if size == 1:
        return torch.zeros_like(coordinates)
    period = 2 * (size - 1)
    coordinates = coordinates.remainder(period)
    return torch.where(coordinates < size, coordinates, period - coordinates)


def valid_tile(size: int) -> int:
    """The smallest output size >= `size` the valid network produces (16 k - 60, k >= 4)."""
    return max(4, 16 * -(-(size + 60) // 16) - 60)


class UNet(nn.Module):
    """U-Net: logits N x num_classes x H x W for an N x 3 x H x W input of any size; see the module docstring."""

    def __init__(self, num_classes: int, width: float = 1.0, bilinear: bool = False, valid: bool = False,
                 tile: int = 388, dropout: float = 0.5):
        super().__init__()
        check_num_classes(num_classes)
        width = check_width(width)
        for name, value in (("bilinear", bilinear), ("valid", valid)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}")
        if isinstance(tile, bool) or not isinstance(tile, int) or tile < 4 or valid_tile(tile) != tile:
            raise ValueError(f"tile must be an output size the valid U-Net produces (16 k - 60 >= 4: 4, 20, "
                             f"36, ..., 388), got {tile!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        self.num_classes, self.valid, self.tile = num_classes, valid, tile
        channels = [scaled_channels(c, width) for c in CHANNELS]
        factor = 2 if bilinear else 1
        self.inc = double_conv(3, channels[0], channels[0], valid)
        # With bilinear upsampling the deepest stage and each decoder stage but the last are
        # halved, so the joined maps keep the channel counts of the transposed-conv version.
        stages = [*channels[:4], channels[4] // factor]
        self.downs = nn.ModuleList(double_conv(stages[i], stages[i + 1], stages[i + 1], valid) for i in range(4))
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=not valid)
        # The original drops out the deepest maps only; the padded version has no dropout.
        self.dropout = nn.Dropout(dropout if valid else 0.0)
        decoder = [stages[4], *[c // factor for c in channels[3:0:-1]], channels[0]]
        self.ups = nn.ModuleList(Up(decoder[i], channels[3 - i], decoder[i + 1], bilinear, valid) for i in range(4))
        self.outc = nn.Conv2d(channels[0], num_classes, 1)
        for module in self.modules():
            # He initialisation, as the paper draws its weights (std sqrt(2 / fan-in)).
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and not module.weight.is_meta:
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def network(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for index, down in enumerate(self.downs):
            x = down(self.pool(skips[-1]))
            skips.append(self.dropout(x) if index >= 2 else x)
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.outc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"U-Net input must be N x 3 x H x W, got shape {tuple(x.shape)}")
        if not self.valid:
            return self.network(x)
        height, width = x.shape[-2:]
        tile_h, tile_w = (min(self.tile, valid_tile(size)) for size in (height, width))
        rows = []
        for top in range(0, height, tile_h):
            row = []
            for left in range(0, width, tile_w):
                window = x.index_select(2, mirror_indices(top - VALID_MARGIN, top + tile_h + VALID_MARGIN, height))
                window = window.index_select(3, mirror_indices(left - VALID_MARGIN, left + tile_w + VALID_MARGIN,
                                                               width))
                row.append(self.network(window))
            rows.append(torch.cat(row, dim=3))
        return torch.cat(rows, dim=2)[..., :height, :width]


def unet(num_classes: int, *, width=1.0, bilinear=False, valid=False, tile=388, dropout=0.5) -> UNet:
    """U-Net; valid=True is the original (unpadded convs, overlap-tile prediction with output tiles
    of at most `tile` pixels, dropout at the end of the contracting path)."""
    return UNet(num_classes, width, bilinear, valid, tile, dropout)
