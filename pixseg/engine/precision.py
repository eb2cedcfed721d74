"""Mixed precision: which autocast type and gradient scaler a device trains with."""

from __future__ import annotations

import torch


def autocast(device, enabled: bool):
    """Autocast for `device` when `enabled`: bfloat16 on CPU (no gradient scaler needed: it has
    float32's range), float16 on CUDA, whose tensor cores run it at their fastest."""
    kind = torch.device(device).type
    return torch.autocast(kind, dtype=torch.bfloat16 if kind == "cpu" else torch.float16, enabled=enabled)


def grad_scaler(device, enabled: bool) -> torch.amp.GradScaler:
    """A gradient scaler that is active for float16 (CUDA) autocast, where small gradients would
    underflow; with anything else it passes the loss and the optimiser step through unchanged."""
    kind = torch.device(device).type
    return torch.amp.GradScaler(kind, enabled=enabled and kind == "cuda")


def as_float(outputs):
    """A model's logits (or torchvision-style {"out": ..., "aux": ...}) in float32, so that the loss
    on them is computed in float32 whatever precision the forward pass ran in."""
    if isinstance(outputs, dict):
        return {key: value.float() for key, value in outputs.items()}
    return outputs.float()
