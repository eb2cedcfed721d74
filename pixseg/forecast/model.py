"""The S2S forecaster: a coarse network on the inputs at half resolution, refined by a full-resolution
network that sees the inputs and the upsampled coarse output, and adds that output to its own.

A window is a tensor N×T×K×H×W: T past frames, each K channels (C class probability maps, then 3
image channels for the variants that see frames). The model returns the next frame's channels at both
scales, (fine N×K'×H×W, coarse N×K'×H/2×W/2). The published network has no activation after its last
layer (`residual=False`). The default adds the newest input to the output and takes a softmax over the
classes, so the class maps are probabilities and an untrained model is close to copy-last.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# name -> (sees frames, predicts frames). XS2S sees the frames but cannot roll out past one step (it
# would need frames it does not predict); XS2XS predicts them too.
MODELS = {
    "s2s": (False, False),
    "xs2s": (True, False),
    "xs2xs": (True, True),
}
IMAGE_CHANNELS = 3
# Logit given to the newest input's class: an untrained model's forecast keeps it with probability
# about 0.9 (e^5 / (e^5 + 18) for 19 classes).
RESIDUAL_GAIN = 5.0


def _convs(channels: list[int], kernels: list[int]) -> nn.Sequential:
    """Padded convolutions with ReLU between them and none after the last."""
    layers = []
    for k, (c_in, c_out) in enumerate(zip(channels, channels[1:])):
        layers.append(nn.Conv2d(c_in, c_out, kernels[k], padding=kernels[k] // 2))
        if k < len(kernels) - 1:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class S2S(nn.Module):
    """Two-scale forecaster; `width` scales the hidden channels (1.0: 128, 256, 128 as published).

    With `residual` both scales add the newest input frame to their output (its class maps times
    RESIDUAL_GAIN, as logits) and take a softmax over the classes, so the network learns the change
    from copy-last. In short CPU runs on synthetic video the published network, without this path,
    forecast background everywhere; with the path but no softmax, the L1 loss drove the change to
    zero everywhere (exactly copy-last: L1 keeps a pixel unchanged unless a change is more likely
    than not), where the softmax stops pulling once a pixel is confidently right.
    """

    def __init__(self, num_classes: int, inputs: int = 4, frames_in: bool = False, frames_out: bool = False,
                 width: float = 1.0, residual: bool = True):
        super().__init__()
        self.residual = residual
        if not width > 0:
            raise ValueError(f"width must be positive, got {width!r}")
        self.num_classes, self.inputs = num_classes, inputs
        self.in_channels = num_classes + IMAGE_CHANNELS * frames_in
        self.out_channels = num_classes + IMAGE_CHANNELS * frames_out
        hidden = [max(1, round(c * width)) for c in (128, 256, 128)]
        stacked = inputs * self.in_channels
        self.coarse = _convs([stacked, *hidden, self.out_channels], [3, 3, 3, 3])
        self.fine = _convs([stacked + self.out_channels, *hidden, self.out_channels], [5, 3, 3, 5])

    def forward(self, window: torch.Tensor):
        n, t, k, h, w = window.shape
        if (t, k) != (self.inputs, self.in_channels):
            raise ValueError(f"the model takes windows of {self.inputs} frames of {self.in_channels} channels, "
                             f"got {t} of {k}")
        x = window.reshape(n, t * k, h, w)
        coarse = self.coarse(F.avg_pool2d(x, 2))
        up = F.interpolate(coarse, size=(h, w), mode="nearest")
        fine = self.fine(torch.cat([x, up], 1)) + up
        if not self.residual:
            return fine, coarse
        c = self.num_classes
        last = window[:, -1, :self.out_channels].clone()
        last[:, :c] = last[:, :c] * RESIDUAL_GAIN
        return self._activate(fine + last), self._activate(coarse + F.avg_pool2d(last, 2))

    def _activate(self, out: torch.Tensor) -> torch.Tensor:
        c = self.num_classes
        return torch.cat([out[:, :c].softmax(1), out[:, c:]], 1)



def create_forecaster(name: str, num_classes: int, inputs: int = 4, width: float = 1.0,
                      residual: bool = True) -> S2S:
    if name not in MODELS:
        raise ValueError(f"forecast model {name!r} is not one of {', '.join(MODELS)}")
    frames_in, frames_out = MODELS[name]
    return S2S(num_classes, inputs, frames_in=frames_in, frames_out=frames_out, width=width, residual=residual)


def rollout(model, window: torch.Tensor, steps: int, all_scales: bool = False) -> list:
    """Forecast `steps` frames ahead one at a time: each prediction joins the window as its newest
    frame and the oldest leaves. Returns each step's fine-scale prediction, oldest first, or with
    all_scales=True everything the model returned for it."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    outputs = []
    for step in range(steps):
        output = model(window)
        outputs.append(output if all_scales else output[0])
        if step + 1 < steps:
            prediction = output[0]
            if prediction.shape[1] != window.shape[2]:
                raise ValueError(f"a model predicting {prediction.shape[1]} of its {window.shape[2]} input "
                                 "channels cannot roll out past one step (xs2s does not predict frames; "
                                 "use s2s or xs2xs)")
            window = torch.cat([window[:, 1:], prediction[:, None]], 1)
    return outputs
