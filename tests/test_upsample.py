"""Tests for pixseg.models.upsample: bilinear kernels, the upsampling layers and their geometry."""

import pytest
import torch
import torch.nn.functional as F

from pixseg.models.upsample import UPSAMPLE_MODES, bilinear_kernel, make_upsampler, upsampled_grid


@pytest.mark.parametrize("factor", [2, 8, 32])
def test_deconv_keeps_a_constant_map_constant_in_the_interior(factor):
    layer = make_upsampler(3, factor, "deconv")
    out = layer(torch.full((1, 3, 4, 5), 2.5))
    assert out.shape == (1, 3, 5 * factor, 6 * factor)
    # Away from the border every output pixel has two source pixels whose weights sum to 1.
    interior = out[..., factor:-factor, factor:-factor]
    torch.testing.assert_close(interior, torch.full_like(interior, 2.5))


@pytest.mark.parametrize("factor", [2, 4, 8, 16])
def test_bilinear_deconv_equals_interpolation_shifted_by_half_a_factor(factor):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6)
    deconv = make_upsampler(3, factor, "deconv")(x)
    interp = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    # Where interpolation does not clamp at the border, deconv output o + factor / 2 = interpolation o.
    lo, shift = factor // 2, factor // 2
    hi_y, hi_x = 4 * factor + factor // 2, 5 * factor + factor // 2
    torch.testing.assert_close(
        deconv[..., lo + shift : hi_y + shift, lo + shift : hi_x + shift], interp[..., lo:hi_y, lo:hi_x]
    )


def test_bilinear_kernel_upsamples_channels_independently():
    weight = bilinear_kernel(4, 2)
    assert weight.shape == (4, 4, 4, 4)
    off_diagonal = ~torch.eye(4, dtype=torch.bool)
    assert torch.all(weight[off_diagonal] == 0)
    taps = torch.tensor([0.25, 0.75, 0.75, 0.25])
    torch.testing.assert_close(weight[1, 1], taps[:, None] * taps[None, :])


@pytest.mark.parametrize("mode", UPSAMPLE_MODES)
@pytest.mark.parametrize("factor", [2, 8])
def test_upsampled_grid_says_where_each_output_pixel_samples_the_source(mode, factor):
    # A ramp whose value is the source coordinate: upsampled, it reads back each output's coordinate.
    n = 6
    ramp = torch.arange(n, dtype=torch.float32).expand(1, 1, n, n).contiguous()
    upsampled = make_upsampler(1, factor, mode)(ramp)
    out = upsampled[0, 0, upsampled.shape[-2] // 2]  # a middle row: the ramp runs along x
    origin, stride = upsampled_grid(0.0, 1.0, factor, mode)
    assert stride == 1 / factor
    coordinate = origin + stride * torch.arange(out.numel())
    if mode == "nearest":
        # Each source pixel's run of copies is centred on that source pixel.
        for i in range(n):
            assert coordinate[out == i].mean().item() == pytest.approx(i)
    else:
        interior = (coordinate >= 0) & (coordinate <= n - 1)
        torch.testing.assert_close(out[interior], coordinate[interior])


def test_upsampled_grid_composes_with_the_source_grid():
    origin, stride = upsampled_grid(12.5, 32, 2, "deconv")
    assert (origin, stride) == (-11.5, 16)
    assert upsampled_grid(12.5, 32, 2, "bilinear") == (4.5, 16)


def test_frozen_deconv_has_no_gradient_learned_deconv_has_one():
    frozen = make_upsampler(3, 2, "deconv_frozen")
    learned = make_upsampler(3, 2, "deconv")
    assert not frozen.weight.requires_grad
    assert learned.weight.requires_grad
    torch.testing.assert_close(frozen.weight, learned.weight)
    torch.testing.assert_close(frozen.weight.detach(), bilinear_kernel(3, 2))
    assert [p for p in make_upsampler(3, 2, "bilinear").parameters()] == []


def test_unknown_mode_is_rejected_with_the_valid_modes():
    with pytest.raises(ValueError, match="nearest, bilinear, deconv_frozen, deconv; got 'cubic'"):
        make_upsampler(3, 2, "cubic")
