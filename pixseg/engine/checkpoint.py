"""Checkpoints: written atomically, read back with torch.load(weights_only=True), and the random
state a resumed run needs to continue exactly."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import numpy as np
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
    except pickle.UnpicklingError:
        # torch's own message spends six lines advising weights_only=False, which would run
        # whatever code the file holds.
        raise ValueError(f"checkpoint {path} is not a pixseg checkpoint, or was refused as unsafe: it holds "
                         f"more than tensors and plain values") from None
    except Exception as error:  # torch raises several types for truncated or foreign files
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise ValueError(f"checkpoint {path} could not be read ({type(error).__name__}: {first_line})") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(f"checkpoint {path} is not a pixseg checkpoint (no 'model' and 'config' entries)")
    return state


def rng_state(device: torch.device) -> dict:
    """Every random generator a training step may draw from (torch's CPU and, on CUDA, each GPU's;
    numpy's and Python's), in types torch.load(weights_only=True) reads back."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)},
             "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state, device: torch.device) -> None:
    """Set the generators `rng_state` saved. The generator states are CPU byte tensors whatever
    the device a checkpoint was mapped to; checkpoints from before numpy and Python's states were
    saved hold torch's CPU state alone."""
    if isinstance(state, torch.Tensor):
        torch.set_rng_state(state.cpu())
        return
    torch.set_rng_state(state["torch"].cpu())
    saved = state["numpy"]
    np.random.set_state((saved["kind"], saved["keys"].numpy().astype(np.uint32), saved["position"],
                         saved["has_gauss"], saved["gauss"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all([generator.cpu() for generator in state["cuda"]])
