"""Tests for pixseg.models.backbones: the contract every backbone keeps, and torchvision checkpoints."""

import pytest
import torch

from pixseg.models.backbones import BACKBONES, create_backbone

# torchvision's published parameter counts, ImageNet classifier included.
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                      "resnet101": 44_549_160, "mobilenet_v2": 3_504_872}
RESNET_BLOCKS = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet34": ("basic", (3, 4, 6, 3)),
                 "resnet50": ("bottleneck", (3, 4, 6, 3)), "resnet101": ("bottleneck", (3, 4, 23, 3))}


def batch_norm(name, channels):
    shapes = {f"{name}.{key}": (channels,) for key in ("weight", "bias", "running_mean", "running_var")}
    return {**shapes, f"{name}.num_batches_tracked": ()}


def torchvision_resnet_shapes(name):
    """torchvision's resnet state dict layout, written out: key -> shape."""
    kind, layers = RESNET_BLOCKS[name]
    shapes = {"conv1.weight": (64, 3, 7, 7), **batch_norm("bn1", 64)}
    in_channels = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        for index in range(blocks):
            prefix = f"layer{stage}.{index}"
            if kind == "basic":
                convs = [(planes, in_channels, 3), (planes, planes, 3)]
            else:
                convs = [(planes, in_channels, 1), (planes, planes, 3), (planes * 4, planes, 1)]
            for number, (out, inp, k) in enumerate(convs, start=1):
                shapes[f"{prefix}.conv{number}.weight"] = (out, inp, k, k)
                shapes.update(batch_norm(f"{prefix}.bn{number}", out))
            out = convs[-1][0]
            if index == 0 and (stage > 1 or in_channels != out):
                shapes[f"{prefix}.downsample.0.weight"] = (out, in_channels, 1, 1)
                shapes.update(batch_norm(f"{prefix}.downsample.1", out))
            in_channels = out
    return {**shapes, "fc.weight": (1000, in_channels), "fc.bias": (1000,)}


def torchvision_mobilenet_v2_shapes():
    """torchvision's mobilenet_v2 state dict layout, written out: key -> shape."""
    shapes = {"features.0.0.weight": (32, 3, 3, 3), **batch_norm("features.0.1", 32)}
    blocks = [(32, 16, 1)] + [(16, 24, 6), (24, 24, 6)] + [(24, 32, 6)] + [(32, 32, 6)] * 2 + [(32, 64, 6)] \
        + [(64, 64, 6)] * 3 + [(64, 96, 6)] + [(96, 96, 6)] * 2 + [(96, 160, 6)] + [(160, 160, 6)] * 2 \
        + [(160, 320, 6)]
    for index, (inp, out, expansion) in enumerate(blocks, start=1):
        prefix, hidden = f"features.{index}.conv", inp * expansion
        if expansion == 1:
            layers = [("0.0", (hidden, 1, 3, 3)), ("0.1", hidden), ("1", (out, hidden, 1, 1)), ("2", out)]
        else:
            layers = [("0.0", (hidden, inp, 1, 1)), ("0.1", hidden), ("1.0", (hidden, 1, 3, 3)), ("1.1", hidden),
                      ("2", (out, hidden, 1, 1)), ("3", out)]
        for name, shape in layers:
            shapes.update(batch_norm(f"{prefix}.{name}", shape) if isinstance(shape, int)
                          else {f"{prefix}.{name}.weight": shape})
    shapes.update({"features.18.0.weight": (1280, 320, 1, 1), **batch_norm("features.18.1", 1280)})
    return {**shapes, "classifier.1.weight": (1000, 1280), "classifier.1.bias": (1000,)}


def torchvision_shapes(name):
    return torchvision_mobilenet_v2_shapes() if name == "mobilenet_v2" else torchvision_resnet_shapes(name)


def cheap_state(shapes):
    # Stride-0 views of one number: full-size shapes that take no memory, and almost none on disk.
    return {key: torch.tensor(3) if key.endswith("num_batches_tracked") else torch.full((1,), 0.5).expand(shape)
            for key, shape in shapes.items()}


@pytest.mark.parametrize("name", TORCHVISION_PARAMS)
def test_layout_is_torchvisions_less_the_classifier(name):
    shapes = torchvision_shapes(name)
    learned = [shape for key, shape in shapes.items() if key.rsplit(".", 1)[1] in ("weight", "bias")]
    assert sum(torch.Size(shape).numel() for shape in learned) == TORCHVISION_PARAMS[name]
    with torch.device("meta"):
        backbone = create_backbone(name)
    own = {key: tuple(value.shape) for key, value in backbone.state_dict().items()}
    classifier = {"fc.weight", "fc.bias", "classifier.1.weight", "classifier.1.bias"}
    assert own == {key: shape for key, shape in shapes.items() if key not in classifier}


@pytest.mark.parametrize("name", TORCHVISION_PARAMS)
def test_checkpoint_loads_strictly_with_or_without_classifier_and_counters(name, tmp_path):
    state = cheap_state(torchvision_shapes(name))
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    backbone = create_backbone(name, pretrained=path)
    for key, value in backbone.state_dict().items():
        assert value.dtype == state[key].dtype and torch.equal(value, state[key]), key
    old = {key: value for key, value in state.items()
           if not key.endswith("num_batches_tracked") and not key.startswith(("fc.", "classifier."))}
    torch.save(old, path)
    counters = [value for key, value in create_backbone(name, pretrained=path).state_dict().items()
                if key.endswith("num_batches_tracked")]
    assert counters and all(value == 0 for value in counters)


@pytest.mark.parametrize("name, key", [("resnet50", "layer3.4.bn2.running_mean"), ("mobilenet_v2", "features.7.conv.1.0.weight")])
def test_missing_or_misshapen_key_is_named(name, key, tmp_path):
    state = cheap_state(torchvision_shapes(name))
    path = tmp_path / "bad.pth"
    shape = tuple(state[key].shape)
    del state[key]
    torch.save(state, path)
    with pytest.raises(ValueError, match=f"bad.pth: missing keys {key} "):
        create_backbone(name, pretrained=path)
    state[key] = torch.zeros(shape[0] + 1)
    torch.save(state, path)
    with pytest.raises(ValueError, match=rf"{key} has shape \({shape[0] + 1},\), expected \({shape[0]},"):
        create_backbone(name, pretrained=path)
    state[key], state["layer5.weight"] = torch.zeros(shape), torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(ValueError, match="unexpected keys layer5.weight"):
        create_backbone(name, pretrained=path)


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_contract_maps_strides_channels_and_sizes(name, output_stride):
    backbone = create_backbone(name, width=0.125, output_stride=output_stride).eval()
    strides = tuple(min(s, output_stride) for s in (4, 8, 16, 32))
    assert backbone.strides == strides and backbone.output_stride == output_stride
    assert [stride for _, stride in backbone.grids()] == list(strides)
    with torch.no_grad():
        maps = backbone(torch.randn(2, 3, 37, 50))
    assert [tuple(m.shape) for m in maps] == [(2, c, -(-37 // s), -(-50 // s))
                                              for c, s in zip(backbone.channels, strides)]


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2"])
def test_dilation_keeps_the_weights_and_the_maps_before_it(name):
    # The same parameters serve every output stride; the stride-4 and stride-8 maps do not change.
    torch.manual_seed(0)
    plain = create_backbone(name, width=0.25).eval()
    dilated = create_backbone(name, width=0.25, output_stride=8).eval()
    dilated.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = plain(x), dilated(x)
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    convs = [m for m in dilated.modules() if isinstance(m, torch.nn.Conv2d)]
    assert max(m.dilation[0] for m in convs) == 4 and all(m.stride[0] == 1 for m in convs[-5:])


def test_create_backbone_names_unknown_names_and_options():
    with pytest.raises(ValueError, match="unknown backbone 'resnet152'; expected one of: vgg16, vgg16_bn"):
        create_backbone("resnet152")
    with pytest.raises(ValueError, match="unknown option fc for backbone 'resnet18'; valid options: width, "
                                         "output_stride, pretrained"):
        create_backbone("resnet18", fc=True)
    with pytest.raises(ValueError, match="output_stride must be one of 8, 16, 32, got 4"):
        create_backbone("mobilenet_v2", output_stride=4)
    with pytest.raises(ValueError, match="pretrained ResNet-50 weights fit width=1.0 only"):
        create_backbone("resnet50", width=0.5, pretrained="resnet50.pth")
