import pytest

from pixseg.engine.config import load_config, packaged_config_names, parse_overrides


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_and_overrides_are_typed(tmp_path):
    config = load_config(write(tmp_path, "model: {name: fcn16s, width: 0.5}\n"),
                         ["optim.lr=0.05", "loss={name: fused, ws: 0.3, wp: 0.7}", "data.crop_size=64"])
    assert config.model == {"name": "fcn16s", "width": 0.5}
    assert config.optim.lr == 0.05 and config.data.crop_size == 64
    assert config.loss == {"name": "fused", "ws": 0.3, "wp": 0.7}
    assert config.optim.momentum == 0.9  # untouched default


def test_loss_override_of_one_option_keeps_the_rest(tmp_path):
    config = load_config(write(tmp_path, "loss: {name: fused, ws: 0.5, wp: 0.5}\n"), ["loss.wp=0.9"])
    assert config.loss == {"name": "fused", "ws": 0.5, "wp": 0.9}


def test_renaming_the_loss_replaces_its_options(tmp_path):
    config = load_config(write(tmp_path, "loss: {name: fused, ws: 0.5, wp: 0.5}\n"), ["loss={name: ce}"])
    assert config.loss == {"name": "ce"}


def toy(num_classes, *, width=1.0, pretrained=None):
    """A builder that takes fewer options than the FCNs."""


def test_model_options_go_to_the_builder_and_renaming_keeps_the_ones_it_takes(tmp_path, monkeypatch):
    from pixseg.models import MODELS

    monkeypatch.setitem(MODELS, "toy", toy)
    path = write(tmp_path, "model: {name: fcn8s, width: 0.25, padding: compact}\n")
    assert load_config(path, ["model.upsample=bilinear"]).model == {
        "name": "fcn8s", "width": 0.25, "padding": "compact", "upsample": "bilinear"}
    assert load_config(path, ["model.name=fcn16s"]).model == {"name": "fcn16s", "width": 0.25, "padding": "compact"}
    assert load_config(path, ["model.name=toy"]).model == {"name": "toy", "width": 0.25}
    assert load_config(path, ["model={name: toy, pretrained: x.pth}"]).model == {
        "name": "toy", "width": 0.25, "pretrained": "x.pth"}
    with pytest.raises(ValueError, match="unknown option padding for model 'toy'; valid options: width, pretrained"):
        load_config(path, ["model={name: toy, padding: compact}"])


@pytest.mark.parametrize("text, words", [
    ("modle: {name: fcn8s}\n", ["modle"]),
    ("model: {name: fcn8s, widht: 2}\n", ["config.yaml", "unknown option widht", "model 'fcn8s'", "valid options: width"]),
    ("model: {name: fcn4s}\n", ["model.name", "'fcn4s'", "fcn8s"]),
    ("model: {width: 2}\n", ["model", "'name'"]),
    ("optim: {head_lr_mult: 0}\n", ["optim.head_lr_mult", "0"]),
    ("optim: {no_decay_norm_bias: 1}\n", ["optim.no_decay_norm_bias"]),
    ("aux_weight: -1\n", ["aux_weight", "-1"]),
    ("optim: {name: rmsprop}\n", ["optim.name", "rmsprop"]),
    ("iterations: 10\nepochs: 2\n", ["iterations", "epochs"]),
    ("batch_size: 0\n", ["batch_size", "0"]),
    ("data: {scale_range: [2.0, 1.0]}\n", ["scale_range"]),
    ("loss: {ws: 1}\n", ["loss", "name"]),
])
def test_bad_configs_name_the_key(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as error:
        load_config(path)
    for word in words:
        assert word in str(error.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ValueError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(write(tmp_path, "model: [unclosed\n"))


def test_override_syntax_error():
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["optim.lr"])


def test_packaged_configs_load():
    names = packaged_config_names()
    assert {"experiment_quick", "experiment_full", "fcn8s_voc", "fcn8s_voc_fused"} <= set(names)
    for name in names:
        load_config(name)
