"""Nothing lost, no traceback: each failure a user met, replayed through the `pixseg` command."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixseg.cli import main


def run_cli(capsys, *args):
    """(exit status, stdout, stderr) of `pixseg args`."""
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def files_under(folder):
    """{relative path: bytes} of every file under `folder`."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


TINY = ["model.width=0.0625", "data.crop_size=32", "batch_size=2", "iterations=2", "val_every=2",
        "checkpoint_every=1", "data.holdout=0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("rel") / "data"
    assert main(["synth", "--out", str(root), "--n-train", "4", "--n-val", "2", "--size", "32", "32",
                 "--seed", "2"]) == 0
    return root


@pytest.fixture(scope="module")
def run_dir(data):
    out = data.parent / "run"
    assert main(["train", "--config", "experiment_quick", "--data", str(data), "--out", str(out), *TINY]) == 0
    return out


def test_1_predict_never_overwrites_its_input(run_dir, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(photo)
    before = files_under(tmp_path)
    status, _, err = run_cli(capsys, "predict", "--checkpoint", run_dir / "checkpoint.pt", photo, "--out", tmp_path)
    assert status == 2 and "photo.png" in err and "overwrite" in err and "Traceback" not in err
    assert files_under(tmp_path) == before
    # An input named like another input's overlay is protected too.
    overlay = tmp_path / "photo_overlay.png"
    overlay.write_bytes(photo.read_bytes())
    (tmp_path / "elsewhere").mkdir()
    photo = photo.rename(tmp_path / "elsewhere" / "photo.png")
    status, _, err = run_cli(capsys, "predict", "--checkpoint", run_dir / "checkpoint.pt", photo, overlay,
                             "--out", tmp_path)
    assert status == 2 and "photo_overlay.png" in err


def test_2_train_refuses_a_folder_holding_a_run(data, run_dir, tmp_path, capsys):
    before = files_under(run_dir)
    status, _, err = run_cli(capsys, "train", "--config", "experiment_quick", "--data", data, "--out", run_dir, *TINY)
    assert status == 2 and "--resume" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert files_under(run_dir) == before
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, content in before.items():
        (copy / name).write_bytes(content)
    (copy / "metrics.jsonl").write_text('{"step": 99, "loss": 1.0}\n')
    assert main(["train", "--config", "experiment_quick", "--data", str(data), "--out", str(copy), *TINY,
                 "--overwrite"]) == 0
    assert '"step": 99' not in (copy / "metrics.jsonl").read_text()


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_3_written_files_respect_the_umask(data, tmp_path, umask, capsys):
    old = os.umask(umask)
    try:
        synth, run = tmp_path / "synth", tmp_path / "run"
        assert main(["synth", "--out", str(synth), "--n-train", "2", "--n-val", "1", "--size", "32", "32"]) == 0
        assert main(["train", "--config", "experiment_quick", "--data", str(data), "--out", str(run), *TINY,
                     "iterations=1"]) == 0
        assert main(["class-weights", "--data", str(data), "--out", str(tmp_path / "weights.json")]) == 0
    finally:
        os.umask(old)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"checkpoint.pt", "metrics.jsonl", "train.txt", "weights.json",
                                         "train_000000.jpg", "val_000000.png"}
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {oct(0o666 & ~umask)}


def test_4_synth_over_a_dataset(tmp_path, capsys):
    out = tmp_path / "voc"
    assert main(["synth", "--out", str(out), "--n-train", "3", "--n-val", "2", "--size", "48", "48"]) == 0
    before = files_under(out)
    status, _, err = run_cli(capsys, "synth", "--out", out, "--n-train", "2", "--n-val", "1", "--size", "32", "40")
    assert status == 2 and "--overwrite" in err and str(out) in err
    assert files_under(out) == before
    (out / "README.txt").write_text("mine")
    assert main(["synth", "--out", str(out), "--n-train", "2", "--n-val", "1", "--size", "32", "40",
                 "--overwrite"]) == 0
    listed = (out / "ImageSets/Segmentation/trainval.txt").read_text().split()
    for folder, suffix in (("JPEGImages", ".jpg"), ("SegmentationClass", ".png"), ("SegmentationObject", ".png")):
        images = sorted((out / folder).iterdir())
        assert [p.stem for p in images] == sorted(listed) and all(p.suffix == suffix for p in images)
        assert {Image.open(p).size for p in images} == {(40, 32)}
    assert (out / "README.txt").read_text() == "mine"


def copy_run(run_dir, destination):
    import shutil

    return Path(shutil.copytree(run_dir, destination))


def one_line(err):
    """stderr ends with one message line (after any progress bar) and holds no traceback."""
    messages = [line for line in err.splitlines() if line.startswith("pixseg ")]
    return len(messages) == 1 and err.rstrip().endswith(messages[0]) and "Traceback" not in err


@pytest.mark.parametrize("override, words", [
    ("optim.lr=abc", ["optim.lr", "abc", "number"]),
    ("optim.weight_decay=[1]", ["optim.weight_decay"]),
    ("batch_size=1.5", ["batch_size", "1.5", "whole number"]),
    ("seed=abc", ["seed", "abc"]),
    ("data.scale_range=[1,2,3]", ["data.scale_range", "2"]),
    ("data.flip=maybe", ["data.flip", "maybe", "true or false"]),
    ("iterations=true", ["iterations"]),
    ("optim.momentum=1.5", ["optim.momentum", "1.5"]),
    ("optim.poly_power=-1", ["optim.poly_power"]),
    ("data.num_workers=-2", ["data.num_workers", "-2"]),
    ("optim.lr=.inf", ["optim.lr", "inf"]),
])
def test_6_config_values_are_typed_at_the_edge(data, tmp_path, capsys, override, words):
    status, _, err = run_cli(capsys, "train", "--config", "experiment_quick", "--data", data,
                             "--out", tmp_path / "run", *TINY, override)
    assert status == 2 and one_line(err)
    for word in words:
        assert word in err
    assert not (tmp_path / "run").exists()


def test_6_a_number_written_1e_3_is_a_number(data, tmp_path):
    assert main(["train", "--config", "experiment_quick", "--data", str(data), "--out", str(tmp_path / "run"),
                 *TINY, "iterations=1", "optim.lr=1e-3", "optim.weight_decay=1e-4"]) == 0
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["config"]["optim"]
    assert saved["lr"] == 0.001 and saved["weight_decay"] == 0.0001


def test_7_checkpoint_that_does_not_fit_its_config(run_dir, data, tmp_path, capsys):
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    state["config"]["data"]["num_classes"] = 5
    torch.save(state, tmp_path / "other.pt")
    status, _, err = run_cli(capsys, "eval", "--checkpoint", tmp_path / "other.pt", "--data", data)
    assert status == 2 and one_line(err) and "other.pt" in err and "do not fit" in err and "shape" in err


def test_8_a_diverging_run_stops_with_a_sentence(data, tmp_path, capsys):
    out = tmp_path / "run"
    status, _, err = run_cli(capsys, "train", "--config", "experiment_quick", "--data", data, "--out", out,
                             *TINY, "iterations=6", "optim.name=sgd", "optim.lr=1e9")
    assert status == 2 and one_line(err) and "diverged" in err and "step" in err and "optim.lr" in err
    if (out / "checkpoint.pt").exists():  # the last good one: finite weights
        weights = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
        assert all(torch.isfinite(value).all() for value in weights.values())


def test_9_devices_are_checked_before_the_work(tmp_path, capsys, monkeypatch):
    image, probs = tmp_path / "image.png", tmp_path / "probs.npy"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    np.save(probs, np.full((2, 8, 8), 0.5, np.float32))
    args = ["crf", "--image", image, "--probs", probs, "--out", tmp_path / "labels.png", "--backend", "torch"]
    for device, word in (("cuda", "CUDA"), ("foo", "foo")):
        status, _, err = run_cli(capsys, *args, "--device", device)
        assert status == 2 and one_line(err) and word in err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    status, _, err = run_cli(capsys, *args, "--device", "cuda:7")
    assert status == 2 and one_line(err) and "cuda:7" in err and "1 CUDA device" in err
    assert not (tmp_path / "labels.png").exists()


def test_10_a_data_error_in_a_loader_worker_is_one_line(data, tmp_path, capsys):
    import shutil

    broken = Path(shutil.copytree(data, tmp_path / "data"))
    for image in (broken / "JPEGImages").glob("train_*.jpg"):
        image.write_bytes(b"not a jpeg")
    status, _, err = run_cli(capsys, "train", "--config", "experiment_quick", "--data", broken,
                             "--out", tmp_path / "run", *TINY, "data.num_workers=1")
    assert status == 2 and one_line(err) and "train_00000" in err and "not a readable image" in err


def test_11_ctrl_c_saves_and_says_how_to_resume(data, tmp_path, capsys, monkeypatch):
    import pixseg.engine.train as train_module

    args = ["train", "--config", "experiment_quick", "--data", str(data), *TINY, "iterations=3",
            "checkpoint_every=3"]
    assert main([*args, "--out", str(tmp_path / "straight")]) == 0

    def ctrl_c(*_, **__):  # during the validation after step 2
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "evaluate", ctrl_c)
        status, _, err = run_cli(capsys, *args, "--out", tmp_path / "stopped")
    assert status == 130 and one_line(err) and "step 2 of 3" in err and "--resume" in err
    assert torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=True)["step"] == 2
    assert main([*args, "--out", str(tmp_path / "stopped"), "--resume"]) == 0
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_12_an_unsafe_pickle_is_refused_in_one_line(data, tmp_path, capsys):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"model": Payload(), "config": {}}, tmp_path / "evil.pt")
    status, _, err = run_cli(capsys, "eval", "--checkpoint", tmp_path / "evil.pt", "--data", data)
    assert status == 2 and one_line(err) and "evil.pt" in err and "unsafe" in err
    assert "weights_only" not in err and not marker.exists()


def test_13_float16_probabilities_are_accepted(tmp_path, capsys):
    rng = np.random.default_rng(0)
    image, probs = tmp_path / "image.png", tmp_path / "probs.npy"
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(image)
    logits = rng.normal(size=(21, 24, 32))
    softmax = np.exp(logits) / np.exp(logits).sum(0)
    np.save(probs, softmax.astype(np.float16))
    assert main(["crf", "--image", str(image), "--probs", str(probs), "--out", str(tmp_path / "a.png"),
                 "--iterations", "2"]) == 0
    np.save(probs, (softmax * 1.01).astype(np.float16))
    status, _, err = run_cli(capsys, "crf", "--image", image, "--probs", probs, "--out", tmp_path / "b.png")
    assert status == 2 and one_line(err)
    assert 1.005 < float(re.search(r"they sum to ([0-9.]*[0-9])", err).group(1)) < 1.015


def test_14_too_many_labels_are_refused_before_the_crf(tmp_path, capsys, monkeypatch):
    import pixseg.crf

    image, probs = tmp_path / "image.png", tmp_path / "probs.npy"
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(image)
    np.save(probs, np.full((300, 4, 5), 1 / 300, np.float32))
    monkeypatch.setattr(pixseg.crf, "dense_crf", lambda *a, **k: pytest.fail("the CRF ran"))
    status, _, err = run_cli(capsys, "crf", "--image", image, "--probs", probs, "--out", tmp_path / "labels.png")
    assert status == 2 and one_line(err) and "300 labels" in err


def test_15_undefined_scores_are_null_not_nan(run_dir, data, tmp_path):
    assert main(["eval", "--checkpoint", str(run_dir / "checkpoint.pt"), "--data", str(data),
                 "--out", str(tmp_path)]) == 0
    text = (tmp_path / "metrics_val.json").read_text()

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    metrics = json.loads(text, parse_constant=refuse)
    assert None in metrics["iou"]  # a tiny val set misses most classes


def test_16_a_failed_train_leaves_no_folder_and_paths_are_absolute(data, tmp_path, capsys, monkeypatch):
    status, _, err = run_cli(capsys, "train", "--config", "experiment_quick", "--data", data,
                             "--out", tmp_path / "run", *TINY, "batch_size=64")
    assert status == 2 and "batch_size" in err and not (tmp_path / "run").exists()
    monkeypatch.chdir(data.parent)
    assert main(["train", "--config", "experiment_quick", "--data", data.name, "--out", str(tmp_path / "run"),
                 *TINY, "iterations=1"]) == 0
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["config"]["data"]["root"]
    assert saved == str(data)
    monkeypatch.chdir(tmp_path)
    assert main(["tune-crf", "--checkpoint", "run/checkpoint.pt", "--split", "train", "--trials", "0",
                 "--iterations", "1"]) == 0
    assert json.loads((tmp_path / "run" / "crf.json").read_text())["num_images"] == 4


def test_17_every_random_generator_is_saved_and_restored(tmp_path, monkeypatch):
    import random

    from pixseg.engine.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint

    generators = {"saved": None, "restored": None}
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [torch.full((16,), 7, dtype=torch.uint8)])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: generators.update(restored=states))
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    save_checkpoint(tmp_path / "c.pt", {"model": {}, "config": {}, "rng": rng_state(torch.device("cuda"))})
    draws = torch.rand(3), np.random.rand(3), random.random()
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    # weights_only loading: every state is in plain types and tensors
    restore_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"], torch.device("cuda"))
    assert torch.equal(torch.rand(3), draws[0]) and np.array_equal(np.random.rand(3), draws[1])
    assert random.random() == draws[2]
    (state,) = generators["restored"]
    assert state.device.type == "cpu" and state.dtype == torch.uint8 and bool((state == 7).all())
    assert "cuda" not in rng_state(torch.device("cpu"))


def test_18_torn_log_lines_and_resume_without_checkpoint(run_dir, data, tmp_path):
    args = ["train", "--config", "experiment_quick", "--data", str(data), *TINY, "--resume"]
    torn = copy_run(run_dir, tmp_path / "torn")
    with (torn / "metrics.jsonl").open("a") as log:
        log.write('{"step": 3, "lo')
    assert main([*args, "--out", str(torn)]) == 0
    assert [json.loads(line)["step"] for line in (torn / "metrics.jsonl").read_text().splitlines()] == [2, 2]
    fresh = copy_run(run_dir, tmp_path / "fresh")
    (fresh / "checkpoint.pt").unlink()  # killed before its first checkpoint
    assert main([*args, "--out", str(fresh)]) == 0
    records = [json.loads(line) for line in (fresh / "metrics.jsonl").read_text().splitlines()]
    assert len({(r["step"], "split" in r) for r in records}) == len(records) == 2


def test_19_resume_allows_what_does_not_change_the_result(run_dir, data, tmp_path, capsys):
    import shutil

    run = copy_run(run_dir, tmp_path / "run")
    moved = shutil.copytree(data, tmp_path / "moved")
    status, _, err = run_cli(capsys, "train", "--config", "experiment_quick", "--data", moved, "--out", run, *TINY,
                             "iterations=3", "--resume")
    assert status == 2 and "iterations: 2 in the checkpoint, 3 now" in err
    status, _, err = run_cli(capsys, "train", "--config", "experiment_quick", "--data", moved, "--out", run,
                             *TINY, "val_every=1", "data.num_workers=1", "checkpoint_every=2", "optim.lr=0.5",
                             "--device", "cpu", "--resume")
    assert status == 2 and one_line(err) and "optim.lr" in err
    for neutral in ("val_every", "num_workers", "checkpoint_every", "data.root", "device"):
        assert neutral not in err
    assert main(["train", "--config", "experiment_quick", "--data", str(moved), "--out", str(run), *TINY,
                 "val_every=1", "data.num_workers=1", "checkpoint_every=2", "--device", "cpu", "--resume"]) == 0


def test_19_a_checkpoint_from_before_an_option_existed_resumes_at_its_default(run_dir, data, tmp_path, capsys):
    from pixseg.engine.checkpoint import load_checkpoint, save_checkpoint

    run = copy_run(run_dir, tmp_path / "old")
    state = load_checkpoint(run / "checkpoint.pt")
    del state["config"]["aux_weight"], state["config"]["data"]["options"]  # options a newer pixseg added
    save_checkpoint(run / "checkpoint.pt", state)
    args = ["train", "--config", "experiment_quick", "--data", data, "--out", run, *TINY]
    assert run_cli(capsys, *args, "--resume")[0] == 0
    status, _, err = run_cli(capsys, *args, "aux_weight=0.5", "--resume")
    assert status == 2 and one_line(err) and "aux_weight: 0.4 in the checkpoint, 0.5 now" in err


def test_20_cached_results_are_keyed_by_what_produced_them(run_dir, data, tmp_path, capsys):
    from pixseg.data import VOCSegmentation
    from pixseg.engine.experiment import evaluation

    run = copy_run(run_dir, tmp_path / "run")
    val = VOCSegmentation(data, "val")
    path = tmp_path / "result.json"
    settings = {"iterations": 1, "appearance": (4.0, 67.0, 3.0), "smoothness": (3.0, 1.0)}

    def evaluated(**changes):
        options = {"mode": "dense", "crf_settings": settings, **changes}
        evaluation(path, run / "checkpoint.pt", val, "cpu", pos_cache=tmp_path / "pos", progress=False, **options)
        return path.stat().st_mtime_ns, json.loads(path.read_text())["produced_by"]

    first = evaluated()
    assert evaluated() == first  # reused
    assert evaluated(crf_settings={**settings, "iterations": 2})[1]["crf"]["iterations"] == 2
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    torch.save({**state, "step": 1}, run / "checkpoint.pt")  # retrained
    assert evaluated(crf_settings={**settings, "iterations": 2})[1]["checkpoint_sha256"] != first[1]["checkpoint_sha256"]

    checkpoint = str(run / "checkpoint.pt")
    for preset in ("reference", "deeplab_v2"):
        assert main(["eval", "--checkpoint", checkpoint, "--data", str(data), "--crf", "dense",
                     "--crf-preset", preset, "--crf-iterations", "1"]) == 0
    results = [json.loads(p.read_text()) for p in sorted(run.glob("metrics_val_densecrf_*.json"))]
    assert sorted(r["crf_parameters"]["appearance"][2] for r in results) == [3.0, 13.0]


def test_21_temporary_files_of_a_killed_write_are_removed(run_dir, data, tmp_path):
    run = copy_run(run_dir, tmp_path / "run")
    (run / ".checkpoint.0a1b2c3d.pt").write_bytes(b"half")
    (run / ".metrics.0a1b2c3d.jsonl").write_bytes(b"half")
    (run / ".checkpoint.notmine.pt").write_bytes(b"someone else's")
    assert main(["train", "--config", "experiment_quick", "--data", str(data), "--out", str(run), *TINY,
                 "--resume"]) == 0
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [".checkpoint.notmine.pt"]


def test_17_19_21_forecast_runs_resume_on_another_device_and_clean_up(tmp_path, capsys):
    import shutil

    video = tmp_path / "video"
    assert main(["synth-video", "--out", str(video), "--n-train", "2", "--n-val", "1", "--size", "32", "48",
                 "--frames", "20", "--seed", "1"]) == 0
    out = tmp_path / "run"
    args = ["forecast", "train", "--out", str(out), "--width", "0.05", "--crop", "16", "--batch-size", "2",
            "--checkpoint-every", "1"]
    assert main([*args, "--data", str(video), "--iterations", "2"]) == 0
    (out / ".checkpoint.0a1b2c3d.pt").write_bytes(b"half")
    moved = shutil.move(video, tmp_path / "moved")
    status, _, err = run_cli(capsys, *args, "--data", moved, "--iterations", "2", "--device", "cpu", "--resume")
    assert status == 0, err
    status, _, err = run_cli(capsys, *args, "--data", moved, "--iterations", "2", "--lr", "0.5", "--resume")
    assert status == 2 and "lr" in err
    assert not (out / ".checkpoint.0a1b2c3d.pt").exists()
