"""Inference modes: the logits of a batch of normalised images, predicted whole, by sliding windows,
or at several scales and mirrored.

`infer(model, images, settings)` is what eval, predict, the CRF tuning, experiment and zoo call;
the modes only change how the model is applied, so every one of them returns logits N x C x H x W
aligned with the input, and a CRF after it gets the softmax of those averaged logits.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MODES = ("whole", "slide", "multiscale")


@dataclass
class InferenceConfig:
    # whole: one pass over the image. slide: windows of `crop` (height, width) every `stride`
    # pixels, the last one flush with the border, overlapping logits averaged; an image smaller
    # than the crop is padded. multiscale: the image resized by each of `scales` (and mirrored with
    # `flip`), each predicted whole, or by sliding windows where `crop` is set, the logits resized
    # back and averaged.
    mode: str = "whole"
    crop: tuple[int, int] | None = None
    # None: two thirds of the crop, so neighbouring windows overlap by a third.
    stride: tuple[int, int] | None = None
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    # Evaluation's DataLoader: images per forward pass and processes reading them. Neither
    # changes a result.
    batch_size: int = 1
    workers: int = 0


def check_inference(settings: InferenceConfig, name=lambda key: f"inference.{key}") -> InferenceConfig:
    """Raise ValueError naming the setting (as `name(key)` spells it: a config key or a flag),
    its value and what was expected; return `settings` when they are valid."""
    def fail(key, expected):
        value = getattr(settings, key)
        shown = list(value) if isinstance(value, tuple) else value
        raise ValueError(f"{name(key)} = {shown!r}; expected {expected}")

    if settings.mode not in MODES:
        fail("mode", f"one of {', '.join(MODES)}")
    for key in ("crop", "stride"):
        value = getattr(settings, key)
        if value is not None and (len(value) != 2 or min(value) < 1):
            fail(key, "two whole numbers >= 1 (height, width)")
    if settings.mode == "slide" and settings.crop is None:
        fail("crop", f"a window size (height, width) for {name('mode')} slide")
    if settings.mode == "whole" and settings.crop is not None:
        fail("crop", f"null: windows are for {name('mode')} slide or multiscale")
    if settings.stride is not None:
        if settings.crop is None:
            fail("stride", f"null without {name('crop')}")
        if any(s > c for s, c in zip(settings.stride, settings.crop)):
            fail("stride", f"at most the crop {list(settings.crop)} in each direction (a longer step "
                           "leaves pixels no window covers)")
    if not settings.scales or not all(math.isfinite(s) and s > 0 for s in settings.scales):
        fail("scales", "one or more positive numbers")
    if settings.mode != "multiscale" and (tuple(settings.scales) != (1.0,) or settings.flip):
        fail("scales" if tuple(settings.scales) != (1.0,) else "flip",
             f"{'[1.0]' if tuple(settings.scales) != (1.0,) else 'false'} unless {name('mode')} is multiscale")
    if settings.batch_size < 1:
        fail("batch_size", "a whole number >= 1")
    if settings.workers < 0:
        fail("workers", "a whole number >= 0")
    return settings


def prediction_settings(settings: InferenceConfig) -> dict:
    """The settings that change what is predicted (not batch size or workers), as a plain dict;
    the stride is the one used."""
    values = dataclasses.asdict(settings)
    if settings.crop is not None:
        values["stride"] = window_stride(settings)
    return {key: values[key] for key in ("mode", "crop", "stride", "scales", "flip")}


def inference_key(settings: InferenceConfig) -> dict:
    """What a cached result records of the inference settings: nothing for whole images, so results
    computed before the modes existed stay valid."""
    return {} if settings.mode == "whole" else {"inference": prediction_settings(settings)}


def settings_name(settings: InferenceConfig) -> str:
    """A short name of the prediction settings for file names: "" for whole images, else e.g.
    "_slide512x512s342x342" or "_ms0.75-1-1.25flip"."""
    if settings.mode == "whole":
        return ""
    windows = "" if settings.crop is None else "{}x{}s{}x{}".format(*settings.crop, *window_stride(settings))
    if settings.mode == "slide":
        return f"_slide{windows}"
    return f"_ms{'-'.join(f'{s:g}' for s in settings.scales)}{'flip' if settings.flip else ''}{windows}"


def settings_title(settings: InferenceConfig) -> str:
    """The prediction settings in words, for table titles: "whole images", "sliding 512 x 512
    windows every 342 x 342", "scales 0.75, 1, 1.25 and mirrored"."""
    windows = "" if settings.crop is None else "{} x {} windows every {} x {}".format(*settings.crop,
                                                                                   *window_stride(settings))
    if settings.mode == "whole":
        return "whole images"
    if settings.mode == "slide":
        return f"sliding {windows}"
    scales = f"scales {', '.join(f'{s:g}' for s in settings.scales)}{' and mirrored' if settings.flip else ''}"
    return f"{scales}, {windows}" if windows else scales


class Applied(torch.nn.Module):
    """`model` applied in one inference mode, as a module whose forward is `infer` (what a cost
    measurement times and counts)."""

    def __init__(self, model: torch.nn.Module, settings: InferenceConfig):
        super().__init__()
        self.model, self.settings = model, settings

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return infer(self.model, images, self.settings)


def forward(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    return model(images).float()


def window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Offsets of the windows along one side: every `stride`, the last one ending at the border."""
    last = max(size - crop, 0)
    return [*range(0, last, stride), last]


def window_stride(settings: InferenceConfig) -> tuple[int, int]:
    """The step between windows: the one set, else two thirds of the crop."""
    return settings.stride or tuple(max(1, math.ceil(2 * side / 3)) for side in settings.crop)


def slide(model: torch.nn.Module, images: torch.Tensor, crop, stride) -> torch.Tensor:
    """Logits from windows of `crop` (height, width) every `stride` pixels, averaged where they overlap."""
    height, width = images.shape[-2:]
    # Zero after normalisation is the mean colour: padding that reads as plain background.
    padded = F.pad(images, (0, max(crop[1] - width, 0), 0, max(crop[0] - height, 0)))
    total = count = None
    for top in window_starts(padded.shape[-2], crop[0], stride[0]):
        for left in window_starts(padded.shape[-1], crop[1], stride[1]):
            window = (..., slice(top, top + crop[0]), slice(left, left + crop[1]))
            logits = forward(model, padded[window])
            if total is None:
                total = logits.new_zeros((*logits.shape[:2], *padded.shape[-2:]))
                count = logits.new_zeros(padded.shape[-2:])
            total[window] += logits
            count[window[1:]] += 1
    return (total / count)[..., :height, :width]


def predict(model: torch.nn.Module, images: torch.Tensor, settings: InferenceConfig) -> torch.Tensor:
    return forward(model, images) if settings.crop is None else slide(model, images, settings.crop,
                                                                      window_stride(settings))


@torch.no_grad()
def infer(model: torch.nn.Module, images: torch.Tensor, settings: InferenceConfig | None = None) -> torch.Tensor:
    """Logits (float32 N x C x H x W) of `model` (in eval mode) for normalised images N x 3 x H x W."""
    settings = settings or InferenceConfig()
    if settings.mode != "multiscale":
        return predict(model, images, settings)
    size = tuple(images.shape[-2:])
    total = None
    passes = [(scale, mirrored) for scale in settings.scales for mirrored in ((False, True) if settings.flip else (False,))]
    for scale, mirrored in passes:
        scaled_size = tuple(max(1, round(side * scale)) for side in size)
        scaled = images if scaled_size == size else F.interpolate(images, scaled_size, mode="bilinear",
                                                                  align_corners=False)
        logits = predict(model, scaled.flip(-1) if mirrored else scaled, settings)
        logits = logits.flip(-1) if mirrored else logits
        if scaled_size != size:
            logits = F.interpolate(logits, size, mode="bilinear", align_corners=False)
        total = logits if total is None else total + logits
    return total / len(passes)
