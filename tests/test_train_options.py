"""Training options: mixed precision, channels-last, gradient accumulation, warm-up, clipping, best checkpoint."""

import json
import math
import re

import pytest
import torch

import pixseg.engine.train as train_module
from pixseg.engine.config import load_config
from pixseg.engine.precision import grad_scaler
from pixseg.engine.train import apply_update, forward_backward, poly_schedule, train
from tests.test_train import tiny_config as train_tiny_config
from tests.test_train import tiny_voc  # noqa: F401 (a fixture)


def tiny_config(root, **extra):
    """test_train's tiny run, validated after every step; the class count fixed, so a model can be
    built from it before training resolves the dataset's."""
    return train_tiny_config(root, **{"val_every": 1, "data.num_classes": 21, **extra})


def records(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_amp_trains_in_bfloat16_with_a_float32_loss(tiny_voc, tmp_path):
    config = tiny_config(tiny_voc, amp="true", channels_last="true", iterations=10, val_every=10)
    torch.manual_seed(0)
    initial = dict(train_module.build_model(config).named_parameters())
    seen = []
    criterion = torch.nn.CrossEntropyLoss(ignore_index=255)

    def loss(outputs, labels):
        seen.append(outputs.dtype)
        return criterion(outputs, labels)

    model = train_module.build_model(config).to(memory_format=torch.channels_last)
    dtypes = []
    model.register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    images, labels = torch.randn(2, 3, 32, 32), torch.randint(0, 21, (2, 32, 32))
    value = forward_backward(model, loss, grad_scaler("cpu", True), images, labels, amp=True)
    assert dtypes == [torch.bfloat16] and seen == [torch.float32] and math.isfinite(value.item())

    checkpoint = train(config, tmp_path, progress=False)
    losses = [r["loss"] for r in records(tmp_path) if "loss" in r]
    assert losses and all(math.isfinite(v) for v in losses)
    trained = torch.load(checkpoint, weights_only=True)["model"]
    assert sum(not torch.equal(value, trained[key]) for key, value in initial.items()) > len(initial) / 2


def without_void(root, copy):
    """A copy of a VOC-layout dataset whose void pixels are background, so that each part of a batch
    has as many pixels in its loss's mean, and the mean of the parts' means is the whole batch's."""
    import shutil

    import numpy as np
    from PIL import Image

    shutil.copytree(root, copy)
    for path in copy.rglob("SegmentationClass/*.png"):
        image = Image.open(path)
        labels = np.array(image)
        labels[labels == 255] = 0
        plain = Image.fromarray(labels, mode="P")
        plain.putpalette(image.getpalette())
        plain.save(path)
    return copy


def test_accumulated_batches_equal_one_large_batch(tiny_voc, tmp_path):
    # Without batch norm or dropout, k batches of b accumulated make the update of one batch of k * b
    # (exactly so where every pixel counts: no void, and crops that need no padding).
    root = without_void(tiny_voc, tmp_path / "voc")
    plain = {"model.batch_norm": "false", "model.dropout": 0, "data.scale_range": "[1, 1]", "val_every": 100,
             "optim.name": "sgd", "optim.lr": 0.01}
    large = train(tiny_config(root, batch_size=4, **plain), tmp_path / "large", progress=False)
    small = train(tiny_config(root, batch_size=2, accumulate=2, **plain), tmp_path / "small", progress=False)
    a, b = (torch.load(path, weights_only=True)["model"] for path in (large, small))
    torch.manual_seed(0)
    initial = train_module.build_model(tiny_config(root, **plain)).state_dict()
    moved = max(float((a[key] - initial[key]).abs().max()) for key in a)
    apart = max(float((a[key] - b[key]).abs().max()) for key in a)
    assert moved > 1e-3 and apart < moved * 1e-5  # rounding apart, where training moved the weights


def test_accumulation_splits_the_batch_and_averages():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 4, 3, padding=1)
    images, labels = torch.randn(6, 3, 8, 8), torch.randint(0, 4, (6, 8, 8))
    grads = []
    for parts in (1, 3):
        model.zero_grad()
        loss = forward_backward(model, torch.nn.CrossEntropyLoss(), grad_scaler("cpu", False), images, labels,
                                accumulate=parts)
        grads.append((loss.item(), model.weight.grad.clone()))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-5, atol=1e-7)


def test_warmup_rises_linearly_then_follows_poly():
    schedule = poly_schedule(10, 1.0, warmup_iters=4, warmup_factor=0.2)
    assert [schedule(step) for step in range(6)] == pytest.approx(
        [0.2 * 1.0, 0.4 * 0.9, 0.6 * 0.8, 0.8 * 0.7, 0.6, 0.5])
    assert [schedule(s) for s in range(11)] == [poly_schedule(10, 1.0)(s) if s >= 4 else schedule(s)
                                                for s in range(11)]


def test_warmup_in_a_run_sets_the_logged_rate(tiny_voc, tmp_path):
    train(tiny_config(tiny_voc, iterations=10, val_every=100, **{"optim.warmup_iters": 20}), tmp_path,
          progress=False)
    (last,) = [r for r in records(tmp_path) if "lr" in r]
    assert last["step"] == 10 and last["lr"] == 0  # poly reaches 0 at the end even mid-warm-up
    factor = poly_schedule(10, 0.9, 20, 0.001)
    assert factor(5) == pytest.approx((0.001 + 0.999 * 5 / 20) * 0.5 ** 0.9)


def test_clipping_bounds_the_gradient_norm():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    before = [p.detach().clone() for p in model.parameters()]
    (model(torch.randn(4, 5)) * 100).pow(2).mean().backward()
    norm = apply_update(model, optimizer, grad_scaler("cpu", False), clip_grad_norm=0.5)
    assert norm > 0.5
    clipped = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    assert clipped == pytest.approx(0.5, rel=1e-5)
    step = torch.cat([(b - p.detach()).flatten() for b, p in zip(before, model.parameters())]).norm()
    assert step == pytest.approx(0.5, rel=1e-4)  # SGD at lr 1 moves by the clipped gradient


def test_clipping_in_a_run_logs_the_norm(tiny_voc, tmp_path):
    train(tiny_config(tiny_voc, iterations=10, val_every=100, **{"optim.clip_grad_norm": 0.1}), tmp_path,
          progress=False)
    (last,) = [r for r in records(tmp_path) if "lr" in r]
    assert last["grad_norm"] > 0


def test_best_checkpoint_is_the_highest_miou(tiny_voc, tmp_path):
    train(tiny_config(tiny_voc, iterations=6, **{"optim.lr": 0.01}), tmp_path, progress=False)
    scores = [(r["miou"], r["step"]) for r in records(tmp_path) if "miou" in r]
    assert [step for _, step in scores] == list(range(1, 7))
    top = max(score for score, _ in scores)
    first_top = next(step for score, step in scores if score == top)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["miou"] == top and best["step"] == first_top
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["best"] == {"miou": top, "step": first_top}
    # best.pt is a checkpoint like the last one: eval, predict and model.init read it.
    model, _ = train_module.load_trained_model(tmp_path / "best.pt")
    assert not model.training


def test_resume_with_every_option_continues_exactly(tiny_voc, tmp_path, monkeypatch):
    options = {"amp": "true", "channels_last": "true", "accumulate": 2, "optim.warmup_iters": 3,
               "optim.clip_grad_norm": 0.5, "iterations": 4, "val_every": 1}
    straight = train(tiny_config(tiny_voc, **options), tmp_path / "straight", progress=False)

    class Crash(Exception):
        pass

    calls = []

    def crash(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Crash  # at step 3, after the step-2 checkpoint
        return evaluate(*args, **kwargs)

    evaluate = train_module.evaluate
    with monkeypatch.context() as patch:
        patch.setattr(train_module, "evaluate", crash)
        with pytest.raises(Crash):
            train(tiny_config(tiny_voc, **options), tmp_path / "resumed", progress=False)
    resumed = train(tiny_config(tiny_voc, **options), tmp_path / "resumed", resume=True, progress=False)
    a, b = (torch.load(path, weights_only=True) for path in (straight, resumed))
    assert all(torch.equal(a["model"][key], b["model"][key]) for key in a["model"])
    assert a["best"] == b["best"] and a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    assert (tmp_path / "straight" / "best.pt").read_bytes() != b"" and \
        torch.load(tmp_path / "resumed" / "best.pt", weights_only=True)["step"] == a["best"]["step"]


@pytest.mark.parametrize("key, value, expected", [
    ("accumulate", 0, "accumulate = 0; expected an integer >= 1"),
    ("optim.warmup_iters", -1, "optim.warmup_iters = -1; expected an integer >= 0"),
    ("optim.warmup_factor", 0, "optim.warmup_factor = 0.0; expected a number in (0, 1]"),
    ("optim.clip_grad_norm", -1, "optim.clip_grad_norm = -1.0; expected a positive number"),
    ("amp", "yes please", "amp = 'yes please'; expected true or false"),
])
def test_bad_values_are_named(key, value, expected):
    with pytest.raises(ValueError, match=re.escape(expected)) as error:
        load_config(None, [f"{key}={value}"])
    assert "\n" not in str(error.value)
