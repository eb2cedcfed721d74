"""Training learns: a fixed batch is overfitted, a few dozen steps beat predicting background
everywhere, and a resumed run of a model that learns ends where an uninterrupted one does.

Every bound here fails when the optimiser stops updating the weights: the score layers start at
zero, so an untrained FCN predicts the uniform distribution (loss ln 21) and background's tie-break
everywhere.
"""

import json
import math

import numpy as np
import pytest
import torch

import pixseg.engine.train as train_module
from pixseg.data import VOCSegmentation
from pixseg.data.synthetic import make_synthetic_voc
from pixseg.data.transforms import EvalTransform
from pixseg.engine.checkpoint import save_checkpoint
from pixseg.engine.config import load_config
from pixseg.engine.evaluate import evaluate
from pixseg.engine.train import load_trained_model, train, training_split
from pixseg.losses import create_loss
from pixseg.metrics import ConfusionMatrix
from pixseg.models import create_model

STEPS = 40
# How far a few dozen steps must lift mIoU on the training images above the all-background
# prediction (in IoU, 0..1).
MARGIN = 0.02


@pytest.fixture(scope="module")
def tiny_voc(tmp_path_factory):
    return make_synthetic_voc(tmp_path_factory.mktemp("voc"), n_train=8, n_val=2, size=(48, 48), seed=1,
                              progress=False)


def learning_config(root, **extra):
    overrides = [f"data.root={root}", "model.width=0.125", "data.crop_size=48", "batch_size=4",
                 f"iterations={STEPS}", "checkpoint_every=20", "val_every=30", "optim.lr=0.003", "data.holdout=0",
                 "device=cpu", "data.num_classes=21", *[f"{k}={v}" for k, v in extra.items()]]
    return load_config("experiment_quick", overrides)


def all_background_score(dataset) -> dict:
    matrix = ConfusionMatrix(dataset.num_classes)
    for index in range(len(dataset)):
        label = torch.as_tensor(np.asarray(dataset[index][1], dtype=np.int64))
        matrix.update(torch.zeros_like(label), label)
    return matrix.compute()


def test_a_fixed_batch_is_overfitted(tiny_voc):
    torch.manual_seed(0)
    dataset = VOCSegmentation(tiny_voc, "train")
    pairs = [EvalTransform()(*dataset[index]) for index in range(4)]
    images, labels = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    model = create_model("fcn8s", 21, width=0.125, padding="compact", batch_norm=True, dropout=0.0)
    criterion = create_loss({"name": "ce"}, 21)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    losses = []
    for _ in range(60):
        loss = criterion(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(21), rel=1e-4)
    assert losses[-1] < 0.25 * losses[0]
    model.eval()
    with torch.no_grad():
        predicted = model(images).argmax(1)
    valid = labels != 255
    objects = valid & (labels > 0)
    assert (predicted[valid] == labels[valid]).float().mean() > 0.9
    assert (predicted[objects] == labels[objects]).float().mean() > 0.5


@pytest.fixture(scope="module")
def learned(tiny_voc, tmp_path_factory):
    out = tmp_path_factory.mktemp("learned")
    return train(learning_config(tiny_voc), out, progress=False)


def test_a_few_dozen_steps_beat_all_background(learned):
    model, config = load_trained_model(learned)
    images = training_split(config)
    scores = evaluate(model, images, "cpu", progress=False)
    background = all_background_score(images)
    assert scores["miou"] > background["miou"] + MARGIN
    assert scores["fg_recall"] > 0.05 and scores["pixel_acc"] > background["pixel_acc"]


def test_resumed_training_ends_where_uninterrupted_training_does(tiny_voc, learned, tmp_path, monkeypatch):
    class Crash(Exception):
        pass

    def crash(*args, **kwargs):
        raise Crash  # the first validation, step 30: after the step-20 checkpoint

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "evaluate", crash)
        with pytest.raises(Crash):
            train(learning_config(tiny_voc), tmp_path, progress=False)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 20
    resumed = train(learning_config(tiny_voc), tmp_path, resume=True, progress=False)

    a = torch.load(learned, weights_only=True)["model"]
    b = torch.load(resumed, weights_only=True)["model"]
    assert all(torch.equal(a[key], b[key]) for key in a)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    # The run being compared learns: its loss falls well below the untrained ln 21.
    assert len(losses) == STEPS // 10 and losses[-1] < 0.6 * math.log(21)


def test_a_finer_fcn_starts_from_a_coarser_one(tiny_voc, tmp_path):
    coarse_config = learning_config(tiny_voc, **{"model.name": "fcn32s"})
    coarse = train_module.build_model(coarse_config).state_dict()
    save_checkpoint(tmp_path / "coarse.pt", {"model": coarse, "config": coarse_config.to_dict()})
    fine_model = train_module.build_model(learning_config(tiny_voc, **{"model.name": "fcn16s"}))
    fresh = {key: value.clone() for key, value in fine_model.state_dict().items()}
    train_module.load_initial_weights(fine_model, tmp_path / "coarse.pt")
    fine = fine_model.state_dict()
    # Everything but the final upsampler, whose factor differs (32 -> 16), comes from FCN-32s; the
    # layers FCN-16s adds keep their start (zero scores, bilinear 2x).
    assert all(torch.equal(fine[key], coarse[key]) for key in coarse if not key.startswith("upscore."))
    assert all(torch.equal(fine[key], fresh[key]) for key in fine if key.split(".")[0] in
               ("upscore", "upscore2", "score_pool4"))
    for other in ({"model.width": 0.0625}, {"model.name": "fcn8s", "model.batch_norm": False}):
        with pytest.raises(ValueError, match="model.init"):
            train_module.load_initial_weights(train_module.build_model(learning_config(tiny_voc, **other)),
                                              tmp_path / "coarse.pt")
    finer = train_module.build_model(learning_config(tiny_voc, **{"model.name": "fcn8s"}))
    train_module.load_initial_weights(finer, tmp_path / "coarse.pt")
    with pytest.raises(ValueError, match="model.init"):  # not the other way round
        save_checkpoint(tmp_path / "fine.pt", {"model": finer.state_dict(), "config": {}})
        train_module.load_initial_weights(train_module.build_model(coarse_config), tmp_path / "fine.pt")
