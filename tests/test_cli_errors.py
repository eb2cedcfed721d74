"""Every writing command, fed output paths it cannot use: exit status 2, one line naming the path,
no traceback, nothing written, and no work done first (the inputs named here do not exist, so a
command that read them before checking its output would fail with another message)."""

import os

import pytest

from pixseg.cli import main

# (command line before the output path, the option naming it, "file" or "folder" output)
WRITERS = [
    (["synth", "--n-train", "1", "--n-val", "1", "--size", "32", "32"], "--out", "folder"),
    (["train", "--config", "experiment_quick", "--data", "no-data"], "--out", "folder"),
    (["eval", "--checkpoint", "no.pt", "--data", "no-data"], "--out", "folder"),
    (["predict", "--checkpoint", "no.pt", "no.png"], "--out", "folder"),
    (["sweep-weights", "--config", "experiment_quick", "--data", "no-data"], "--out", "folder"),
    (["experiment", "--data", "no-data"], "--out", "folder"),
    (["demo"], "--out", "folder"),
    (["objectness", "no.png"], "--out", "folder"),
    (["tune-crf", "--checkpoint", "no.pt"], "--out", "file"),
    (["crf", "--image", "no.png", "--probs", "no.npy"], "--out", "file"),
    (["crf", "--image", "no.png", "--probs", "no.npy", "--out", "labels.png"], "--save-q", "file"),
    (["class-weights", "--data", "no-data"], "--out", "file"),
    (["train-boundaries", "--data", "no-data"], "--out", "file"),
    (["synth-video", "--n-train", "1", "--n-val", "1"], "--out", "folder"),
    (["forecast", "train", "--data", "no-data"], "--out", "folder"),
    (["forecast", "eval", "--checkpoint", "no.pt", "--data", "no-data"], "--out", "folder"),
]


def bad_paths(tmp_path, kind):
    """(name, path, words the message must hold) for an output of `kind`."""
    a_file = tmp_path / "taken.txt"
    a_file.write_text("mine")
    a_folder = tmp_path / "folder.json"
    a_folder.mkdir()
    cases = [("under a file", a_file / "out", "is a file")]
    cases.append(("a file", a_file, "is a file") if kind == "folder" else ("a folder", a_folder, "is a folder"))
    if os.geteuid() != 0:  # root writes into read-only folders
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        cases.append(("in a read-only folder", locked / "out", "not writable"))
    return cases


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def case_id(writer):
    command, option, _ = writer
    return " ".join([word for word in command[:2] if not word.startswith("-")] + [option])


@pytest.mark.parametrize("command, option, kind", WRITERS, ids=[case_id(w) for w in WRITERS])
def test_unusable_output_paths(tmp_path, monkeypatch, capsys, command, option, kind):
    monkeypatch.chdir(tmp_path)
    for name, path, words in bad_paths(tmp_path, kind):
        before = snapshot(tmp_path)
        status = main([*command, option, str(path)])
        err = capsys.readouterr().err
        assert status == 2, name
        assert err.count("\n") == 1 and err.startswith(f"pixseg {command[0]}: error: "), (name, err)
        assert str(path) in err and words in err, (name, err)
        assert snapshot(tmp_path) == before, name


@pytest.mark.parametrize("command", ["zoo", "experiment", "demo", "adversarial-study"])
def test_bad_worker_counts_and_empty_model_lists_are_refused_first(tmp_path, capsys, command):
    out = tmp_path / "run"
    for workers in ("0", "-1", "two"):
        with pytest.raises(SystemExit) as stop:
            main([command, "--out", str(out), "--workers", workers])
        assert stop.value.code == 2
        assert f"--workers: expected a whole number >= 1, got '{workers}'" in capsys.readouterr().err
    if command != "adversarial-study":  # an empty list once meant every model
        assert main([command, "--out", str(out), "--models", " , "]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--models ' , ': expected one or more comma-separated names" in err
    assert not out.exists()


def test_crf_label_map_must_be_named_png(tmp_path, capsys):
    out = tmp_path / "labels.jpg"
    assert main(["crf", "--image", "no.png", "--probs", "no.npy", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {out}: expected a .png file name" in err and not out.exists()


@pytest.mark.parametrize("command", [["zoo", "optim.lr=abc"], ["zoo", "nokey=1"], ["adversarial-study", "--config", "nothere"],
                                     ["experiment", "--pretrained", "nothere.pt"]])
def test_study_settings_are_checked_before_data_is_made(tmp_path, capsys, command):
    out = tmp_path / "run"
    assert main([command[0], "--out", str(out), *command[1:]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not out.exists(), err


def test_objectness_counts_name_their_flag(tmp_path, capsys):
    image = tmp_path / "a.png"
    image.write_bytes(b"")  # never read: the count is checked first
    for flag in ("--n-superpixels", "--n-seeds", "--level-sets"):
        assert main(["objectness", str(image), "--out", str(tmp_path / "maps"), flag, "0"]) == 2
        assert f"{flag} 0: expected a whole number >= 1" in capsys.readouterr().err
    assert not (tmp_path / "maps").exists()
