"""Tests for pixseg.models.backbones.vgg: layout, widths, initialisation, dilation and checkpoints."""

import pytest
import torch
import torch.nn.functional as F

from pixseg.models.backbones.vgg import VGG16, vgg16, vgg16_bn

# torchvision's vgg16 state dict, written out by hand: layer -> (out, in) of each conv / linear.
TORCHVISION_CONVS = {
    "features.0": (64, 3), "features.2": (64, 64),
    "features.5": (128, 64), "features.7": (128, 128),
    "features.10": (256, 128), "features.12": (256, 256), "features.14": (256, 256),
    "features.17": (512, 256), "features.19": (512, 512), "features.21": (512, 512),
    "features.24": (512, 512), "features.26": (512, 512), "features.28": (512, 512),
}  # fmt: skip
TORCHVISION_LINEARS = {"classifier.0": (4096, 25088), "classifier.3": (4096, 4096), "classifier.6": (1000, 4096)}


def torchvision_state(make) -> dict:
    """A state dict in torchvision's vgg16 layout; make(shape) gives each tensor."""
    state = {}
    for name, (out, inp) in TORCHVISION_CONVS.items():
        state[f"{name}.weight"], state[f"{name}.bias"] = make((out, inp, 3, 3)), make((out,))
    for name, (out, inp) in TORCHVISION_LINEARS.items():
        state[f"{name}.weight"], state[f"{name}.bias"] = make((out, inp)), make((out,))
    return state


def cheap(shape):
    # Stride-0 view of one number: full-size shapes that take no memory, and almost none on disk.
    return torch.full((1,), 0.5).expand(shape)


@pytest.fixture
def cheap_checkpoint(tmp_path):
    def save(state, name="vgg16-cheap.pth"):
        path = tmp_path / name
        torch.save(state, path)
        return path

    return save


def load_torchvision_vgg16(path):
    """The state a vgg16 backbone with fc6 / fc7 takes from the checkpoint at `path`."""
    return vgg16(fc=True, pretrained=path).state_dict()


def test_parameter_names_and_shapes_are_torchvisions_with_fc6_fc7_as_convolutions():
    with torch.device("meta"):
        shapes = {key: tuple(value.shape) for key, value in VGG16(fc=True).state_dict().items()}
    expected = {key: tuple(value.shape) for key, value in torchvision_state(cheap).items()}
    del expected["classifier.6.weight"], expected["classifier.6.bias"]
    expected["classifier.0.weight"] = (4096, 512, 7, 7)
    expected["classifier.3.weight"] = (4096, 4096, 1, 1)
    assert shapes == expected


def test_width_scales_every_layer_fc6_fc7_included():
    model = VGG16(width=0.125, fc=True)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64, 512, 512]
    assert model.channels == (16, 32, 64, 512)
    assert VGG16(width=0.125).channels == (16, 32, 64, 64)


@pytest.mark.parametrize("size, fc7", [(224, 1), (230, 2)])
def test_forward_returns_pool2_pool3_pool4_fc7_with_pools_rounding_up(size, fc7):
    model = VGG16(width=1 / 16, fc=True).eval()
    pool2, pool3, pool4, out = model(torch.randn(1, 3, size, size))
    # 230 -> 115 -> 58 -> 29 -> 15 -> 8 rounding up (torchvision's floor would give 7 and fc7 size 1).
    assert pool2.shape == (1, 8, -(-size // 4), -(-size // 4))
    assert pool3.shape == (1, 16, -(-size // 8), -(-size // 8))
    assert pool4.shape == (1, 32, -(-size // 16), -(-size // 16))
    assert out.shape == (1, 256, fc7, fc7)


def test_first_padding_pads_conv1_1_only():
    model = VGG16(width=1 / 16, first_padding=100)
    assert model.features[0].padding == (100, 100)
    assert all(m.padding == (1, 1) for m in model.features[1:] if isinstance(m, torch.nn.Conv2d))


def test_convolutions_start_kaiming_normal_with_zero_bias():
    torch.manual_seed(0)
    model = VGG16(width=0.25)
    conv = model.features[28]  # 128 x 128 x 3 x 3
    assert conv.weight.std().item() == pytest.approx((2 / (128 * 9)) ** 0.5, rel=0.03)
    assert conv.weight.mean().item() == pytest.approx(0, abs=0.005)
    assert torch.all(conv.bias == 0)


@pytest.mark.parametrize("width, dropout", [(0, 0.5), (-1, 0.5), (float("nan"), 0.5), ("1", 0.5), (1, 1.0), (1, -0.1)])
def test_bad_width_or_dropout_is_rejected(width, dropout):
    with pytest.raises(ValueError, match="width|dropout"):
        VGG16(width=width, dropout=dropout)


def test_checkpoint_loads_and_fc6_fc7_compute_what_the_linear_layers_computed(tmp_path):
    torch.manual_seed(0)
    state = torchvision_state(lambda shape: torch.empty(shape).uniform_(-1, 1))
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(state, path)
    loaded = load_torchvision_vgg16(path)

    assert "classifier.6.weight" not in loaded and "classifier.6.bias" not in loaded
    assert all(value.dtype == torch.float32 for value in loaded.values())
    for key in ("features.0.weight", "features.28.bias", "classifier.0.bias", "classifier.3.bias"):
        assert torch.equal(loaded[key], state[key])
    # fc6 on a 7 x 7 pool5 map is the linear layer on the flattened map; fc7 likewise at 1 x 1.
    rows = torch.randperm(4096)[:64]
    pool5 = torch.randn(2, 512, 7, 7)
    fc6 = F.conv2d(pool5, loaded["classifier.0.weight"][rows]).flatten(1)
    torch.testing.assert_close(fc6, pool5.flatten(1) @ state["classifier.0.weight"][rows].T, rtol=1e-4, atol=1e-3)
    hidden = torch.randn(2, 4096, 1, 1)
    fc7 = F.conv2d(hidden, loaded["classifier.3.weight"][rows]).flatten(1)
    torch.testing.assert_close(fc7, hidden.flatten(1) @ state["classifier.3.weight"][rows].T, rtol=1e-4, atol=1e-3)
    assert torch.equal(loaded["classifier.0.weight"].flatten(1), state["classifier.0.weight"])
    assert torch.equal(loaded["classifier.3.weight"].flatten(1), state["classifier.3.weight"])

    with torch.device("meta"):
        expected = {key: value.shape for key, value in VGG16(fc=True).state_dict().items()}
    assert {key: value.shape for key, value in loaded.items()} == expected


def test_checkpoint_loads_into_the_backbone_without_fc6_fc7(cheap_checkpoint):
    backbone = vgg16(pretrained=cheap_checkpoint(torchvision_state(cheap)))
    assert not hasattr(backbone, "classifier")
    assert all(value.min() == 0.5 for value in backbone.state_dict().values())


def torchvision_bn_state(make) -> dict:
    """A state dict in torchvision's vgg16_bn layout: conv, bn, relu per layer, so the convs sit at
    0, 3, 7, 10, 14, ... (a pool after every block); make(shape) gives each tensor."""
    state, index = {}, 0
    for name, (out, inp) in TORCHVISION_CONVS.items():
        state[f"features.{index}.weight"], state[f"features.{index}.bias"] = make((out, inp, 3, 3)), make((out,))
        for key in ("weight", "bias", "running_mean", "running_var"):
            state[f"features.{index + 1}.{key}"] = make((out,))
        state[f"features.{index + 1}.num_batches_tracked"] = torch.tensor(7)
        index += 3 if name not in ("features.2", "features.7", "features.14", "features.21", "features.28") else 4
    for name, (out, inp) in TORCHVISION_LINEARS.items():
        state[f"{name}.weight"], state[f"{name}.bias"] = make((out, inp)), make((out,))
    return state


def test_vgg16_bn_checkpoint_loads_with_or_without_batch_counters(cheap_checkpoint):
    state = torchvision_bn_state(cheap)
    backbone = vgg16_bn(fc=True, pretrained=cheap_checkpoint(state))
    assert backbone.features[41].num_batches_tracked == 7 and backbone.features[41].running_var.min() == 0.5
    old = {key: value for key, value in state.items() if not key.endswith("num_batches_tracked")}
    assert vgg16_bn(pretrained=cheap_checkpoint(old)).features[1].num_batches_tracked == 0
    del old["features.41.running_var"]
    with pytest.raises(ValueError, match="VGG16-BN checkpoint .*: missing keys features.41.running_var"):
        vgg16_bn(pretrained=cheap_checkpoint(old))


@pytest.mark.parametrize("output_stride, sizes", [(32, (13, 7, 4, 2)), (16, (13, 7, 4, 4)), (8, (13, 7, 7, 7))])
def test_output_stride_replaces_the_last_pools_by_dilation(output_stride, sizes):
    model = VGG16(width=1 / 16, output_stride=output_stride, fc=True, fc6_padding=3).eval()
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 50, 50))
    assert [m.shape[-1] for m in maps] == list(sizes)
    assert model.strides == tuple(min(s, output_stride) for s in (4, 8, 16, 32))
    dilations = [m.dilation[0] for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    # conv4_3, conv5_1 .. conv5_3, fc6, fc7
    assert dilations[-6:] == {32: [1, 1, 1, 1, 1, 1], 16: [1, 1, 1, 1, 2, 1], 8: [1, 2, 2, 2, 4, 1]}[output_stride]


def test_checkpoint_without_fc8_is_accepted(cheap_checkpoint):
    state = torchvision_state(cheap)
    del state["classifier.6.weight"], state["classifier.6.bias"]
    assert len(load_torchvision_vgg16(cheap_checkpoint(state))) == 30


def test_pretrained_weights_fit_width_one_only(cheap_checkpoint):
    with pytest.raises(ValueError, match="pretrained VGG16 weights fit width=1.0 only, got width=0.5"):
        vgg16(width=0.5, pretrained=cheap_checkpoint(torchvision_state(cheap)))


def test_missing_key_is_named_with_the_file(cheap_checkpoint):
    state = torchvision_state(cheap)
    del state["features.28.bias"]
    path = cheap_checkpoint(state)
    with pytest.raises(ValueError, match=f"{path}: missing keys features.28.bias"):
        load_torchvision_vgg16(path)


def test_extra_key_is_named_with_the_file(cheap_checkpoint):
    state = torchvision_state(cheap)
    state["features.30.weight"] = torch.zeros(3)
    path = cheap_checkpoint(state)
    with pytest.raises(ValueError, match=f"{path}: unexpected keys features.30.weight"):
        load_torchvision_vgg16(path)


def test_mis_shaped_key_is_named_with_both_shapes(cheap_checkpoint):
    state = torchvision_state(cheap)
    state["classifier.0.weight"] = cheap((25088, 4096))
    path = cheap_checkpoint(state)
    with pytest.raises(ValueError, match=r"classifier.0.weight has shape \(25088, 4096\), expected \(4096, 25088\)"):
        load_torchvision_vgg16(path)


def test_non_tensor_value_is_rejected(cheap_checkpoint):
    state = torchvision_state(cheap)
    state["features.0.bias"] = [0.0] * 64
    with pytest.raises(ValueError, match="features.0.bias is not a floating-point tensor"):
        load_torchvision_vgg16(cheap_checkpoint(state))


def test_not_a_state_dict_is_rejected(cheap_checkpoint):
    with pytest.raises(ValueError, match="expected a state dict, found a list"):
        load_torchvision_vgg16(cheap_checkpoint([torch.zeros(1)]))


def test_unreadable_or_missing_file_is_named(tmp_path):
    junk = tmp_path / "vgg16-junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="vgg16-junk.pth: cannot be read as a torch state dict"):
        load_torchvision_vgg16(junk)
    with pytest.raises(FileNotFoundError, match="vgg16-absent.pth: no such file"):
        load_torchvision_vgg16(tmp_path / "vgg16-absent.pth")
