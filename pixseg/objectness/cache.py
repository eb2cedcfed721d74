"""POS maps cached on disk by content hash, and precomputed for many images in parallel.

A map is stored as `<cache_dir>/<key>.npy` (float32 HxW), where the key hashes the image's pixels,
the options exactly as given (so `n_seeds=130` and the default are two entries; a boundary model file
by its content) and a format version
that changes whenever the algorithm would give a different map for the same input.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pixseg.io import atomic_path
from pixseg.objectness.boundaries import as_rgb
from pixseg.objectness.pos import pixel_objectness

VERSION = 1


def cache_key(image, options: dict) -> str:
    """Hex digest of the RGB pixels of `image` and the objectness `options`."""
    image = as_rgb(image)
    digest = hashlib.sha256(f"pixseg-pos-v{VERSION}|{image.shape}|".encode())
    digest.update(image.tobytes())
    for name in sorted(options):
        digest.update(f"|{name}=".encode())
        digest.update(_option_bytes(name, options[name]))
    return digest.hexdigest()


def cache_path(image, cache_dir, **options) -> Path:
    """Where the POS map of `image` with `options` lives in `cache_dir` (it may not exist yet)."""
    return Path(cache_dir) / f"{cache_key(image, options)}.npy"


def cached_pixel_objectness(image, cache_dir, **options) -> np.ndarray:
    """`pixel_objectness(image, **options)`, read from `cache_dir` when computed before.

    An unreadable or mismatched cache file (an interrupted copy, another program's file) is
    recomputed and replaced.
    """
    image = as_rgb(image)
    path = cache_path(image, cache_dir, **options)
    if path.is_file():
        try:
            pos = np.load(path, allow_pickle=False)
            if pos.shape == image.shape[:2] and pos.dtype == np.float32:
                return pos
        except (OSError, ValueError, EOFError):
            pass
    pos = pixel_objectness(image, **options)
    with atomic_path(path) as tmp:
        np.save(tmp, pos)
    return pos


def precompute(images, cache_dir, *, workers: int = 1, progress: bool = True, **options) -> list[Path]:
    """Cache the POS map of every image; returns their cache files in input order.

    `images`: image file paths, or a dataset with `image_path(i)` and `len()` (VOCSegmentation).
    `workers` > 1 computes in that many processes. Images already cached are only read and hashed.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
    if hasattr(images, "image_path"):
        paths = [Path(images.image_path(i)) for i in range(len(images))]
    else:
        paths = [Path(p) for p in images]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"image file {path} does not exist")
    job = partial(_cache_one, cache_dir=str(cache_dir), options=options)
    bar = tqdm(total=len(paths), desc="objectness", unit="img", disable=not progress, dynamic_ncols=True)
    with bar:
        if workers == 1 or len(paths) < 2:
            results = []
            for path in paths:
                results.append(job(path))
                bar.update()
            return results
        with ProcessPoolExecutor(max_workers=min(workers, len(paths))) as pool:
            results = []
            for result in pool.map(job, paths):
                results.append(result)
                bar.update()
            return results


def _cache_one(path: Path, cache_dir: str, options: dict) -> Path:
    from pixseg.data.base import read_image

    image = read_image(path)
    try:
        cached_pixel_objectness(image, cache_dir, **options)
    except ValueError as error:
        raise ValueError(f"image {path}: {error}") from None
    return cache_path(image, cache_dir, **options)


def _option_bytes(name: str, value) -> bytes:
    if name == "boundary_model" and value is not None:
        # A model retrained into the same file gives other maps: the key follows its content.
        path = Path(value)
        if not path.is_file():
            raise ValueError(f"boundary model {path} does not exist")
        return b"model" + hashlib.sha256(path.read_bytes()).digest()
    if isinstance(value, np.ndarray):
        return f"array{value.shape}{value.dtype}".encode() + hashlib.sha256(np.ascontiguousarray(value)).digest()
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value).encode()
    if isinstance(value, (tuple, list)):
        return b"(" + b",".join(_option_bytes(name, v) for v in value) + b")"
    raise ValueError(f"objectness option {name}={value!r} cannot be part of a cache key; "
                     f"use numbers, strings, tuples or numpy arrays")
