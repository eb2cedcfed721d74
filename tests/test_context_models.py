"""Tests for the context family: DeepLab v1 / v2 / v3 / v3+, PSPNet and Dilation."""

import pytest
import torch
import torch.nn.functional as F

from pixseg.data import VOCSegmentation
from pixseg.data.synthetic import make_synthetic_voc
from pixseg.data.transforms import EvalTransform
from pixseg.metrics import ConfusionMatrix
from pixseg.models import create_model
from pixseg.models.dilation import context_module, identity_init
from pixseg.models.layers import resample
from pixseg.models.pspnet import BinAverage

NAMES = ("deeplab_v1", "deeplab_v2", "deeplab_v3", "deeplab_v3plus", "pspnet", "dilation")
# Small but every layer present: builds in milliseconds, trains in seconds.
NARROW = {"deeplab_v1": {"width": 1 / 16}, "deeplab_v2": {"backbone": "resnet18", "width": 1 / 8},
          "deeplab_v3": {"backbone": "resnet18", "width": 1 / 8, "head": "torchvision", "aux": True},
          "deeplab_v3plus": {"backbone": "resnet18", "width": 1 / 8}, "pspnet": {"backbone": "resnet18", "width": 1 / 8},
          "dilation": {"width": 1 / 16}}


def count(name, num_classes=21, **options):
    with torch.device("meta"):
        model = create_model(name, num_classes, **options)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, options, expected", [
    ("deeplab_v1", {}, 20_505_429),
    ("deeplab_v2", {}, 44_048_532),
    ("deeplab_v3", {}, 58_040_661),
    ("deeplab_v3", {"head": "torchvision"}, 58_630_997),
    ("deeplab_v3", {"head": "torchvision", "aux": True}, 60_996_202),  # torchvision's deeplabv3_resnet101
    ("deeplab_v3", {"backbone": "resnet50"}, 39_048_533),
    ("deeplab_v3plus", {}, 59_344_309),
    ("deeplab_v3plus", {"backbone": "resnet50"}, 40_352_181),
    ("pspnet", {"aux": False}, 65_708_501),  # semseg's, whose deep stem this one does not have
    ("pspnet", {}, 68_073_706),
    ("pspnet", {"backbone": "resnet50"}, 49_081_578),
    ("dilation", {"context": "none"}, 134_346_581),
    ("dilation", {"context": "basic"}, 134_346_581 + 28_392),
    ("dilation", {"context": "large"}, 134_346_581 + 6_803_139),
])
def test_parameter_counts_are_the_references_within_one_percent(name, options, expected):
    assert abs(count(name, **options) - expected) <= 0.01 * expected


def test_exact_counts_where_the_layers_are_the_references():
    assert count("deeplab_v1") == 20_505_429 and count("deeplab_v3plus") == 59_344_309
    assert count("dilation", context="none") == 134_346_581
    # Separable convs are the cheap variant.
    assert count("deeplab_v3plus", separable=True) < 0.8 * count("deeplab_v3plus")


def test_resample_reads_a_map_at_the_exact_input_positions():
    # A map whose value is its pixels' input coordinate, resampled to the input, gives each input
    # pixel its own coordinate (inside the span the map covers).
    for origin, stride, size in ((0.0, 8, 33), (3.5, 8, 40), (1.5, 4, 23)):
        cells = -(-size // stride)
        coordinates = origin + stride * torch.arange(cells, dtype=torch.float32)
        x = coordinates.expand(1, 1, cells, cells).contiguous()
        out = resample(x, (origin, stride), (0.0, 1.0), (size, size))[0, 0]
        inside = (torch.arange(size) >= origin) & (torch.arange(size) <= coordinates[-1])
        torch.testing.assert_close(out[0, inside], torch.arange(size, dtype=torch.float32)[inside])
        rows = resample(x.transpose(-1, -2), (origin, stride), (0.0, 1.0), (size, size))[0, 0]
        torch.testing.assert_close(rows[inside, 0], torch.arange(size, dtype=torch.float32)[inside])


def narrow(name, **options):
    torch.manual_seed(0)
    return create_model(name, 3, **{**NARROW[name], **options})


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(17, 23), (1, 1), (40, 9)])
def test_output_has_the_input_size(name, size):
    model = narrow(name).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 3, *size)


def symmetrise(model):
    """Mirror-symmetric kernels everywhere: an aligned net then commutes with flips."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and module.kernel_size[0] > 1:
                weight = module.weight + module.weight.flip(-1)
                module.weight.copy_((weight + weight.flip(-2)) / 4)


@pytest.mark.parametrize("name", NAMES)
def test_output_is_aligned_with_the_input(name):
    # Sizes every strided layer tiles symmetrically: 8k for VGG's 2x2 pools, 16k + 1 for the
    # padded stride-2 convs of ResNet. A grid off by a pixel breaks the flip symmetry.
    model = narrow(name).eval()
    symmetrise(model)
    x = torch.randn(1, 3, 40, 56) if name in ("deeplab_v1", "dilation") else torch.randn(1, 3, 33, 49)
    with torch.no_grad():
        out = model(x)
        for axis in (-1, -2):
            error = (model(x.flip(axis)) - out.flip(axis)).abs().max() / out.abs().max()
            assert error < 1e-4, axis
        grids = model.backbone.grids
        model.backbone.grids = lambda: [(origin + 1, stride) for origin, stride in grids()]
        shifted = model(x)
        assert ((model(x.flip(-1)) - shifted.flip(-1)).abs().max() / shifted.abs().max()) > 1e-3


@pytest.mark.parametrize("height, width", [(1, 1), (5, 7), (13, 9), (37, 61), (6, 6)])
@pytest.mark.parametrize("bins", [1, 2, 3, 6])
def test_pyramid_bins_are_adaptive_average_pooling(height, width, bins):
    # Odd sizes give overlapping bins of unequal sizes (floor(i H / b) .. ceil((i + 1) H / b)); in
    # float64 any other bound or weight would differ by far more than rounding.
    images = torch.randn(2, 3, height, width, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(BinAverage(bins)(images), F.adaptive_avg_pool2d(images, bins), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["deeplab_v3", "pspnet"])
def test_aux_head_is_returned_in_training_only(name):
    model = narrow(name).train()
    x = torch.randn(2, 3, 33, 33)
    outputs = model(x)
    assert set(outputs) == {"out", "aux"} and outputs["aux"].shape == outputs["out"].shape == (2, 3, 33, 33)
    assert isinstance(model.eval()(x), torch.Tensor)
    assert isinstance(narrow(name, aux=False).train()(x), torch.Tensor)


def test_context_modules_start_as_the_identity_on_nonnegative_input():
    x = torch.rand(2, 5, 12, 12)
    torch.testing.assert_close(context_module(5, "basic")(x), x)
    torch.manual_seed(0)
    large = context_module(5, "large")
    # The noise the large module starts with is small next to the identity it carries.
    assert ((large(x) - x).abs().mean() / x.abs().mean()) < 0.2
    for layer in large:
        if isinstance(layer, torch.nn.Conv2d):
            identity_init(layer, noise=0.0)
    torch.testing.assert_close(large(x), x)


def test_dilation_front_end_drops_pool4_and_pool5():
    model = create_model("dilation", 2, width=1 / 16)
    pools = [m for m in model.backbone.features if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 3 and all(p.stride == 2 for p in pools)
    assert model.backbone.classifier[0].dilation == (4, 4) and model.backbone.strides[3] == 8


@pytest.mark.parametrize("name, options, message", [
    ("deeplab_v1", {"backbone": "resnet50"}, "backbone must be one of vgg16, vgg16_bn, got 'resnet50'"),
    ("deeplab_v3", {"backbone": "vgg16"}, "backbone must be one of resnet18"),
    ("deeplab_v3", {"head": "mmseg"}, "head must be one of paper, torchvision, got 'mmseg'"),
    ("deeplab_v3", {"output_stride": 4}, "output_stride must be one of 8, 16, 32, got 4"),
    ("pspnet", {"aux": "yes"}, "aux must be True or False, got 'yes'"),
    ("dilation", {"context": "huge"}, "context must be one of none, basic, large, got 'huge'"),
    ("deeplab_v3plus", {"width": 0}, "width must be a finite number > 0"),
])
def test_bad_options_are_one_clear_error(name, options, message):
    with pytest.raises(ValueError, match=message):
        create_model(name, 21, **options)


def test_image_pooling_refuses_to_train_on_one_image():
    with pytest.raises(ValueError, match="batch_size >= 2"):
        narrow("deeplab_v3plus").train()(torch.randn(1, 3, 33, 33))


@pytest.mark.parametrize("name, backbone", [("deeplab_v3", "resnet101"), ("pspnet", "resnet50"),
                                            ("deeplab_v1", "vgg16"), ("dilation", "vgg16")])
def test_pretrained_backbone_loads_a_torchvision_layout_checkpoint(tmp_path, name, backbone):
    from test_backbones import cheap_state, torchvision_shapes
    from test_vgg import torchvision_state

    if backbone == "vgg16":
        state = torchvision_state(lambda shape: torch.full((1,), 0.25).expand(shape))
    else:
        state = cheap_state(torchvision_shapes(backbone))
    path = tmp_path / f"{backbone}.pth"
    torch.save(state, path)
    model = create_model(name, 21, backbone=backbone, pretrained=path)
    own = model.backbone.state_dict()
    for key, value in own.items():
        if not key.endswith("num_batches_tracked"):
            assert value.min() == value.max() == state[key].reshape(-1)[0], key
    head = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    assert head and all(torch.isfinite(p).all() and not p.is_meta for p in head)
    with pytest.raises(ValueError, match="width=1.0 only"):
        create_model(name, 21, backbone=backbone, pretrained=path, width=0.5)


def overfit_loss(name, steps, step=True):
    """Train a narrow model on one fixed batch; the loss on it before and after."""
    torch.manual_seed(0)
    model = narrow(name).train()
    x = torch.randn(2, 3, 33, 33)
    labels = torch.zeros(2, 33, 33, dtype=torch.long)
    labels[0, 8:24, 6:20] = 1
    labels[1, 4:14, 12:30] = 2
    x[:, 0] += labels.float()  # learnable, but only with the context of each object
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss():
        outputs = model(x)
        if isinstance(outputs, dict):
            return F.cross_entropy(outputs["out"], labels) + 0.4 * F.cross_entropy(outputs["aux"], labels)
        return F.cross_entropy(outputs, labels)

    torch.manual_seed(1)
    first = loss().item()
    for _ in range(steps):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        if step:
            optimizer.step()
    return first, loss().item()


@pytest.mark.parametrize("name", NAMES)
def test_each_model_overfits_a_fixed_batch(name):
    # Dilation's plain VGG (no BN, dropout 0.5) under a near-zero final layer starts slower.
    first, last = overfit_loss(name, 80 if name == "dilation" else 40)
    assert last < 0.4 * first, (first, last)


def test_overfit_check_fails_without_optimizer_steps():
    first, last = overfit_loss("pspnet", 10, step=False)
    assert last > 0.8 * first


@pytest.fixture(scope="module")
def fixed_batch(tmp_path_factory):
    """Eight synthetic images with VOC's 21 classes, and the mIoU of predicting background everywhere."""
    root = make_synthetic_voc(tmp_path_factory.mktemp("voc"), n_train=8, n_val=1, size=(48, 48), seed=3,
                              progress=False)
    dataset = VOCSegmentation(root, "train")
    pairs = [EvalTransform()(*dataset[index]) for index in range(8)]
    images, labels = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    return images, labels, batch_miou(torch.zeros_like(labels), labels)


def batch_miou(predicted, labels) -> float:
    matrix = ConfusionMatrix(21)
    matrix.update(predicted, labels)
    return matrix.compute()["miou"]


def learned_miou(model, images, labels, steps, step=True) -> float:
    """mIoU on a fixed batch after `steps` Adam steps on it (the zoo's learning rate)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        loss = F.cross_entropy(model(images), labels, ignore_index=255)
        optimizer.zero_grad()
        loss.backward()
        if step:
            optimizer.step()
    with torch.no_grad():
        return batch_miou(model.eval()(images).argmax(1), labels)


# How far a few dozen steps must lift mIoU on the fixed batch above all-background (IoU, 0..1).
LEARNING_MARGIN = 0.05
# The VGG nets the zoo trains from scratch, at its quick settings (narrower where that still learns),
# and the steps each needs: without residual paths they sit at the class prior (all background) for
# a few dozen steps before the object classes separate, the longest where the only path to the
# scores is the deepest. SegNet and DeconvNet, whose decoders see only the deepest features, are
# tested at the zoo's width: narrower, they find the objects but do not tell their classes apart.
VGG_NETS = {"fcn8s": ({"width": 1 / 16, "padding": "compact", "batch_norm": True}, 40),
            "deeplab_v1": ({"backbone": "vgg16_bn", "width": 1 / 16}, 60),
            "dilation": ({"backbone": "vgg16_bn", "width": 1 / 16, "context": "none"}, 70),
            "segnet": ({"width": 1 / 4}, 80),
            "deconvnet": ({"width": 1 / 4}, 80)}


@pytest.mark.parametrize("name", VGG_NETS)
def test_vgg_nets_beat_all_background_on_a_fixed_batch(fixed_batch, name):
    images, labels, background = fixed_batch
    options, steps = VGG_NETS[name]
    torch.manual_seed(0)
    score = learned_miou(create_model(name, 21, **options), images, labels, steps)
    assert score > background + LEARNING_MARGIN, (score, background)


def test_dilation_context_module_learns_on_a_trained_front_end(fixed_batch):
    # As the zoo trains it: the front end first, then the context module added at its identity start.
    images, labels, background = fixed_batch
    torch.manual_seed(0)
    options, steps = VGG_NETS["dilation"]
    front = create_model("dilation", 21, **options)
    learned_miou(front, images, labels, steps)
    whole = create_model("dilation", 21, **{**options, "context": "basic"})
    assert whole.load_state_dict(front.state_dict(), strict=False).missing_keys == [
        name for name in whole.state_dict() if name.startswith("context.")]
    score = learned_miou(whole, images, labels, 20)
    assert score > background + LEARNING_MARGIN, (score, background)


@pytest.mark.parametrize("name", ["dilation", "segnet", "deconvnet"])
def test_learning_check_fails_without_optimizer_steps(fixed_batch, name):
    images, labels, background = fixed_batch
    torch.manual_seed(0)
    score = learned_miou(create_model(name, 21, **VGG_NETS[name][0]), images, labels, 5, step=False)
    assert score < background + LEARNING_MARGIN
