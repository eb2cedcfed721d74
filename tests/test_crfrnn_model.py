"""The CRF-as-RNN layer on top of a zoo model: create_model(..., crf_rnn=...), two-stage training."""

import numpy as np
import pytest
import torch

from pixseg.data.synthetic import make_synthetic_voc
from pixseg.data.transforms import normalize_image
from pixseg.engine.checkpoint import load_checkpoint
from pixseg.engine.evaluate import evaluate
from pixseg.engine.train import build_model, load_initial_weights, load_trained_model, train
from pixseg.models import CRFRNN, FCN, create_model
from tests.test_train import tiny_config


def test_crf_rnn_option_wraps_the_model():
    model = create_model("fcn8s", 3, width=1 / 32, crf_rnn=True)
    assert isinstance(model, CRFRNN) and isinstance(model.base, FCN)
    assert (model.crf.iterations, model.crf.eval_iterations) == (5, 10)
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, 3, 9, 13)).shape == (2, 3, 9, 13)
    custom = create_model("fcn8s", 3, width=1 / 32, crf_rnn={"iterations": 2, "smoothness": (1.0, 2.0)})
    assert (custom.crf.iterations, custom.crf.eval_iterations, custom.crf.theta_g) == (2, 10, 2.0)
    assert isinstance(create_model("fcn8s", 3, width=1 / 32, crf_rnn=False), FCN)
    assert set(model.state_dict()) == {f"base.{key}" for key in model.base.state_dict()} | {
        "crf.appearance_weights", "crf.smoothness_weights", "crf.compatibility"}


def test_bad_crf_rnn_options():
    with pytest.raises(ValueError, match="unknown crf_rnn option steps; valid options: iterations"):
        create_model("fcn8s", 3, width=1 / 32, crf_rnn={"steps": 3})
    with pytest.raises(ValueError, match="crf_rnn = 'yes'; expected true, false or a mapping"):
        create_model("fcn8s", 3, width=1 / 32, crf_rnn="yes")


class Recorder(torch.nn.Module):
    """A stand-in network: constant logits; remembers nothing."""

    def forward(self, x):
        return torch.zeros(x.shape[0], 2, *x.shape[2:])


def test_the_layer_sees_the_image_in_colour_levels(monkeypatch):
    image = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    model = CRFRNN(Recorder(), 2, iterations=1)
    seen = []
    monkeypatch.setattr(model.crf, "forward", lambda logits, images: seen.append(images) or logits)
    model(normalize_image(image))
    assert seen[0].shape == (1, 3, 7, 9)
    assert torch.allclose(seen[0][0].permute(1, 2, 0), torch.from_numpy(image).float(), atol=1e-3)


class WithAux(torch.nn.Module):
    """A stand-in network with an auxiliary head: {"out", "aux"} in training."""

    def forward(self, x):
        logits = torch.randn(x.shape[0], 2, *x.shape[2:], generator=torch.Generator().manual_seed(0))
        return {"out": logits, "aux": logits * 2} if self.training else logits


def test_the_layer_refines_the_main_output_and_keeps_the_auxiliary_one():
    model = CRFRNN(WithAux(), 2, iterations=2)
    x = normalize_image(np.random.default_rng(1).integers(0, 256, (6, 8, 3), dtype=np.uint8))
    result = model(x)
    logits = WithAux().eval()(x)
    assert torch.equal(result["aux"], logits * 2)
    assert result["out"].shape == logits.shape and not torch.equal(result["out"], logits)
    assert torch.equal(model.eval()(x), CRFRNN(WithAux(), 2, iterations=2).eval()(x))


@pytest.fixture(scope="module")
def small_voc(tmp_path_factory):
    return make_synthetic_voc(tmp_path_factory.mktemp("voc"), n_train=10, n_val=3, size=(40, 40), seed=2,
                              progress=False)


def test_two_stage_training(small_voc, tmp_path):
    """Stage 1 trains the network; stage 2 starts from it with the layer on top, and learns the
    layer's weights along with the network's."""
    stage1 = train(tiny_config(small_voc), tmp_path / "base", progress=False)
    config = tiny_config(small_voc, **{"model.crf_rnn": "{iterations: 2, eval_iterations: 3}", "data.num_classes": 21,
                                       "model.init": str(stage1), "optim.name": "adam", "optim.lr": 0.01})
    start = build_model(config)
    load_initial_weights(start, stage1)
    base_weights = load_checkpoint(stage1)["model"]
    assert all(torch.equal(value, base_weights[key]) for key, value in start.base.state_dict().items())

    stage2 = train(config, tmp_path / "crfrnn", progress=False)
    model, saved = load_trained_model(stage2)
    assert isinstance(model, CRFRNN) and saved.model.get("init") is None
    crf = model.crf
    assert not torch.equal(crf.compatibility, 1 - torch.eye(21))
    assert not torch.equal(crf.appearance_weights, 5 * torch.eye(21))
    assert not torch.equal(model.base.state_dict()["score_fr.weight"], base_weights["score_fr.weight"])
    from pixseg.data import VOCSegmentation

    metrics = evaluate(model, VOCSegmentation(small_voc, "val"), "cpu", progress=False)
    assert 0 <= metrics["miou"] <= 1 and metrics["num_images"] == 3
    # A full stage-2 checkpoint also loads as the start of another run.
    load_initial_weights(build_model(config), stage2)


def test_init_from_another_network_is_a_clear_error(small_voc, tmp_path):
    stage1 = train(tiny_config(small_voc, iterations=1), tmp_path / "base", progress=False)
    config = tiny_config(small_voc, **{"model.width": 0.125, "model.crf_rnn": "true", "data.num_classes": 21})
    with pytest.raises(ValueError, match="model.init = .*do not fit this model"):
        load_initial_weights(build_model(config), stage1)


def test_stage_two_config_builds_the_layer_on_fcn8s():
    from pixseg.engine.config import load_config

    config = load_config("fcn8s_crfrnn_voc", ["data.num_classes=21", "model.width=0.0625"])
    model = build_model(config)
    assert isinstance(model, CRFRNN) and (model.crf.iterations, model.crf.eval_iterations) == (5, 10)
    assert (model.crf.theta_a, model.crf.theta_b, model.crf.theta_g) == (160.0, 3.0, 3.0)


def test_the_layer_learns_at_its_own_rate(small_voc):
    from pixseg.engine.train import build_optimizer

    config = tiny_config(small_voc, **{"model.crf_rnn": "true", "data.num_classes": 21, "optim.crf_lr_mult": 100})
    model = build_model(config)
    network, layer = build_optimizer(config, model).param_groups
    assert layer["lr"] == 100 * network["lr"] and len(layer["params"]) == 3
    assert len(network["params"]) == len([p for p in model.base.parameters() if p.requires_grad])
    assert len(build_optimizer(config, model.base).param_groups) == 1
