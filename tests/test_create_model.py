"""Tests for pixseg.models.create_model and the MODELS name -> builder dict."""

import pytest
import torch

from pixseg.models import FCN, MODELS, create_model, model_options


def test_models_is_a_plain_dict_with_the_fcns_first():
    assert type(MODELS) is dict
    assert list(MODELS)[:3] == ["fcn32s", "fcn16s", "fcn8s"]
    assert {"unet", "segnet", "deconvnet", "deeplab_v1", "deeplab_v2", "deeplab_v3", "deeplab_v3plus", "pspnet",
            "dilation"} <= set(MODELS)


@pytest.mark.parametrize("name, stride", [("fcn32s", 32), ("fcn16s", 16), ("fcn8s", 8)])
def test_each_name_builds_its_fcn(name, stride):
    model = create_model(name, 4, width=1 / 32).eval()
    assert isinstance(model, FCN)
    assert (model.output_stride, model.num_classes) == (stride, 4)
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 9, 13)).shape == (1, 4, 9, 13)


def test_options_reach_the_model():
    model = create_model("fcn8s", 2, width=0.125, upsample="bilinear", dropout=0.2)
    assert model.backbone.features[0].out_channels == 8
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.2}


def test_defaults_are_the_published_network():
    assert model_options("fcn8s") == {"width": 1.0, "upsample": "deconv", "pretrained": None, "dropout": 0.5,
                                      "backbone": "vgg16", "aux": False, "crf_rnn": False,
                                      "batch_norm": False,
                                      "padding": "classic"}
    with torch.device("meta"):
        model = create_model("fcn8s", 21)
    assert model.backbone.channels[3] == 4096
    assert model.upscore.weight.requires_grad


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown model 'fcn4s'; expected one of: fcn32s, fcn16s, fcn8s"):
        create_model("fcn4s", 21)


def test_unknown_option_lists_the_valid_options():
    expected = "unknown option depth, widht for model 'fcn8s'; valid options: width, upsample, pretrained, dropout"
    with pytest.raises(ValueError, match=expected):
        create_model("fcn8s", 21, widht=0.5, depth=3)


def test_missing_pretrained_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="vgg16-missing.pth: no such file"):
        create_model("fcn16s", 21, pretrained=tmp_path / "vgg16-missing.pth")
