import pytest
import torch

from pixseg.engine.checkpoint import load_checkpoint, save_checkpoint


def test_round_trip_with_weights_only(tmp_path):
    state = {"model": {"w": torch.arange(4.0)}, "config": {"seed": 1}, "step": 3, "rng": torch.get_rng_state()}
    path = tmp_path / "sub" / "checkpoint.pt"
    save_checkpoint(path, state)
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["step"] == 3
    assert load_checkpoint(path)["config"] == {"seed": 1}
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"model": {}, "config": {"v": 1}})

    def broken_save(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {"model": {}, "config": {"v": 2}})
    monkeypatch.undo()
    assert load_checkpoint(path)["config"] == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_unreadable_and_foreign_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    with pytest.raises(ValueError, match="not a pixseg checkpoint"):
        load_checkpoint(foreign)
