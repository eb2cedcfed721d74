"""Prediction: label maps (palette PNG), colour overlays and optionally probabilities for image files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from pixseg.data.palette import save_label_png
from pixseg.data.base import read_image
from pixseg.engine.evaluate import predict_probs
from pixseg.io import atomic_path, check_not_inputs
from pixseg.viz import overlay, save_png


def predict_files(model, image_paths, out_dir, device, *, refine=None, save_probs: bool = False,
                  metadata: dict | None = None, inference=None, progress: bool = True,
                  amp: bool = False) -> list[Path]:
    """Write <stem>.png (label indices in a palette PNG) and <stem>_overlay.png for each image;
    with save_probs also <stem>_probs.npy (float32 CxHxW). `inference` (an InferenceConfig) says
    how the model is applied; whole images when None. `metadata` (a dataset's, as
    `SegmentationDataset.metadata()` gives it) sets the colours; VOC's when None. Returns the label
    map paths. With `amp` the network runs under autocast (pixseg.engine.precision)."""
    out_dir = Path(out_dir)
    stems = [Path(p).stem for p in image_paths]
    repeated = sorted({s for s in stems if stems.count(s) > 1})
    if repeated:
        raise ValueError(f"several input images share the name(s) {', '.join(repeated)}; "
                         "their outputs would overwrite each other")
    palette = None if metadata is None else metadata["palette"]
    background = metadata is None or metadata["classes"][0] == "background"
    check_not_inputs([("--out", path) for stem in stems for path in output_paths(out_dir, stem, save_probs)],
                     [("IMAGE", path) for path in image_paths])
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in tqdm(image_paths, desc="predict", unit="img", disable=not progress, dynamic_ncols=True):
        image = read_image(path)
        probs = predict_probs(model, image, device, inference, amp).cpu().numpy()
        labels = probs.argmax(0) if refine is None else refine(image, probs)
        labels = np.asarray(labels, dtype=np.uint8)
        label_path, overlay_path, *probs_path = output_paths(out_dir, Path(path).stem, save_probs)
        save_label_png(label_path, labels, palette)
        save_png(overlay_path, overlay(image, labels, palette=palette, background=background))
        if save_probs:
            with atomic_path(probs_path[0]) as tmp:
                np.save(tmp, probs.astype(np.float32))
        written.append(label_path)
    return written


def output_paths(out_dir: Path, stem: str, save_probs: bool) -> list[Path]:
    """The files written for an image named `stem`: label map, overlay and, with save_probs, probabilities."""
    names = [f"{stem}.png", f"{stem}_overlay.png", *([f"{stem}_probs.npy"] if save_probs else [])]
    return [out_dir / name for name in names]
