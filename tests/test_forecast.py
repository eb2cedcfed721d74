"""Forecasting: the S2S model, its loss, rollout and the two baselines."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pixseg.forecast import (copy_last, create_forecaster, estimate_motion, flow_forecast, forecast_loss,
                             gradient_difference_loss, rollout)
from pixseg.forecast.model import RESIDUAL_GAIN


def test_gradient_difference_loss_by_hand():
    pred = torch.tensor([[[[0.0, 1.0, 3.0], [0.0, 0.0, 0.0]]]])
    target = torch.tensor([[[[0.0, 2.0, 2.0], [1.0, 1.0, 1.0]]]])
    # Horizontal |grad|: pred 1, 2 / 0, 0; target 2, 0 / 0, 0 -> differences 1, 2, 0, 0: mean 0.75.
    # Vertical |grad|: pred 0, 1, 3; target 1, 1, 1 -> differences 1, 0, 2: mean 1.
    assert gradient_difference_loss(pred, target).item() == pytest.approx(1.75)
    assert gradient_difference_loss(target, target).item() == 0
    # A constant offset changes no gradient.
    assert gradient_difference_loss(pred + 5, pred).item() == 0
    # Masked: only the top row counts, so only its horizontal differences (1 and 2).
    mask = torch.tensor([[[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]]])
    assert gradient_difference_loss(pred, target, mask).item() == pytest.approx(1.5)


def test_forecast_loss_sums_l1_and_gdl_over_both_scales():
    target = torch.zeros(1, 2, 4, 4)
    target[:, 0] = 1
    fine, coarse = torch.full((1, 2, 4, 4), 0.5), torch.full((1, 2, 2, 2), 0.5)
    assert forecast_loss((fine, coarse), target).item() == pytest.approx(0.5 + 0.5)
    assert forecast_loss((target, target[..., ::2, ::2]), target).item() == 0


def test_s2s_matches_the_published_size_and_adds_the_last_frame():
    model = create_forecaster("s2s", 19)
    coarse = sum(p.numel() for p in model.coarse.parameters())
    fine = sum(p.numel() for p in model.fine.parameters())
    assert (coarse, fine) == (699_795, 955_155)
    small = create_forecaster("xs2xs", 5, inputs=3, width=0.1)
    fine, coarse = small(torch.rand(2, 3, 8, 10, 14))
    assert fine.shape == (2, 8, 10, 14) and coarse.shape == (2, 8, 5, 7)
    assert torch.allclose(fine[:, :5].sum(1), torch.ones(2, 10, 14))  # class probabilities
    for net in (small.coarse, small.fine):  # with no change predicted, the forecast is the last frame
        torch.nn.init.zeros_(net[-1].weight)
        torch.nn.init.zeros_(net[-1].bias)
    window = torch.rand(2, 3, 8, 10, 14)
    fine, coarse = small(window)
    last = window[:, -1]
    assert torch.allclose(fine[:, :5], (RESIDUAL_GAIN * last[:, :5]).softmax(1))
    assert torch.equal(fine[:, 5:], last[:, 5:]) and torch.allclose(coarse[:, 5:], F.avg_pool2d(last[:, 5:], 2))
    plain = create_forecaster("xs2xs", 5, inputs=3, width=0.1, residual=False)  # the published network
    plain.load_state_dict(small.state_dict())
    assert torch.equal(plain(window)[0], torch.zeros(2, 8, 10, 14))
    with pytest.raises(ValueError, match="windows of 3 frames of 8 channels"):
        small(torch.rand(2, 4, 8, 10, 14))


class ShiftRight(torch.nn.Module):
    """Forecasts the newest frame moved one pixel right."""

    def forward(self, window):
        return (torch.roll(window[:, -1], 1, dims=-1),)


def test_rollout_feeds_predictions_back():
    window = torch.zeros(1, 4, 1, 1, 8)
    window[0, -1, 0, 0, 0] = 1  # the newest frame: a dot at column 0
    predictions = rollout(ShiftRight(), window, 3)
    assert [p[0, 0, 0].argmax().item() for p in predictions] == [1, 2, 3]
    with pytest.raises(ValueError, match="cannot roll out past one step"):
        rollout(create_forecaster("xs2s", 2, width=0.05), torch.rand(1, 4, 5, 4, 4), 2)
    assert len(rollout(create_forecaster("xs2s", 2, width=0.05), torch.rand(1, 4, 5, 4, 4), 1)) == 1


def square_frame(left, texture, size=(48, 64)):
    image = np.full((*size, 3), 60, np.uint8)
    labels = np.zeros(size, np.uint8)
    image[18:30, left:left + 12] = texture
    labels[18:30, left:left + 12] = 3
    return image, labels


def test_flow_baseline_moves_a_translated_square_to_where_it_goes():
    texture = (np.random.default_rng(1).random((12, 12, 3)) * 150 + 100).astype(np.uint8)
    (before, _), (last, labels) = square_frame(10, texture), square_frame(14, texture)
    target = square_frame(26, texture)[1]  # three times as far on: 4 pixels per step
    forecast = flow_forecast(labels, estimate_motion(before, last), 3.0)
    both, either = ((forecast == 3) & (target == 3)).sum(), ((forecast == 3) | (target == 3)).sum()
    assert both / either > 0.75
    copied = copy_last(labels[None])
    assert ((copied == 3) & (target == 3)).sum() == 0 and np.array_equal(copied, labels)
