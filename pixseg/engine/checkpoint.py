"""Checkpoints: written atomically, read back with torch.load(weights_only=True)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from pixseg.io import atomic_path


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write `state` to `path` so that a crash mid-write leaves the previous file intact."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        # On disk before the rename: a power cut must not leave a renamed but empty checkpoint.
        os.fsync(handle.fileno())


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise ValueError(f"checkpoint {path} could not be read ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(f"checkpoint {path} is not a pixseg checkpoint (no 'model' and 'config' entries)")
    return state
