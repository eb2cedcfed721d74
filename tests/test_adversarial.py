"""Adversarial training: each discriminator input written out on a tiny example, the alternating
updates touch only their own network, every zoo model trains with it through the one training path,
a resumed run ends where an uninterrupted one does, and both networks learn."""

import json
import math

import pytest
import torch

from pixseg.adversarial import AdversarialTraining, Discriminator, one_hot, product_input, scaled_ground_truth
from pixseg.data.synthetic import make_synthetic_voc
from pixseg.engine.config import ADVERSARIAL_DEFAULTS, OptimConfig, load_config
from pixseg.engine.evaluate import evaluate
from pixseg.engine.train import create_optimizer, load_trained_model, train, training_split
from pixseg.engine.zoo import model_spec
from pixseg.models import MODELS
from tests.test_learning import MARGIN, all_background_score
from tests.test_train import straight_and_resumed
from tests.test_train import tiny_config as train_config
from tests.test_train import tiny_voc  # noqa: F401 (a fixture)


def tiny_config(root, **extra):
    adversarial = "{discriminator: product, channels: 4, start_after: 1}"
    return train_config(root, **{"device": "cpu", "adversarial": adversarial, **extra})


def test_one_hot_is_zero_at_void():
    labels = torch.tensor([[[0, 2, 255]]])
    assert one_hot(labels, 3).tolist() == [[[[1, 0, 0]], [[0, 0, 0]], [[0, 1, 0]]]]


def test_product_input_multiplies_each_class_map_with_each_image_channel():
    image = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]], [[5.0, 6.0]]]])  # 3 channels, 1 x 2 pixels
    maps = torch.tensor([[[[1.0, 0.25]], [[0.0, 0.75]]]])  # 2 classes
    expected = [[[1.0, 0.5]], [[3.0, 1.0]], [[5.0, 1.5]],   # class 0 times R, G, B
                [[0.0, 1.5]], [[0.0, 3.0]], [[0.0, 4.5]]]   # class 1 times R, G, B
    assert product_input(image, maps)[0].tolist() == expected


def test_scaling_lifts_the_true_class_to_tau_and_shares_the_rest_as_the_segmenter_does():
    probs = torch.tensor([[0.5, 0.03, 0.2, 0.0],
                          [0.3, 0.95, 0.3, 1.0],
                          [0.2, 0.02, 0.5, 0.0]]).reshape(1, 3, 1, 4)
    labels = torch.tensor([[[1, 1, 255, 1]]])
    scaled = scaled_ground_truth(labels, probs, tau=0.9)[0, :, 0].T
    # Pixel 0: the true class 1 has 0.3 < tau, so it gets 0.9; classes 0 and 2 share the other 0.1
    # as 0.5 : 0.2. Pixel 1: 0.95 > tau, the prediction stands. Pixel 2: void. Pixel 3: exactly one-hot.
    torch.testing.assert_close(scaled, torch.tensor([[0.1 * 5 / 7, 0.9, 0.1 * 2 / 7],
                                                     [0.03, 0.95, 0.02],
                                                     [0.0, 0.0, 0.0],
                                                     [0.0, 1.0, 0.0]]))


@pytest.mark.parametrize("kind", ["basic", "product", "scaling"])
def test_discriminators_give_one_logit_per_image_of_any_size(kind):
    torch.manual_seed(0)
    discriminator = Discriminator(4, kind, channels=4)
    image, maps = torch.randn(3, 3, 7, 9), torch.softmax(torch.randn(3, 4, 7, 9), 1)
    assert discriminator(image, maps).shape == (3,)
    # The verdict depends on the image as well as on the map, in each kind of input.
    other = discriminator(image + 1, maps)
    assert not torch.allclose(discriminator(image, maps), other)


def test_the_discriminator_sees_image_and_map_average_pooled():
    torch.manual_seed(0)
    pooled = Discriminator(3, "product", channels=4, downsample=2)
    full = Discriminator(3, "product", channels=4, downsample=1)
    full.load_state_dict(pooled.state_dict())
    image, maps = torch.randn(2, 3, 8, 8), torch.softmax(torch.randn(2, 3, 8, 8), 1)
    pool = torch.nn.functional.avg_pool2d
    torch.testing.assert_close(pooled(image, maps), full(pool(image, 2), pool(maps, 2)))


def test_an_unknown_discriminator_is_refused():
    with pytest.raises(ValueError, match="expected one of basic, product, scaling"):
        Discriminator(3, "patch")


def adversary(kind="product", start_after=0):
    settings = {**ADVERSARIAL_DEFAULTS, "discriminator": kind, "channels": 4, "start_after": start_after,
                "optim": {**ADVERSARIAL_DEFAULTS["optim"], "lr": 0.01}}
    optim = OptimConfig(**settings["optim"])
    return AdversarialTraining(settings, 3, "cpu", lambda params: create_optimizer(params, optim), lambda step: 1.0)


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def moved(before, module):
    return [not torch.equal(a, b) for a, b in zip(before, module.parameters())]


@pytest.mark.parametrize("kind", ["basic", "product", "scaling"])
def test_each_update_moves_only_its_own_network(kind):
    torch.manual_seed(0)
    segmenter = torch.nn.Conv2d(3, 3, 3, padding=1)
    seg_optimizer = torch.optim.SGD(segmenter.parameters(), lr=0.1)
    adv = adversary(kind)
    images, labels = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    labels[0, 0] = 255

    # The segmenter's step, as train() takes it: the hybrid loss, the segmenter's optimiser.
    logits = segmenter(images)
    seg_loss = torch.nn.functional.cross_entropy(logits, labels, ignore_index=255)
    loss = adv.hybrid_loss(1, images, logits, labels, seg_loss)
    discriminator_before, segmenter_before = snapshot(adv.discriminator), snapshot(segmenter)
    seg_optimizer.zero_grad()
    loss.backward()
    seg_optimizer.step()
    assert all(p.grad is None for p in adv.discriminator.parameters())
    assert not any(moved(discriminator_before, adv.discriminator))
    assert all(moved(segmenter_before, segmenter))
    # The adversarial term alone reaches the segmenter.
    seg_optimizer.zero_grad()
    adv.segmenter_term(1, images, segmenter(images), labels).backward()
    assert segmenter.weight.grad.abs().sum() > 0

    # The discriminator's step on the batch hybrid_loss kept: the segmenter's weights and gradients stay.
    seg_optimizer.zero_grad()
    segmenter_before = snapshot(segmenter)
    stats = adv.discriminator_step()
    assert all(p.grad is None for p in segmenter.parameters())
    assert not any(moved(segmenter_before, segmenter))
    assert all(moved(discriminator_before, adv.discriminator))
    assert stats["seg_loss"] == seg_loss.item() and stats["adv_loss"] > 0 and stats["d_loss"] > 0
    assert 0 <= stats["d_acc_real"] <= 1 and 0 <= stats["d_acc_fake"] <= 1


def test_the_term_waits_for_start_after():
    adv = adversary(start_after=5)
    images, labels = torch.randn(1, 3, 8, 8), torch.randint(0, 3, (1, 8, 8))
    logits = torch.randn(1, 3, 8, 8)
    assert adv.segmenter_term(5, images, logits, labels) is None
    assert adv.segmenter_term(6, images, logits, labels) is not None
    seg_loss = torch.tensor(1.5)
    assert adv.hybrid_loss(5, images, {"out": logits, "aux": logits}, labels, seg_loss) is seg_loss
    # The discriminator learns meanwhile; no adversarial term is logged before there is one.
    assert "adv_loss" not in adv.discriminator_step()


@pytest.mark.parametrize("kind", ["basic", "product", "scaling"])
def test_the_discriminator_learns_to_tell_ground_truth_from_predictions(kind):
    # Fails when its optimiser does not step: a fresh discriminator sits at chance (loss 2 ln 2).
    torch.manual_seed(0)
    adv = adversary(kind, start_after=100)
    images, labels = torch.randn(4, 3, 12, 12), torch.randint(0, 3, (4, 12, 12))
    logits = 0.5 * torch.randn(4, 3, 12, 12)
    losses = []
    for _ in range(41):
        # Two parts of a batch, as with accumulate: 2.
        for part in range(2):
            adv.hybrid_loss(1, images[2 * part:2 * part + 2], logits[2 * part:2 * part + 2],
                            labels[2 * part:2 * part + 2], torch.tensor(0.0))
        losses.append(adv.discriminator_step())
    first, last = losses[0], losses[-1]
    assert first["d_loss"] == pytest.approx(2 * math.log(2), abs=0.05)
    assert last["d_loss"] < 0.5 * first["d_loss"]
    assert last["d_acc_real"] == 1 and last["d_acc_fake"] == 1


def test_config_fills_defaults_and_refuses_bad_values_in_one_line(tiny_voc):
    config = load_config("experiment_quick", ["adversarial={lambda: 0.5}"])
    assert config.adversarial == {**ADVERSARIAL_DEFAULTS, "lambda": 0.5}
    assert load_config("experiment_quick").adversarial is None  # off by default
    assert load_config("experiment_quick", ["adversarial.optim.lr=1e-3"]).adversarial["optim"]["lr"] == 1e-3
    for override, message in [
        ("adversarial.lambda=-1", "adversarial.lambda = -1.0; expected a positive number"),
        ("adversarial.discriminator=patch", "adversarial.discriminator = 'patch'; expected one of basic"),
        ("adversarial.tau=0.3", "adversarial.tau = 0.3; expected a number in (0.5, 1]"),
        ("adversarial.downsample=0", "adversarial.downsample = 0; expected an integer >= 1"),
        ("adversarial.start_after=1.5", "adversarial.start_after = 1.5; expected a whole number"),
        ("adversarial.weight=1", "adversarial: unknown key(s) weight; valid keys are lambda"),
        ("adversarial.optim.head_lr_mult=2", "adversarial.optim: unknown key(s) head_lr_mult"),
        ("adversarial.optim.name=rmsprop", "adversarial.optim.name = 'rmsprop'; expected one of sgd"),
        ("adversarial=5", "adversarial = 5; expected a mapping or null"),
    ]:
        with pytest.raises(ValueError) as error:
            load_config("experiment_quick", [override])
        assert message in str(error.value) and "\n" not in str(error.value)
        assert str(error.value).startswith("experiment_quick") or "experiment_quick.yaml" in str(error.value)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_zoo_model_trains_adversarially(tiny_voc, tmp_path, name):
    spec = {**model_spec(name, "quick"), "width": 0.0625}
    config = tiny_config(tiny_voc, model=json.dumps(spec), iterations=2, val_every=2)
    state = torch.load(train(config, tmp_path, progress=False), weights_only=True)
    assert set(state["adversarial"]) == {"discriminator", "optimizer", "scheduler"}
    assert state["adversarial"]["scheduler"]["last_epoch"] == 2
    line = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert {"loss", "seg_loss", "adv_loss", "d_loss", "d_acc_real", "d_acc_fake"} <= set(line)
    assert line["loss"] == pytest.approx(line["seg_loss"] + 0.1 * line["adv_loss"], rel=1e-5)


def test_resume_continues_both_networks_exactly(tiny_voc, tmp_path, monkeypatch):
    # An auxiliary head and accumulated batches: the discriminator accumulates its parts too.
    config = tiny_config(tiny_voc, **{"model": '{name: pspnet, backbone: resnet18, width: 0.0625}', "batch_size": 2,
                                      "accumulate": 2})
    straight, resumed = straight_and_resumed(config, tmp_path, monkeypatch)

    a, b = torch.load(straight, weights_only=True), torch.load(resumed, weights_only=True)
    # Both networks, both optimisers (momentum, Adam's moments) and both schedules.
    for key in ("model", "optimizer", "scheduler", "adversarial"):
        assert same(a[key], b[key]), key
    logged = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in logged if "d_loss" in line] == [4]


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return torch.equal(a, b) if torch.is_tensor(a) else a == b


def test_resume_refuses_another_adversarial_setting(tiny_voc, tmp_path):
    train(tiny_config(tiny_voc, iterations=2), tmp_path, progress=False)
    with pytest.raises(ValueError, match="adversarial.lambda: 0.1 in the checkpoint, 0.5 now"):
        train(tiny_config(tiny_voc, iterations=2, **{"adversarial.lambda": 0.5}), tmp_path, resume=True,
              progress=False)
    with pytest.raises(ValueError, match="adversarial: .* in the checkpoint, None now"):
        train(tiny_config(tiny_voc, iterations=2, adversarial="null"), tmp_path, resume=True, progress=False)


def test_adversarial_training_learns(tmp_path_factory):
    # Both networks must learn: the segmenter beats predicting background everywhere on its training
    # images, and the discriminator's loss falls below chance. Removing either optimiser's step
    # fails one of the two.
    root = make_synthetic_voc(tmp_path_factory.mktemp("voc"), n_train=8, n_val=2, size=(48, 48), seed=1,
                              progress=False)
    out = tmp_path_factory.mktemp("adversarial")
    config = load_config("experiment_quick", [
        f"data.root={root}", "model.width=0.125", "data.crop_size=48", "batch_size=4", "iterations=40",
        "checkpoint_every=40", "val_every=40", "optim.lr=0.003", "data.holdout=0", "device=cpu",
        "data.num_classes=21", "adversarial={lambda: 0.1, channels: 8, optim: {lr: 0.001}}"])
    checkpoint = train(config, out, progress=False)
    model, config = load_trained_model(checkpoint)
    images = training_split(config)
    scores, background = evaluate(model, images, "cpu", progress=False), all_background_score(images)
    assert scores["miou"] > background["miou"] + MARGIN
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    d_losses = [line["d_loss"] for line in lines if "d_loss" in line]
    assert len(d_losses) == 4 and d_losses[-1] < 0.8 * 2 * math.log(2)
