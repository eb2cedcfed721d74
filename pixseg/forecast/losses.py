"""The forecasting loss of the official S2S code: L1 plus the gradient difference loss, per scale."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.mean()
    weight = mask.expand_as(values)
    return (values * weight).sum() / weight.sum().clamp(min=1)


def gradient_difference_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None):
    """Mean of | |grad pred| - |grad target| | over horizontal and vertical neighbour differences.

    pred, target: N×K×H×W; mask: N×1×H×W of 1 for pixels that count (a difference counts when both
    of its pixels do), or None.
    """
    total = pred.new_zeros(())
    for dim in (-1, -2):
        n = pred.shape[dim] - 1
        dp = (pred.narrow(dim, 1, n) - pred.narrow(dim, 0, n)).abs()
        dt = (target.narrow(dim, 1, n) - target.narrow(dim, 0, n)).abs()
        pair = None if mask is None else mask.narrow(dim, 1, n) * mask.narrow(dim, 0, n)
        total = total + _masked_mean((dp - dt).abs(), pair)
    return total


def forecast_loss(outputs, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """L1 + GDL at every scale the model outputs, each compared with the target pooled to its size."""
    total = target.new_zeros(())
    for output in outputs:
        if output.shape[-2:] == target.shape[-2:]:
            scaled, scaled_mask = target, mask
        else:
            # The coarse scale: pooled as the model pools its inputs.
            scaled = F.avg_pool2d(target, 2)
            scaled_mask = None if mask is None else (F.avg_pool2d(mask, 2) > 0.5).to(mask)
        total = total + _masked_mean((output - scaled).abs(), scaled_mask) \
            + gradient_difference_loss(output, scaled, scaled_mask)
    return total
