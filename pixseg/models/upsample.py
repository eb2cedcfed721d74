"""Score-map upsampling layers (interpolation or bilinear-initialised transposed conv) and their geometry.

Modes: "nearest" and "bilinear" interpolate with F.interpolate; "deconv_frozen" is a
transposed convolution fixed at bilinear interpolation; "deconv" starts there and is learned.
"""

import torch
import torch.nn.functional as F
from torch import nn

UPSAMPLE_MODES = ("nearest", "bilinear", "deconv_frozen", "deconv")


def bilinear_kernel(channels: int, factor: int) -> torch.Tensor:
    """Weights of a (2 * factor)-wide, stride-`factor` transposed conv that upsamples bilinearly.

    Tap t of the 1-D kernel weighs 1 - |t - c| / factor around the kernel's centre c = factor - 0.5,
    so every output pixel away from the border mixes its two nearest input samples linearly, the
    weights summing to 1 (Caffe's "bilinear" filler). Channels are upsampled independently: the
    off-diagonal channel pairs are zero, and a learned deconv may fill them in.
    """
    size = 2 * factor
    # On the CPU whatever the default device: the layer copies it in (a meta-device arange would
    # pull in the compiler stack, seconds for a few numbers).
    taps = 1 - (torch.arange(size, dtype=torch.float32, device="cpu") - (factor - 0.5)).abs() / factor
    weight = torch.zeros(channels, channels, size, size, device="cpu")
    weight[range(channels), range(channels)] = taps[:, None] * taps[None, :]
    return weight


class Interpolate(nn.Module):
    """F.interpolate by an integer factor as a layer; bilinear uses align_corners=False."""

    def __init__(self, factor: int, mode: str):
        super().__init__()
        self.factor = factor
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        align_corners = False if self.mode == "bilinear" else None
        return F.interpolate(x, scale_factor=self.factor, mode=self.mode, align_corners=align_corners)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, mode={self.mode!r}"


def check_mode(mode) -> str:
    """Return `mode`, or raise ValueError unless it is one of UPSAMPLE_MODES."""
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}; got {mode!r}")
    return mode


def make_upsampler(channels: int, factor: int, mode: str) -> nn.Module:
    """A layer that upsamples a `channels`-channel map by `factor` in the given mode."""
    if check_mode(mode) in ("nearest", "bilinear"):
        return Interpolate(factor, mode)
    layer = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, bias=False)
    with torch.no_grad():
        layer.weight.copy_(bilinear_kernel(channels, factor))
    layer.weight.requires_grad_(mode == "deconv")
    return layer


def upsampled_grid(origin: float, stride: float, factor: int, mode: str) -> tuple[float, float]:
    """Where the upsampled map's pixels sit, given that source pixel i sits at origin + stride * i.

    Both kinds of layer put output pixel o at source coordinate (o - (span - 1) / 2) / factor, where
    span is how many outputs one source pixel reaches: the kernel width 2 * factor for the transposed
    conv (its output starts half a kernel before the first source pixel's centre), `factor` for
    interpolation (align_corners=False, and nearest's floor(o / factor)). Returns the upsampled
    map's (origin, stride) in the same coordinates.
    """
    span = 2 * factor if check_mode(mode).startswith("deconv") else factor
    return origin - stride * (span - 1) / (2 * factor), stride / factor
