"""Tests for `pixseg models`."""

from pixseg.cli import main


def test_models_lists_architectures_and_backbones_with_counts(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "fcn8s" in out and "134,489,759" in out and "padding='classic'" in out
    assert "resnet50" in out and "23,508,032" in out and "256/512/1024/2048" in out


def test_bad_class_count_is_one_line(capsys):
    assert main(["models", "--classes", "0"]) == 2
    assert capsys.readouterr().err.strip() == "pixseg models: error: --classes 0: expected an integer >= 1"
