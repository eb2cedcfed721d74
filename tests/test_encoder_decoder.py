"""Tests for the encoder-decoder family: U-Net, SegNet, DeconvNet (sizes, alignment, checkpoints, training)."""

import pytest
import torch
import torch.nn.functional as F

from pixseg.models import create_model
from pixseg.models.backbones.vgg import pool_with_indices
from pixseg.models.segnet import unpool
from pixseg.models.unet import VALID_MARGIN, mirror_indices, valid_tile

# name, options -> parameters at the defaults for the class count given.
PUBLISHED = [
    ("unet", {}, 2, 31_037_698),  # the common padded version, transposed convs, 3 input channels
    ("unet", {"bilinear": True}, 2, 17_263_042),
    ("unet", {"valid": True}, 2, 31_031_810),
    ("segnet", {}, 21, 29_455_125),
    ("segnet", {}, 11, 29_449_355),  # CamVid
    ("deconvnet", {}, 21, 251_805_653),
]
# Small versions that run in a fraction of a second on a CPU.
SMALL = {
    "unet": {"width": 1 / 16},
    "unet-bilinear": {"width": 1 / 16, "bilinear": True},
    "unet-valid": {"width": 1 / 16, "valid": True, "tile": 20},
    "segnet": {"width": 1 / 16},
    "deconvnet": {"width": 1 / 16},
}


def small(key, num_classes=3):
    torch.manual_seed(0)
    return create_model(key.split("-")[0], num_classes, **SMALL[key])


@pytest.mark.parametrize("name, options, num_classes, count", PUBLISHED)
def test_parameter_count_at_the_defaults_is_the_published_one(name, options, num_classes, count):
    with torch.device("meta"):
        model = create_model(name, num_classes, **options)
    total = sum(p.numel() for p in model.parameters())
    assert abs(total - count) / count < 0.01
    assert total == count


@pytest.mark.parametrize("key", SMALL)
def test_output_has_the_input_size_for_any_size(key):
    model = small(key, num_classes=5).eval()
    with torch.no_grad():
        for size in [(1, 1), (2, 3), (17, 31), (45, 22)]:
            assert model(torch.randn(2, 3, *size)).shape == (2, 5, *size)


def symmetrise(model):
    """Mirror-symmetric kernels everywhere, so an aligned net commutes with flips. Positive too, as
    is the input: a pool over a window of ReLU zeros would take its first position, on either side
    of a flip, and unpooling would put the decoder's value there."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                weight = module.weight.abs() + module.weight.abs().flip(-1)
                module.weight.copy_((weight + weight.flip(-2)) / 4)


def calibrated(model):
    """The model in eval mode with BatchNorm statistics of random images: at their initial
    statistics the N(0, 0.01) deconvolutions of DeconvNet shrink every map towards zero, and its
    output is its bias alone, which any alignment test would pass."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    with torch.no_grad():
        model.train()(torch.rand(2, 3, 64, 64))
    return model.eval()


def varies(out):
    return bool(out.std(dim=(-2, -1)).min() > 1e-3 * out.abs().max())


# DeconvNet is left out: at its initial BatchNorm statistics its output is a constant, and with
# statistics of images its symmetrised (all-positive) layers drive every map to one value too, so
# a flip test of it could not fail.
@pytest.mark.parametrize("key", [key for key in SMALL if key != "deconvnet"])
def test_output_is_aligned_with_the_input(key):
    # Sizes every pool tiles exactly (and, for the valid U-Net, whole output tiles): a crop, pad or
    # unpooling that shifted the output by a pixel would break the symmetry.
    model = small(key).eval()
    symmetrise(model)
    x = torch.rand(1, 3, 40 if key == "unet-valid" else 32, 64 if key != "unet-valid" else 60)
    with torch.no_grad():
        out = model(x)
        assert varies(out)
        for axis in (-1, -2):
            error = (model(x.flip(axis)) - out.flip(axis)).abs().max() / out.abs().max()
            assert error < 1e-5, (key, axis)


# key -> (side of a square image every pool tiles, an odd crop of it, how far from the crop's bottom
# and right edges its receptive fields reach).
ODD = {"unet": (256, (229, 203), 128), "unet-bilinear": (256, (229, 203), 128),
       "unet-valid": (200, (161, 173), 128), "segnet": (320, (293, 275), 192),
       "deconvnet": (896, (869, 851), 448)}  # fc6 is 7 x 7 at stride 32


@pytest.mark.parametrize("key", ODD)
def test_odd_sizes_are_aligned_by_value(key):
    # The flip test proves alignment where the pools tile the image. Pools, crops and tiles are
    # anchored at the top-left corner, so an odd-sized image must give exactly the values of a
    # larger, tiled image wherever its receptive fields do not reach the odd image's far edges.
    size, (height, width), reach = ODD[key]
    model = calibrated(small(key)) if key == "deconvnet" else small(key).eval()
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        whole, odd = model(x)[..., :height, :width], model(x[..., :height, :width])
    assert varies(odd)
    inner = (..., slice(0, height - reach), slice(0, width - reach))
    torch.testing.assert_close(odd[inner], whole[inner], rtol=1e-5, atol=1e-5 * whole.abs().max())
    # Not an empty comparison: near its far edges the odd image's borders do change the values.
    assert not torch.allclose(odd, whole)


def test_unpooling_puts_each_maximum_back_where_it_came_from():
    # The 4 x 4 example: 2 x 2 pools keep 7, 9, 8, 4 and where they were; unpooling restores a
    # sparse map with only those four values, in their places.
    x = torch.tensor([[1, 3, 2, 9], [7, 4, 1, 5], [8, 5, 2, 3], [4, 2, 1, 4]], dtype=torch.float32)[None, None]
    pooled, indices, size = pool_with_indices(x)
    assert pooled[0, 0].tolist() == [[7, 9], [8, 4]]
    expected = [[0, 0, 0, 9], [7, 0, 0, 0], [8, 0, 0, 0], [0, 0, 0, 4]]
    assert unpool(pooled, indices, size)[0, 0].tolist() == expected
    # Odd sizes: the pool rounds up, and unpooling restores the odd size.
    odd = torch.arange(15, dtype=torch.float32).reshape(1, 1, 3, 5)
    pooled, indices, size = pool_with_indices(odd)
    assert pooled[0, 0].tolist() == [[6, 8, 9], [11, 13, 14]]
    restored = unpool(pooled, indices, size)
    assert restored.shape == odd.shape and torch.equal(restored[restored != 0], pooled.flatten())


def test_valid_unet_predicts_a_tile_from_its_mirrored_context():
    model = small("unet-valid").eval()
    x = torch.randn(1, 3, 13, 20)
    # One tile: the network on the image extended by 92 mirrored pixels each side (more below and
    # to the right, up to the tile's 20 x 20), cropped to the image.
    rows = mirror_indices(-VALID_MARGIN, 20 + VALID_MARGIN, 13)
    cols = mirror_indices(-VALID_MARGIN, 20 + VALID_MARGIN, 20)
    with torch.no_grad():
        expected = model.network(x[:, :, rows][:, :, :, cols])[..., :13, :20]
        torch.testing.assert_close(model(x), expected)
    assert mirror_indices(-3, 5, 3).tolist() == [1, 2, 1, 0, 1, 2, 1, 0]
    assert mirror_indices(-2, 2, 1).tolist() == [0, 0, 0, 0]
    assert [valid_tile(s) for s in (1, 4, 5, 20, 21, 388, 389)] == [4, 4, 20, 20, 36, 388, 404]


def test_valid_unet_maps_a_572_tile_to_388():
    model = create_model("unet", 2, width=1 / 64, valid=True).eval()
    with torch.no_grad():
        assert model.network(torch.randn(1, 3, 572, 572)).shape == (1, 2, 388, 388)


@pytest.mark.parametrize("options, message", [
    ({"tile": 101}, "tile must be an output size the valid U-Net produces"),
    ({"bilinear": "yes"}, "bilinear must be True or False"),
    ({"dropout": 1}, r"dropout must be a probability in \[0, 1\)"),
    ({"width": 0}, "width must be a finite number > 0"),
])
def test_bad_unet_options_are_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        create_model("unet", 2, **{"width": 1 / 16, **options})


def test_deconvnet_reference_padding_needs_a_7_by_7_pool5():
    model = create_model("deconvnet", 3, width=1 / 16, fc6_padding=0).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 200, 193)).shape == (1, 3, 200, 193)
    with pytest.raises(ValueError, match="fc6_padding=0 needs inputs of at least 193 x 193"):
        model(torch.randn(1, 3, 100, 300))
    with pytest.raises(ValueError, match="fc6_padding must be 0"):
        create_model("deconvnet", 3, fc6_padding=1)


@pytest.mark.parametrize("name", ["segnet", "deconvnet"])
def test_torchvision_vgg16_bn_checkpoint_fills_the_encoder(name, tmp_path):
    from test_vgg import torchvision_bn_state

    constants = iter(range(1, 1000))
    state = torchvision_bn_state(lambda shape: torch.full((1,), float(next(constants))).expand(shape))
    path = tmp_path / "vgg16_bn-6c64b313.pth"
    torch.save(state, path)
    # The head on the meta device: only the encoder, filled from the file, takes memory.
    with torch.device("meta"):
        model = create_model(name, 21, pretrained=path)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, state[key].reshape(value.shape)), key
    assert not any(key.startswith("classifier") for key in model.backbone.state_dict())
    del state["features.40.bias"]
    torch.save(state, path)
    with pytest.raises(ValueError, match="missing keys features.40.bias"), torch.device("meta"):
        create_model(name, 21, pretrained=path)


def overfit(model, steps=40, size=32):
    """Adam on one fixed batch; returns the first and the last loss."""
    torch.manual_seed(1)
    # 4 x 4 blocks of one colour plus noise, labelled by their strongest channel: the net must read
    # each label from the image.
    blocks = torch.randn(2, 3, 4, 4)
    x = F.interpolate(blocks, scale_factor=size // 4) + 0.3 * torch.randn(2, 3, size, size)
    labels = F.interpolate(blocks, scale_factor=size // 4).argmax(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


@pytest.mark.parametrize("key", ["unet", "segnet", "deconvnet"])
def test_a_fixed_batch_is_learned(key):
    first, last = overfit(small(key))
    assert last < first / 2, (first, last)


def test_the_valid_unet_learns_a_fixed_batch():
    # Without BatchNorm and with dropout on its deepest maps it needs more steps than the padded
    # version; one 20 x 20 output tile (a 204 x 204 mirrored window) keeps each step small.
    first, last = overfit(small("unet-valid"), steps=70, size=20)
    assert last < first / 2, (first, last)


def test_unpool_is_max_unpool2d_values_and_gradient():
    x = torch.randn(2, 5, 13, 17, requires_grad=True)
    pooled, indices = F.max_pool2d(x, 2, 2, ceil_mode=True, return_indices=True)
    reference = F.max_unpool2d(pooled, indices, 2, 2, output_size=x.shape[-2:])
    ours = unpool(pooled, indices, x.shape[-2:])
    assert torch.equal(ours, reference)
    weights = torch.randn_like(reference)
    assert torch.equal(torch.autograd.grad((ours * weights).sum(), x, retain_graph=True)[0],
                       torch.autograd.grad((reference * weights).sum(), x)[0])
