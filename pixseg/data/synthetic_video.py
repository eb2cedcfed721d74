"""Render synthetic video in Cityscapes' sequence layout, with a label map for every frame.

Objects of the synthetic shape families (`synthetic.CLASS_STYLES`, the first NUM_CLASSES - 1 of them)
move over a textured, slowly panning background: each with its own constant velocity, spin and rate
of growth, entering and leaving the view, in a fixed depth order so that they occlude each other the
same way in every frame. Motion is set relative to the image size, so a forecast that copies the last
frame falls clearly behind after a few frames. One random generator per sequence, keyed by
(seed, split, sequence), draws everything up front; a frame depends on nothing else.

Files, as Cityscapes names them (frame numbers 0..frames-1 within each sequence):
    leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine_sequence/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from pixseg.data.cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
from pixseg.data.palette import save_atomic, save_label_png
from pixseg.data.sequences import IMAGE_FOLDER, IMAGE_SUFFIX, LABEL_FOLDER, LABEL_SUFFIX
from pixseg.data.synthetic import (CLASS_STYLES, REFERENCE_SIZE, SIZE_FACTORS, SPLIT_STREAMS, _background,
                                   _check_size, _mix, _paint_distractors, _texture, _value_noise,
                                   object_grid)
from pixseg.io import check_output_folder

NUM_CLASSES = len(CITYSCAPES_CLASSES)  # background and 18 object families, stored as train ids
CITY = "synthville"
OBJECT_RANGE = (3, 7)  # objects per sequence, upper bound excluded
OBJECT_SIZES = (0.3, 0.65)  # box side as a fraction of the image's shorter side
SPEEDS = (0.004, 0.014)  # object speed over the background, in shorter sides per frame
PAN_SPEED = 0.006  # the camera's largest pan speed, in shorter sides per frame
STAGING_FOLDER = ".synth-video-partial"


def _draw_sequence(rng: np.random.Generator, h: int, w: int, frames: int) -> dict:
    """Everything a sequence needs, drawn once: background canvas, camera path and object tracks."""
    side = min(h, w)
    scale = side / REFERENCE_SIZE
    pan = rng.uniform(-PAN_SPEED, PAN_SPEED, 2) * side
    margin = np.ceil(np.abs(pan) * frames).astype(int) + 1
    canvas = _background(rng, h + margin[1], w + margin[0], scale)
    _paint_distractors(rng, canvas, scale)
    canvas *= (0.8 + 0.35 * _value_noise(rng, canvas.shape[:2], 120 * scale))[..., None]
    # The camera starts at the canvas corner its pan moves away from.
    start = np.where(pan < 0, margin - 1, 0).astype(float)
    objects = []
    for _ in range(rng.integers(*OBJECT_RANGE)):
        label = int(rng.integers(1, NUM_CLASSES))
        free = CLASS_STYLES[label - 1][5]
        length = side * SIZE_FACTORS[label - 1] * np.exp(rng.uniform(*np.log(OBJECT_SIZES)))
        aspect = np.exp(rng.uniform(-0.2, 0.2))
        heading = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(*SPEEDS) * side
        # The object is at a random visible spot at a random moment, so that it may enter or leave.
        when = rng.uniform(0, frames)
        at = np.array([rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h])
        velocity = speed * np.array([np.cos(heading), np.sin(heading)])
        objects.append({
            "label": label,
            "half": (length / 2 * aspect, length / 2 / aspect),
            "origin": at + start - velocity * when,  # canvas position at frame 0
            "velocity": velocity,
            "angle": rng.uniform(0, 2 * np.pi) if free else rng.normal(0, 0.2),
            "spin": rng.normal(0, 0.015 if free else 0.005),
            "growth": rng.uniform(-0.015, 0.015),
            "mirror": rng.choice((-1.0, 1.0)),
            "colours": [np.float32(rng.uniform(0.85, 1.12)) * np.asarray(c, np.float32) / 255
                        for c in CLASS_STYLES[label - 1][1:3]],
            "texture_seed": int(rng.integers(2 ** 31)),
        })
    return {"canvas": canvas, "pan": pan, "start": start, "objects": objects, "scale": scale,
            "noise": float(rng.uniform(0.01, 0.03))}


def _render_frame(sequence: dict, t: int, h: int, w: int, noise_rng: np.random.Generator):
    """Frame t of a drawn sequence: (image uint8 H×W×3, labels uint8 H×W)."""
    camera = np.rint(sequence["start"] + sequence["pan"] * t).astype(int)
    image = sequence["canvas"][camera[1]:camera[1] + h, camera[0]:camera[0] + w].copy()
    labels = np.zeros((h, w), dtype=np.uint8)
    for obj in sequence["objects"]:  # in depth order: later objects pass in front
        shape, _, _, texture, period, _ = CLASS_STYLES[obj["label"] - 1]
        cx, cy = obj["origin"] + obj["velocity"] * t - camera
        grow = np.exp(obj["growth"] * t)
        region, pu, pv, u, v = object_grid(h, w, cx, cy, obj["half"][0] * grow, obj["half"][1] * grow,
                                           obj["angle"] + obj["spin"] * t, obj["mirror"])
        if pu.size == 0:
            continue
        mask = shape(u, v)
        # The same texture generator every frame: the object keeps its look as it moves.
        tex = _texture(np.random.default_rng(obj["texture_seed"]), texture, period, pu, pv, v, sequence["scale"])
        shading = np.clip(1.0 - 0.1 * v[mask], 0.85, 1.15)
        image[region][mask] = _mix(*obj["colours"], tex[mask]) * shading[:, None]
        labels[region][mask] = obj["label"]
    image += np.float32(sequence["noise"]) * noise_rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8), labels


def render_sequence(rng: np.random.Generator, size=(128, 256), frames: int = 30):
    """Yield (image, labels) for each frame of one synthetic sequence."""
    _check_size(size)
    h, w = int(size[0]), int(size[1])
    sequence = _draw_sequence(rng, h, w, frames)
    for t in range(frames):
        yield _render_frame(sequence, t, h, w, rng)


def frame_stem(city: str, sequence: int, frame: int) -> str:
    return f"{city}_{sequence:06d}_{frame:06d}"


def make_synthetic_video(out, n_train: int = 40, n_val: int = 10, size=(128, 256), frames: int = 30,
                         seed: int = 0, progress: bool = True, overwrite: bool = False) -> Path:
    """Write synthetic sequences in Cityscapes' sequence layout under `out`; returns `out` as a Path.

    Sequence j of a split depends only on (seed, split, j). `out` must be empty or absent; with
    overwrite, the synthetic city's folders there are replaced and other cities are left alone.
    Sequences are rendered into a hidden folder in `out` and moved into place when all are written,
    so a killed run never leaves a partial set where readers look.
    """
    for name, count in (("n_train", n_train), ("n_val", n_val)):
        if not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {count!r}")
    if n_train + n_val == 0:
        raise ValueError("n_train + n_val must be at least 1, got 0 sequences to make")
    if not isinstance(frames, (int, np.integer)) or frames < 2:
        raise ValueError(f"frames must be an integer of at least 2, got {frames!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    _check_size(size)
    out = check_output_folder(out)
    if not overwrite and out.is_dir() and any(out.iterdir()):
        raise ValueError(f"--out {out} is not empty; give an empty or new folder, or --overwrite to "
                         f"replace the synthetic video there")
    staging = out / STAGING_FOLDER
    shutil.rmtree(staging, ignore_errors=True)  # what a killed run left
    jobs = [(split, j) for split, count in (("train", n_train), ("val", n_val)) for j in range(count)]
    for split, j in tqdm(jobs, desc="synth-video", unit="seq", disable=not progress):
        images = staging / IMAGE_FOLDER / split / CITY
        labels = staging / LABEL_FOLDER / split / CITY
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, SPLIT_STREAMS[split], j])
        for t, (image, label) in enumerate(render_sequence(rng, size, frames)):
            stem = frame_stem(CITY, j, t)
            save_atomic(Image.fromarray(image), images / f"{stem}{IMAGE_SUFFIX}")
            save_label_png(labels / f"{stem}{LABEL_SUFFIX}", label, CITYSCAPES_PALETTE)
    for folder in (IMAGE_FOLDER, LABEL_FOLDER):
        for split in ("train", "val"):
            target = out / folder / split / CITY
            shutil.rmtree(target, ignore_errors=True)
            if (staging / folder / split / CITY).is_dir():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / folder / split / CITY, target)
    shutil.rmtree(staging)
    return out
