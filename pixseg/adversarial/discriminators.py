"""Discriminators that tell ground-truth label maps from predicted ones, given the image too.

A label map is C x H x W per image: a one-hot ground truth (zero at void pixels) or a network's
softmax. Three ways to show it to the discriminator, after Luc et al. (2016):

- basic: the image goes through two convolutions (3 -> 16 -> channels), the map through one
  (C -> channels), and the two feature maps are concatenated;
- product: each class map multiplied with each image channel (3C channels), so the discriminator
  sees the image content inside every class region;
- scaling: the basic discriminator, with ground-truth maps softened by the segmenter's own
  probabilities (`scaled_ground_truth`): a one-hot map is told from a softmax by its values alone
  (exact 0s and 1s), which teaches the segmenter nothing about the structure of its labelling.

The image and the map are first average-pooled by `downsample`: the paper's discriminators saw
label maps at their segmenter's output stride (8), and at full resolution the discriminator would
cost many times the narrow segmenters trained on a CPU. The trunk after the input is the same for
the three: 3x3 convolutions with ReLUs, two 2x poolings,
a 1x1 convolution to one channel and a global average, giving one logit per image (real > 0). No
normalisation layer: real and predicted maps go through in separate batches, and batch statistics
would tell them apart by themselves.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DISCRIMINATORS = ("basic", "product", "scaling")


def one_hot(labels: torch.Tensor, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """N x H x W integer labels as N x C x H x W float maps; void pixels are zero in every class."""
    valid = labels != ignore_index
    maps = F.one_hot(torch.where(valid, labels, 0).long(), num_classes).permute(0, 3, 1, 2).float()
    return maps * valid.unsqueeze(1)


def scaled_ground_truth(labels: torch.Tensor, probs: torch.Tensor, tau: float,
                        ignore_index: int = 255) -> torch.Tensor:
    """The ground truth softened by the segmenter's probabilities: at each pixel the true class l
    gets y_l = max(tau, s_l), and every other class k its share of the rest in the segmenter's
    proportions, y_k = s_k (1 - y_l) / (1 - s_l). Each pixel still sums to one and the true class
    still wins whenever tau > 0.5. Void pixels are zero, as in `one_hot`."""
    truth = one_hot(labels, probs.shape[1], ignore_index)
    s_true = (probs * truth).sum(1, keepdim=True)
    y_true = torch.clamp(s_true, min=tau)
    # Where s_true is 1 the others are 0 and get nothing; the clamp only avoids 0 / 0.
    others = probs * (1 - truth) * (1 - y_true) / torch.clamp(1 - s_true, min=1e-12)
    return (y_true * truth + others) * (labels != ignore_index).unsqueeze(1)


def product_input(image: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """N x 3C channels: channel 3c + k is class c's map times image channel k."""
    n, c, h, w = maps.shape
    return (maps.unsqueeze(2) * image.unsqueeze(1)).reshape(n, c * image.shape[1], h, w)


def _conv(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True)]


class Discriminator(nn.Module):
    """a(image, maps): one logit per image, > 0 for "a ground-truth map", for the `kind` of input
    (one of DISCRIMINATORS; scaling is the basic network, the softening is applied to the maps
    before they come in). `channels` sets the width: the trunk runs at 2x and 4x it; `downsample`
    the average pooling of image and maps before the first layer."""

    def __init__(self, num_classes: int, kind: str = "product", channels: int = 16, downsample: int = 4):
        super().__init__()
        if kind not in DISCRIMINATORS:
            raise ValueError(f"discriminator {kind!r}; expected one of {', '.join(DISCRIMINATORS)}")
        self.kind, self.downsample = kind, downsample
        if kind == "product":
            self.maps = nn.Sequential(*_conv(3 * num_classes, 2 * channels))
        else:
            self.image = nn.Sequential(*_conv(3, 16), *_conv(16, channels))
            self.maps = nn.Sequential(*_conv(num_classes, channels))
        self.trunk = nn.Sequential(
            *_conv(2 * channels, 2 * channels), nn.MaxPool2d(2, ceil_mode=True),
            *_conv(2 * channels, 4 * channels), nn.MaxPool2d(2, ceil_mode=True),
            *_conv(4 * channels, 4 * channels), nn.Conv2d(4 * channels, 1, 1),
        )

    def forward(self, image: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        if self.downsample > 1:
            # ceil_mode: an image smaller than the factor still gives one cell.
            image = F.avg_pool2d(image, self.downsample, ceil_mode=True)
            maps = F.avg_pool2d(maps, self.downsample, ceil_mode=True)
        if self.kind == "product":
            features = self.maps(product_input(image, maps))
        else:
            features = torch.cat([self.image(image), self.maps(maps)], 1)
        return self.trunk(features).mean((1, 2, 3))
