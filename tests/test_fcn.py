"""Tests for pixseg.models.fcn: size, alignment, initialisation, gradients, options and checkpoints."""

import pytest
import torch
import torch.nn.functional as F

from pixseg.models.fcn import FCN, fcn8s, fcn16s, fcn32s
from pixseg.models.upsample import UPSAMPLE_MODES, bilinear_kernel

BUILDERS = {"fcn32s": fcn32s, "fcn16s": fcn16s, "fcn8s": fcn8s}
NARROW = 1 / 32
SCORE_LAYERS = ("score_fr", "score_pool4", "score_pool3")


def narrow(name, upsample="deconv", num_classes=3, **options):
    torch.manual_seed(0)
    return BUILDERS[name](num_classes, width=NARROW, upsample=upsample, **options).eval()


def randomise_scores(model):
    """Random score layers: zero ones (the reference's init) would hide what the skips contribute."""
    for name in SCORE_LAYERS:
        if hasattr(model, name):
            torch.nn.init.normal_(getattr(model, name).weight, std=0.5)
            torch.nn.init.normal_(getattr(model, name).bias)


def symmetrise_backbone(model):
    """Make every backbone kernel mirror-symmetric, so an aligned net commutes with flips."""
    with torch.no_grad():
        for module in model.backbone.modules():
            if isinstance(module, torch.nn.Conv2d):
                weight = module.weight + module.weight.flip(-1)
                module.weight.copy_((weight + weight.flip(-2)) / 4)


def published_count(name, num_classes=21, deconv=True):
    convs = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
             (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]  # fmt: skip
    backbone = sum(i * o * 9 + o for i, o in convs) + (512 * 49 * 4096 + 4096) + (4096 * 4096 + 4096)
    skips = {"fcn32s": [4096], "fcn16s": [4096, 512], "fcn8s": [4096, 512, 256]}[name]
    factors = {"fcn32s": [32], "fcn16s": [2, 16], "fcn8s": [2, 2, 8]}[name]
    scores = sum(c * num_classes + num_classes for c in skips)
    upsamplers = sum(num_classes * num_classes * (2 * f) ** 2 for f in factors) if deconv else 0
    return backbone + scores + upsamplers


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("upsample", ["deconv", "bilinear"])
def test_parameter_count_at_full_width_is_the_published_one(name, upsample):
    with torch.device("meta"):
        model = BUILDERS[name](21, upsample=upsample)
    count = sum(p.numel() for p in model.parameters())
    assert count == published_count(name, deconv=upsample == "deconv")
    if name == "fcn8s" and upsample == "deconv":
        assert count == 134_489_759
        assert abs(count - 134.5e6) / 134.5e6 < 0.01


@pytest.mark.parametrize(
    "name, upsample, offsets",
    [
        ("fcn32s", "deconv", {"offset": 19}),
        ("fcn16s", "deconv", {"pool4_offset": 5, "offset": 27}),
        ("fcn8s", "deconv", {"pool4_offset": 5, "pool3_offset": 9, "offset": 31}),
        ("fcn8s", "deconv_frozen", {"pool4_offset": 5, "pool3_offset": 9, "offset": 31}),
        ("fcn32s", "bilinear", {"offset": 3}),
        ("fcn16s", "nearest", {"pool4_offset": 6, "offset": 3}),
        ("fcn8s", "bilinear", {"pool4_offset": 6, "pool3_offset": 12, "offset": 3}),
    ],
)
def test_crop_offsets_are_caffes_for_deconv_and_derived_for_interpolation(name, upsample, offsets):
    model = narrow(name, upsample)
    assert {key: getattr(model, key) for key in offsets} == offsets


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("upsample", UPSAMPLE_MODES)
def test_output_has_the_input_size_for_any_size(name, upsample):
    model = narrow(name, upsample, num_classes=5)
    with torch.no_grad():
        for size in [(1, 1), (2, 3), (17, 31), (64, 33)]:
            assert model(torch.randn(1, 3, *size)).shape == (1, 5, *size)


def flip_error(model, x, axes=(-1, -2)):
    """Largest mismatch between model(flip(x)) and flip(model(x)) over `axes`, relative to the output."""
    with torch.no_grad():
        out = model(x)
        error = max((model(x.flip(axis)) - out.flip(axis)).abs().max() for axis in axes)
        return (error / out.abs().max()).item()


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("upsample", UPSAMPLE_MODES)
def test_output_is_aligned_with_the_input(name, upsample):
    # With mirror-symmetric kernels and an input the pools tile exactly (H + 198 and W + 198 multiples
    # of 32), the net commutes with flips exactly when every crop takes as much from one side as
    # from the other, i.e. when each crop lines its map up with the input. An offset off by one
    # pixel shifts the output and breaks the symmetry, which the second half checks.
    model = narrow(name, upsample)
    randomise_scores(model)
    symmetrise_backbone(model)
    x = torch.randn(1, 3, 26, 58)
    assert flip_error(model, x) < 1e-5

    for key in ("offset", "pool4_offset", "pool3_offset"):
        if hasattr(model, key):
            setattr(model, key, getattr(model, key) - 1)
            assert flip_error(model, x, axes=(-1,)) > 1e-4, key
            setattr(model, key, getattr(model, key) + 1)


@pytest.mark.parametrize("name", BUILDERS)
def test_deconv_and_bilinear_interpolation_give_the_same_logits_inside(name):
    # The two modes share every weight; the bilinear deconv fades out at its map's edges where
    # F.interpolate clamps, so they may differ within a stride of the border and nowhere else.
    deconv = narrow(name, "deconv")
    randomise_scores(deconv)
    bilinear = narrow(name, "bilinear")
    bilinear.load_state_dict({k: v for k, v in deconv.state_dict().items() if "upscore" not in k})
    x = torch.randn(1, 3, 100, 121)
    with torch.no_grad():
        torch.testing.assert_close(deconv(x)[..., 32:-32, 32:-32], bilinear(x)[..., 32:-32, 32:-32])


@pytest.mark.parametrize("name", BUILDERS)
def test_score_layers_start_at_zero_and_upsamplers_at_bilinear(name):
    model = narrow(name)
    for layer in SCORE_LAYERS:
        if hasattr(model, layer):
            assert torch.all(getattr(model, layer).weight == 0) and torch.all(getattr(model, layer).bias == 0)
    upsamplers = [m for m in model.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(upsamplers) == {"fcn32s": 1, "fcn16s": 2, "fcn8s": 3}[name]
    for layer in upsamplers:
        torch.testing.assert_close(layer.weight.detach(), bilinear_kernel(3, layer.stride[0]))
    with torch.no_grad():
        assert torch.all(model(torch.randn(1, 3, 20, 20)) == 0)


def test_gradients_reach_the_skip_layers_of_fcn8s():
    model = narrow("fcn8s").train()
    x, target = torch.randn(2, 3, 40, 36), torch.randint(0, 3, (2, 40, 36))
    F.cross_entropy(model(x), target).backward()
    for layer in SCORE_LAYERS:
        assert getattr(model, layer).weight.grad.abs().sum() > 0, layer

    # Once the score layers are not zero, the gradient flows on into the backbone and upsamplers.
    model.zero_grad()
    randomise_scores(model)
    F.cross_entropy(model(x), target).backward()
    for parameter in (model.backbone.features[0].weight, model.upscore2.weight, model.upscore.weight):
        assert parameter.grad.abs().sum() > 0


def test_frozen_deconv_weights_take_no_gradient():
    model = narrow("fcn8s", "deconv_frozen").train()
    randomise_scores(model)
    upsamplers = [model.upscore2, model.upscore_pool4, model.upscore]
    assert all(not layer.weight.requires_grad for layer in upsamplers)
    model(torch.randn(1, 3, 24, 24)).sum().backward()
    assert all(layer.weight.grad is None for layer in upsamplers)
    assert model.score_pool3.weight.grad is not None
    assert all(layer.weight.requires_grad for layer in [narrow("fcn8s", "deconv").upscore2])


def test_dropout_option_sets_fc6_fc7_dropout():
    x = torch.randn(1, 3, 8, 8)
    still = narrow("fcn32s", dropout=0.0).train()
    randomise_scores(still)
    assert torch.equal(still(x), still(x))
    noisy = narrow("fcn32s", dropout=0.5).train()
    randomise_scores(noisy)
    assert not torch.equal(noisy(x), noisy(x))
    assert [m.p for m in noisy.modules() if isinstance(m, torch.nn.Dropout)] == [0.5, 0.5]


@pytest.mark.parametrize("shape", [(1, 1, 16, 16), (1, 4, 16, 16), (3, 16, 16)])
def test_input_that_is_not_n_by_3_by_h_by_w_is_rejected(shape):
    with pytest.raises(ValueError, match=r"N x 3 x H x W, got shape"):
        narrow("fcn8s")(torch.zeros(shape))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"num_classes": 0}, "num_classes must be an integer >= 1, got 0"),
        ({"num_classes": True}, "num_classes must be an integer >= 1, got True"),
        ({"width": 0}, "width must be a finite number > 0, got 0"),
        ({"upsample": "bicubic"}, "upsample must be one of .* got 'bicubic'"),
        ({"dropout": 1.0}, r"dropout must be a probability in \[0, 1\), got 1.0"),
        ({"width": 0.5, "pretrained": "vgg16.pth"}, "pretrained VGG16 weights fit width=1.0 only, got width=0.5"),
    ],
)
def test_bad_options_are_rejected(options, message):
    options = {"num_classes": 3, "width": NARROW, **options}
    with pytest.raises(ValueError, match=message):
        fcn8s(options.pop("num_classes"), **options)


def test_fcn_rejects_an_output_stride_it_has_no_layers_for():
    with pytest.raises(ValueError, match="output_stride must be one of"):
        FCN(narrow("fcn8s").backbone, 3, output_stride=4)


def test_pretrained_checkpoint_fills_the_backbone_and_leaves_the_head(tmp_path):
    from test_vgg import torchvision_state  # torchvision's layout, written out once

    constants = iter(range(1, 100))
    state = torchvision_state(lambda shape: torch.full((1,), float(next(constants))).expand(shape))
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(state, path)
    model = fcn8s(21, pretrained=path)

    backbone = model.backbone.state_dict()
    for key, value in state.items():
        if not key.startswith("classifier.6."):
            assert backbone[key].min() == backbone[key].max() == value[(0,) * value.ndim], key
    assert backbone["classifier.0.weight"].shape == (4096, 512, 7, 7)
    assert all(p.requires_grad for p in model.backbone.parameters())
    assert torch.all(model.score_pool3.weight == 0)
    torch.testing.assert_close(model.upscore.weight.detach(), bilinear_kernel(21, 8))


@pytest.mark.parametrize(
    "name, upsample, offsets",
    [
        ("fcn32s", "deconv", {"offset": 16}),
        ("fcn16s", "deconv", {"pool4_offset": -1, "offset": 8}),
        ("fcn8s", "deconv", {"pool4_offset": -1, "pool3_offset": -1, "offset": 4}),
        ("fcn8s", "bilinear", {"pool4_offset": 0, "pool3_offset": 0, "offset": 0}),
    ],
)
def test_compact_padding_offsets_are_derived_by_hand(name, upsample, offsets):
    # conv1_1 and fc6 padded to keep sizes: pool5 sits at 15.5 + 32 i, pool4 at 7.5 + 16 i and pool3
    # at 3.5 + 8 i; a 4-wide stride-2 deconv of pool5 starts at 15.5 - 24 = -8.5, one pool4 pixel early.
    model = narrow(name, upsample, padding="compact")
    assert {key: getattr(model, key) for key in offsets} == offsets


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("upsample", UPSAMPLE_MODES)
def test_compact_padding_keeps_size_and_alignment(name, upsample):
    model = narrow(name, upsample, num_classes=4, padding="compact")
    with torch.no_grad():
        for size in [(1, 1), (2, 3), (17, 31), (64, 33)]:
            assert model(torch.randn(1, 3, *size)).shape == (1, 4, *size)
    randomise_scores(model)
    symmetrise_backbone(model)
    # Multiples of 32 tile every pool exactly, so an aligned net commutes with flips.
    assert flip_error(model, torch.randn(1, 3, 32, 64)) < 1e-5


def test_compact_padding_is_far_cheaper_on_small_inputs():
    from torch.utils.flop_counter import FlopCounterMode

    flops = {}
    for padding in ("classic", "compact"):
        model = narrow("fcn8s", padding=padding)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.randn(1, 3, 128, 128))
        flops[padding] = counter.get_total_flops()
    assert flops["compact"] * 4 < flops["classic"]


def test_unknown_padding_is_rejected():
    with pytest.raises(ValueError, match="padding must be one of classic, compact; got 'same'"):
        fcn8s(3, width=NARROW, padding="same")


def test_batch_norm_backbone_has_torchvisions_vgg16_bn_layout():
    with torch.device("meta"):
        model = fcn8s(21, batch_norm=True)
    state = model.backbone.state_dict()
    # vgg16_bn: conv, bn, relu per layer, so conv2_1 is features.7 and pool2 / pool3 / pool4 end
    # at indices 14, 24 and 34.
    assert state["features.0.weight"].shape == (64, 3, 3, 3)
    assert state["features.1.running_var"].shape == (64,)
    assert state["features.7.weight"].shape == (128, 64, 3, 3)
    assert model.backbone.taps == [14, 24, 34]
    assert "classifier.0.weight" in state


@pytest.mark.parametrize("name", BUILDERS)
def test_batch_norm_changes_neither_offsets_nor_sizes(name):
    plain, normed = narrow(name), narrow(name, batch_norm=True)
    for key in ("offset", "pool4_offset", "pool3_offset"):
        assert getattr(plain, key, None) == getattr(normed, key, None)
    with torch.no_grad():
        assert normed(torch.randn(2, 3, 17, 31)).shape == (2, 3, 17, 31)


def test_batch_norm_reads_a_vgg16_bn_checkpoint(tmp_path):
    # A plain vgg16 file lacks the BatchNorm tensors: the error names the first one missing.
    from test_vgg import cheap, torchvision_state

    path = tmp_path / "vgg16.pth"
    torch.save(torchvision_state(cheap), path)
    with pytest.raises(ValueError, match="VGG16-BN checkpoint .*: missing keys features.1.weight"):
        fcn8s(21, pretrained=path, batch_norm=True)


@pytest.mark.parametrize("backbone, count", [("resnet50", 35_322_218), ("resnet101", 54_314_346)])
def test_resnet_backbone_is_torchvisions_fcn_resnet_with_its_parameter_count(backbone, count):
    # torchvision's fcn_resnet50 / 101 with their auxiliary head: output stride 8, FCNHead on layer4.
    with torch.device("meta"):
        model = fcn8s(21, backbone=backbone, aux=True)
    assert sum(p.numel() for p in model.parameters()) == count
    assert model.backbone.output_stride == 8


def test_resnet_fcn_returns_aux_logits_in_training_only():
    torch.manual_seed(0)
    model = fcn16s(3, backbone="resnet18", width=0.25, aux=True).train()
    outputs = model(torch.randn(2, 3, 37, 50))
    assert outputs["out"].shape == outputs["aux"].shape == (2, 3, 37, 50)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 17, 31)).shape == (1, 3, 17, 31)
    assert model.backbone.output_stride == 16


@pytest.mark.parametrize("options, message", [
    ({"backbone": "resnet18", "padding": "compact"}, "padding apply to the VGG16 FCN only"),
    ({"backbone": "mobilenet_v2"}, "backbone must be one of resnet18"),
    ({"aux": True}, "the VGG16 FCN has no auxiliary head"),
])
def test_options_that_do_not_fit_the_backbone_are_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        fcn8s(3, width=NARROW, **options)
