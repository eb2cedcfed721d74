import json

import pytest
import torch

import pixseg.engine.train as train_module
from pixseg.data.synthetic import make_synthetic_voc
from pixseg.engine.config import load_config
from pixseg.engine.holdout import split_holdout
from pixseg.engine.train import ResumableBatches, load_trained_model, train


@pytest.fixture(scope="module")
def tiny_voc(tmp_path_factory):
    return make_synthetic_voc(tmp_path_factory.mktemp("voc"), n_train=10, n_val=3, size=(40, 40), seed=1,
                              progress=False)


def tiny_config(root, **extra):
    overrides = [f"data.root={root}", "model.width=0.0625", "data.crop_size=32", "batch_size=2",
                 "iterations=4", "val_every=3", "checkpoint_every=2", "optim.name=sgd", "optim.lr=0.01",
                 *[f"{k}={v}" for k, v in extra.items()]]
    return load_config("experiment_quick", overrides)


def test_batches_can_start_at_any_step():
    full = list(ResumableBatches(10, 3, seed=5, start=0, total=9))
    assert list(ResumableBatches(10, 3, seed=5, start=4, total=9)) == full[4:]
    assert len(full) == 9 and all(len(batch) == 3 for batch in full)
    first_epoch = [index for batch in full[:3] for index, _ in batch]
    assert len(set(first_epoch)) == 9  # no repeats inside an epoch
    seeds = [seed for batch in full for _, seed in batch]
    assert len(set(seeds)) == len(seeds)


def test_holdout_is_fixed_and_disjoint(tiny_voc):
    from pixseg.data import VOCSegmentation

    train_set = VOCSegmentation(tiny_voc, "train")
    fit, held = split_holdout(train_set, 0.2)
    again_fit, again_held = split_holdout(train_set, 0.2)
    assert held.ids == again_held.ids and len(held) == 2 and len(fit) == 8
    assert not set(fit.ids) & set(held.ids)
    with pytest.raises(ValueError, match="holdout"):
        split_holdout(train_set, 1.0)


def test_training_writes_log_and_checkpoint(tiny_voc, tmp_path):
    checkpoint = train(tiny_config(tiny_voc), tmp_path, progress=False)
    state = torch.load(checkpoint, weights_only=True)
    assert state["step"] == 4 and state["config"]["model"]["width"] == 0.0625
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    validations = [line for line in lines if line.get("split") == "val"]
    assert [line["step"] for line in validations] == [3, 4]
    assert all(0 <= line["miou"] <= 1 for line in validations)
    model, config = load_trained_model(checkpoint)
    assert not model.training and config.iterations == 4


def straight_and_resumed(config, tmp_path, monkeypatch):
    """Checkpoints of `config` trained without a stop, and killed at step 3 (after the step-2
    checkpoint of tiny_config) then resumed."""
    straight = train(config, tmp_path / "straight", progress=False)

    class Crash(Exception):
        pass

    def crash(*args, **kwargs):
        raise Crash  # dies at step 3, after the step-2 checkpoint

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "evaluate", crash)
        with pytest.raises(Crash):
            train(config, tmp_path / "resumed", progress=False)
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["step"] == 2
    return straight, train(config, tmp_path / "resumed", resume=True, progress=False)


def test_resume_continues_exactly(tiny_voc, tmp_path, monkeypatch):
    straight, resumed = straight_and_resumed(tiny_config(tiny_voc), tmp_path, monkeypatch)

    a = torch.load(straight, weights_only=True)["model"]
    b = torch.load(resumed, weights_only=True)["model"]
    assert all(torch.equal(a[key], b[key]) for key in a)
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps.count(4) == 2  # a loss line and a val line, no duplicates


def test_resume_refuses_a_different_config(tiny_voc, tmp_path):
    train(tiny_config(tiny_voc), tmp_path, progress=False)
    with pytest.raises(ValueError, match="optim.lr"):
        train(tiny_config(tiny_voc, **{"optim.lr": 0.5}), tmp_path, resume=True, progress=False)


def test_missing_dataset_and_too_small_split(tiny_voc, tmp_path):
    config = tiny_config(tiny_voc)
    config.data.root = None
    with pytest.raises(ValueError, match="--data"):
        train(config, tmp_path, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        train(tiny_config(tiny_voc, batch_size=64), tmp_path, progress=False)


def test_weighted_loss_gets_class_weights_from_the_training_images(tiny_voc, tmp_path):
    from pixseg.engine.train import build_loss, training_split

    config = tiny_config(tiny_voc, loss="{name: weighted_ce}")
    criterion = build_loss(config, training_split(config), progress=False)
    weights = criterion.weight
    assert weights.shape == (21,) and weights[0] > 0
    assert (weights >= 0).all() and weights.max() > weights[0]  # objects are rarer than background


class TwoPart(torch.nn.Module):
    """A backbone (conv + norm) and a head, as the models lay them out."""

    def __init__(self, aux=False):
        super().__init__()
        self.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4))
        self.head = torch.nn.Conv2d(4, 3, 1)
        self.aux = torch.nn.Conv2d(4, 3, 1) if aux else None

    def forward(self, x):
        features = self.backbone(x)
        out = self.head(features)
        return {"out": out, "aux": self.aux(features)} if self.training and self.aux else out


def test_parameter_groups_split_head_from_backbone_and_decay_from_norms_and_biases(tiny_voc):
    config = tiny_config(tiny_voc, **{"optim.head_lr_mult": 10, "optim.no_decay_norm_bias": "true",
                                      "optim.weight_decay": 0.01, "optim.lr": 0.1})
    model = TwoPart()
    groups = {(g["lr"], g["weight_decay"]): {id(p) for p in g["params"]}
              for g in train_module.parameter_groups(model, config.optim)}
    ids = lambda *params: {id(p) for p in params}  # noqa: E731
    assert groups == {
        (0.1, 0.01): ids(model.backbone[0].weight),
        (0.1, 0.0): ids(model.backbone[0].bias, model.backbone[1].weight, model.backbone[1].bias),
        (1.0, 0.01): ids(model.head.weight),
        (1.0, 0.0): ids(model.head.bias),
    }
    # The defaults give one group, as optimisers saved before groups existed expect.
    plain = train_module.parameter_groups(model, tiny_config(tiny_voc).optim)
    assert len(plain) == 1 and len(plain[0]["params"]) == 6


def test_training_loss_adds_the_weighted_auxiliary_loss():
    model = TwoPart(aux=True).train()
    x, labels = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    criterion = torch.nn.CrossEntropyLoss()
    outputs = model(x)
    expected = criterion(outputs["out"], labels) + 0.25 * criterion(outputs["aux"], labels)
    torch.testing.assert_close(train_module.training_loss(criterion, outputs, labels, 0.25), expected)
    assert isinstance(model.eval()(x), torch.Tensor)
    torch.testing.assert_close(train_module.training_loss(criterion, model(x), labels, 0.25),
                               criterion(model(x), labels))


@pytest.mark.parametrize("model", ["model.name=unet", "model.name=segnet", "model.name=deconvnet",
                                   "model={name: fcn8s, backbone: resnet18, aux: true, padding: classic, batch_norm: false}"])
def test_every_architecture_trains_and_evaluates_through_the_same_path(tiny_voc, tmp_path, model):
    # Another model name keeps the width and drops the FCN options the model does not take; a
    # whole mapping replaces the FCN options of the packaged config.
    key, value = model.split("=")
    config = tiny_config(tiny_voc, **{key: value, "iterations": 2, "val_every": 2,
                                      "optim.head_lr_mult": 10, "optim.no_decay_norm_bias": "true"})
    checkpoint = train(config, tmp_path, progress=False)
    trained, saved = load_trained_model(checkpoint)
    if key == "model.name":
        assert "padding" not in saved.model and saved.model["width"] == 0.0625
    from pixseg.engine.datasets import open_split
    from pixseg.engine.evaluate import evaluate

    assert 0 <= evaluate(trained, open_split(saved.data, "val"), "cpu", progress=False)["miou"] <= 1
