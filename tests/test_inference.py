"""Inference modes (whole, sliding windows, multi-scale with flip) and batched evaluation."""

import numpy as np
import pytest
import torch

from pixseg.engine.config import load_config
from pixseg.engine.evaluate import confusion_matrix
from pixseg.engine.inference import InferenceConfig, check_inference, infer, window_starts
from pixseg.models import create_model


def pointwise_model(classes=4):
    """A 1x1 convolution: each pixel's logits depend on that pixel alone (translation-equivariant)."""
    torch.manual_seed(0)
    return torch.nn.Conv2d(3, classes, 1).eval()


def mirror_symmetric_model(classes=4):
    """A 3x3 convolution whose kernels are symmetric left-right: mirroring the input mirrors the output."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, classes, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_((conv.weight + conv.weight.flip(-1)) / 2)
    return conv.eval()


def context_model(name="fcn8s", classes=3, **options):
    """A zoo model at a tiny width with every weight drawn at random (an FCN's score layers start at
    zero, and a model that outputs zeros would pass any comparison)."""
    torch.manual_seed(0)
    model = create_model(name, classes, width=0.0625, **options).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.3)
    return model


class Recorder(torch.nn.Module):
    """Wraps a model and records the sizes of the inputs it is given."""

    def __init__(self, model):
        super().__init__()
        self.model, self.sizes = model, []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        return self.model(x)


def images(size, n=2, seed=0):
    return torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("size, crop, stride", [(10, 4, 3), (10, 4, 2), (12, 4, 4), (4, 4, 2), (3, 5, 5)])
def test_windows_cover_every_pixel_and_end_at_the_border(size, crop, stride):
    starts = window_starts(size, crop, stride)
    assert starts[0] == 0 and starts[-1] == max(size - crop, 0) and starts == sorted(set(starts))
    covered = np.zeros(max(size, crop), bool)
    for start in starts:
        covered[start:start + crop] = True
    assert covered.all()
    assert all(b - a <= stride for a, b in zip(starts, starts[1:]))


def test_one_window_over_the_image_is_whole_inference():
    model = context_model(padding="compact")
    batch = images((40, 56))
    whole = infer(model, batch)
    assert torch.equal(infer(model, batch, InferenceConfig(mode="slide", crop=(40, 56))), whole)


def test_overlapping_windows_over_a_pointwise_model_are_whole_inference():
    model = Recorder(pointwise_model())
    batch = images((23, 31))
    whole = infer(model, batch)
    model.sizes.clear()
    slid = infer(model, batch, InferenceConfig(mode="slide", crop=(8, 12), stride=(5, 7)))
    torch.testing.assert_close(slid, whole, rtol=0, atol=1e-6)
    # Every pass is one window of the crop's size: ceil((23 - 8) / 5) + 1 rows, ceil((31 - 12) / 7) + 1 columns.
    assert model.sizes == [(8, 12)] * (4 * 4)


def test_an_image_smaller_than_the_crop_is_padded_and_cropped_back():
    model = Recorder(pointwise_model())
    batch = images((5, 9))
    slid = infer(model, batch, InferenceConfig(mode="slide", crop=(8, 12)))
    assert model.sizes == [(8, 12)] and slid.shape == (2, 4, 5, 9)
    torch.testing.assert_close(slid, infer(model, batch), rtol=0, atol=0)


def test_windows_of_a_context_model_differ_from_whole_inference():
    # The check that windows really are cut: a model that sees its whole input changes with them.
    model = context_model(padding="compact")
    batch = images((40, 56))
    slid = infer(model, batch, InferenceConfig(mode="slide", crop=(24, 24), stride=(16, 16)))
    assert slid.shape == (2, 3, 40, 56) and not torch.allclose(slid, infer(model, batch), atol=1e-4)


def test_multiscale_at_scale_one_without_flip_is_whole_inference():
    model = context_model("unet")
    batch = images((32, 48))
    assert torch.equal(infer(model, batch, InferenceConfig(mode="multiscale", scales=(1.0,))), infer(model, batch))


def test_flip_of_a_mirror_symmetric_model_is_whole_inference():
    model = mirror_symmetric_model()
    batch = images((17, 22))
    flipped = infer(model, batch, InferenceConfig(mode="multiscale", flip=True))
    torch.testing.assert_close(flipped, infer(model, batch), rtol=0, atol=1e-5)
    # And flip does mirror: a kernel that is not symmetric gives other logits.
    torch.testing.assert_close(infer(model, batch.flip(-1)).flip(-1), infer(model, batch), rtol=0, atol=1e-5)
    lopsided = context_model(padding="compact")
    assert not torch.allclose(infer(lopsided, batch, InferenceConfig(mode="multiscale", flip=True)),
                              infer(lopsided, batch), atol=1e-4)


def test_multiscale_runs_each_scale_and_mirror_and_averages_at_the_input_size():
    model = Recorder(pointwise_model())
    batch = images((20, 30))
    logits = infer(model, batch, InferenceConfig(mode="multiscale", scales=(0.5, 1.0, 1.5), flip=True))
    assert sorted(model.sizes) == sorted([(10, 15), (10, 15), (20, 30), (20, 30), (30, 45), (30, 45)])
    assert logits.shape == (2, 4, 20, 30)
    # A pointwise model on a constant image gives the same logits at every scale: the average is that.
    constant = torch.ones(1, 3, 20, 30)
    torch.testing.assert_close(infer(model, constant, InferenceConfig(mode="multiscale", scales=(0.5, 1.5))),
                               infer(model, constant), rtol=0, atol=1e-5)


def test_multiscale_with_a_crop_slides_at_each_scale():
    model = Recorder(pointwise_model())
    infer(model, images((20, 30)), InferenceConfig(mode="multiscale", scales=(0.5, 1.0), crop=(16, 16)))
    assert set(model.sizes) == {(16, 16)}


@pytest.mark.parametrize("settings, named", [
    ({"mode": "tiles"}, "inference.mode = 'tiles'"),
    ({"mode": "slide"}, "inference.crop = None"),
    ({"mode": "slide", "crop": [0, 8]}, "inference.crop = [0, 8]"),
    ({"mode": "slide", "crop": [8, 8], "stride": [9, 4]}, "inference.stride = [9, 4]"),
    ({"mode": "whole", "crop": [8, 8]}, "inference.crop = [8, 8]"),
    ({"stride": [4, 4]}, "inference.stride = [4, 4]"),
    ({"mode": "multiscale", "scales": [1.0, -0.5]}, "inference.scales = [1.0, -0.5]"),
    ({"mode": "multiscale", "scales": []}, "inference.scales = []"),
    ({"mode": "whole", "scales": [0.5, 1]}, "inference.scales = [0.5, 1.0]"),
    ({"flip": True}, "inference.flip = True"),
    ({"batch_size": 0}, "inference.batch_size = 0"),
    ({"workers": -1}, "inference.workers = -1"),
])
def test_bad_settings_are_named_in_one_line(settings, named):
    overrides = [f"inference.{key}={value}" for key, value in settings.items()]
    with pytest.raises(ValueError) as error:
        load_config(None, overrides)
    assert named in str(error.value) and "\n" not in str(error.value)


def test_config_section_reads_lists_as_tuples():
    config = load_config(None, ["inference={mode: multiscale, scales: [0.75, 1, 1.25], flip: true, crop: [8, 9]}"])
    assert config.inference == check_inference(InferenceConfig(mode="multiscale", scales=(0.75, 1.0, 1.25),
                                                               flip=True, crop=(8, 9)))
    with pytest.raises(ValueError, match=r"inference.scales = 'big'; expected a list of finite numbers"):
        load_config(None, ["inference.scales=big"])


class MixedSizes(torch.utils.data.Dataset):
    """Seven images of three sizes, interleaved, with random labels (void included)."""

    num_classes = 4

    def __init__(self):
        rng = np.random.default_rng(0)
        sizes = [(16, 20), (12, 12), (16, 20), (20, 8), (12, 12), (16, 20), (20, 8)]
        self.samples = [(rng.integers(0, 256, (*size, 3), dtype=np.uint8),
                         rng.choice([0, 1, 2, 3, 255], size=size).astype(np.uint8)) for size in sizes]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return self.samples[index]


@pytest.mark.parametrize("mode", [{}, {"mode": "slide", "crop": (8, 8), "stride": (6, 6)}])
def test_batched_evaluation_does_not_depend_on_batch_size_or_workers(mode):
    model = context_model(classes=4, padding="compact")
    dataset = MixedSizes()
    one = confusion_matrix(model, dataset, "cpu", inference=InferenceConfig(**mode), progress=False).matrix
    assert int(one.sum()) == sum(int((label != 255).sum()) for _, label in dataset.samples)
    three = confusion_matrix(model, dataset, "cpu", inference=InferenceConfig(**mode, batch_size=3),
                             progress=False).matrix
    assert torch.equal(one, three)
    if not mode:
        state = torch.get_rng_state()
        workers = confusion_matrix(model, dataset, "cpu", inference=InferenceConfig(batch_size=3, workers=2),
                                   progress=False).matrix
        assert torch.equal(one, workers)
        # Training around a validation draws the same random numbers as without it.
        assert torch.equal(torch.get_rng_state(), state)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint of one training step on a tiny synthetic set: enough to run every command."""
    from pixseg.cli import main

    root = tmp_path_factory.mktemp("inference")
    data, out = root / "data", root / "model"
    assert main(["synth", "--out", str(data), "--n-train", "2", "--n-val", "3", "--size", "40", "40"]) == 0
    assert main(["train", "--config", "experiment_quick", "--data", str(data), "--out", str(out),
                 "model.width=0.0625", "data.crop_size=32", "batch_size=2", "iterations=1",
                 "data.holdout=0", "data.val_split=null"]) == 0
    return data, out / "checkpoint.pt"


def test_eval_and_predict_run_under_autocast_when_asked(trained, tmp_path, monkeypatch):
    import json

    import pixseg.engine.evaluate
    from pixseg.cli import main

    data, checkpoint = trained
    used = []
    real = pixseg.engine.evaluate.autocast
    monkeypatch.setattr(pixseg.engine.evaluate, "autocast", lambda device, enabled: used.append(enabled) or
                        real(device, enabled))
    eval_args = ["eval", "--checkpoint", str(checkpoint), "--data", str(data), "--out", str(tmp_path)]
    assert main(eval_args) == 0 and used and not any(used)  # the checkpoint trained without amp
    used.clear()
    assert main([*eval_args, "--amp"]) == 0 and used and all(used)
    scores = json.loads((tmp_path / "metrics_val_amp.json").read_text())
    assert scores["amp"] is True and json.loads((tmp_path / "metrics_val.json").read_text())["amp"] is False
    used.clear()
    image = data / "JPEGImages" / "val_000000.jpg"
    assert main(["predict", "--checkpoint", str(checkpoint), str(image), "--out", str(tmp_path / "p"), "--amp"]) == 0
    assert used == [True]


def test_the_zoo_cost_counts_the_inference_mode(trained, tmp_path):
    from pixseg.engine.inference import settings_title
    from pixseg.engine.zoo import model_cost

    _, checkpoint = trained
    whole = model_cost(tmp_path / "cost.json", checkpoint, (48, 64), InferenceConfig())
    # Two scales of 1 and their mirror images: four passes of the whole image.
    four = InferenceConfig(mode="multiscale", scales=(1.0, 1.0), flip=True)
    assert settings_title(four) == "scales 1, 1 and mirrored"
    passes = model_cost(tmp_path / "cost.json", checkpoint, (48, 64), four)
    assert passes["gflops"] == pytest.approx(4 * whole["gflops"]) and passes["params"] == whole["params"]
    assert passes["produced_by"]["inference"]["mode"] == "multiscale"
    slide = InferenceConfig(mode="slide", crop=(48, 32))
    assert settings_title(slide) == "sliding 48 x 32 windows every 32 x 22"
    assert model_cost(tmp_path / "cost.json", checkpoint, (48, 64), slide)["gflops"] > whole["gflops"]


def test_eval_and_predict_take_the_modes(trained, tmp_path, capsys):
    import json

    from PIL import Image

    from pixseg.cli import main

    data, checkpoint = trained
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(data), "--out", str(tmp_path)]) == 0
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(data), "--out", str(tmp_path),
                 "--mode", "slide", "--crop", "40", "40", "--eval-batch-size", "2", "--eval-workers", "1"]) == 0
    whole = json.loads((tmp_path / "metrics_val.json").read_text())
    # One 40 x 40 window over 40 x 40 images: the whole image's scores, in a file of its own.
    slid = json.loads((tmp_path / "metrics_val_slide40x40s27x27.json").read_text())
    assert slid["inference"] == {"mode": "slide", "crop": [40, 40], "stride": [27, 27], "scales": [1.0], "flip": False}
    assert whole["inference"]["mode"] == "whole" and slid["iou"] == whole["iou"]

    image = data / "JPEGImages" / "val_000000.jpg"
    for name, mode in (("whole", []), ("multi", ["--mode", "multiscale", "--scales", "0.5,1", "--flip"])):
        assert main(["predict", "--checkpoint", str(checkpoint), str(image), "--out", str(tmp_path / name),
                     "--save-probs", *mode]) == 0
    probs = {name: np.load(tmp_path / name / "val_000000_probs.npy") for name in ("whole", "multi")}
    assert probs["multi"].shape == probs["whole"].shape == (21, 40, 40)
    assert np.allclose(probs["multi"].sum(0), 1, atol=1e-4) and not np.allclose(probs["multi"], probs["whole"])
    assert (np.asarray(Image.open(tmp_path / "multi" / "val_000000.png")) == probs["multi"].argmax(0)).all()


def test_tune_crf_takes_the_modes(trained, tmp_path):
    import json

    from pixseg.cli import main

    data, checkpoint = trained
    results = {}
    for name, mode in (("whole", []), ("slide", ["--mode", "slide", "--crop", "40", "40"])):
        out = tmp_path / f"{name}.json"
        assert main(["tune-crf", "--checkpoint", str(checkpoint), "--data", str(data), "--split", "train",
                     "--trials", "0", "--iterations", "1", "--out", str(out), *mode]) == 0
        results[name] = json.loads(out.read_text())
    assert results["slide"]["inference"]["crop"] == [40, 40] and results["whole"]["inference"]["mode"] == "whole"
    # One window over each 40 x 40 image: the same probabilities, so the same scores.
    assert results["slide"]["no_crf_miou"] == results["whole"]["no_crf_miou"]
    assert results["slide"]["trials"] == results["whole"]["trials"]


@pytest.mark.parametrize("flags, message", [
    (["--mode", "slide"], "--crop = None; expected a window size (height, width) for --mode slide"),
    (["--crop", "8", "8"], "--crop = [8, 8]; expected null"),
    (["--mode", "slide", "--crop", "8", "8", "--stride", "9", "9"], "--stride = [9, 9]; expected at most the crop"),
    (["--mode", "multiscale", "--scales", "1,x"], "--scales '1,x': expected numbers separated by commas"),
    (["--mode", "multiscale", "--scales", "0,1"], "--scales = [0.0, 1.0]; expected one or more positive numbers"),
    (["--flip"], "--flip = True; expected false unless inference.mode is multiscale"),
    (["--eval-batch-size", "0"], "--eval-batch-size = 0; expected a whole number >= 1"),
])
@pytest.mark.parametrize("command", ["eval", "zoo"])
def test_bad_inference_flags_exit_2_with_one_line(trained, tmp_path, capsys, flags, message, command):
    from pixseg.cli import main

    data, checkpoint = trained
    args = (["eval", "--checkpoint", str(checkpoint), "--data", str(data), "--out", str(tmp_path)]
            if command == "eval" else ["zoo", "--out", str(tmp_path / "zoo")])
    assert main([*args, *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())
