"""Render a synthetic segmentation dataset in the exact Pascal VOC 2012 layout.

Each of the 20 object classes has its own shape family (several with thin legs, handles or wires)
and its own appearance (a colour pair and a texture), so a small network can learn them from local
evidence. Backgrounds are textured and cluttered with unlabelled distractors drawn in background
colours, and several classes wear background-like colours and textures, so foreground and background
are genuinely confusable. Objects occlude each other; labels carry a void band around every object
boundary as VOC's do. Everything is drawn with numpy on coordinate grids, one random generator per
image keyed by (seed, split, index), so a dataset is the same for a seed however it is produced.
"""

import re
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from tqdm import tqdm

from pixseg.data import shapes
from pixseg.data.palette import save_atomic, save_label_png
from pixseg.io import check_output_folder, write_text

REFERENCE_SIZE = 256  # texture periods, noise and the void band are given in pixels at this size
JPEG_QUALITY = 95
OBJECT_COUNTS = (0.1, 0.25, 0.35, 0.3)  # chances of 1, 2, 3 and 4 objects in an image
MIN_VISIBLE = 0.4  # a new object may hide at most 60% of an earlier one
OBJECT_SIZES = (0.4, 1.1)  # an object's box side as a fraction of the image's shorter side


# Per class: shape, two colours, texture, texture period in pixels at REFERENCE_SIZE, and whether
# the shape may turn all the way round (others stay roughly upright). Most classes wear a saturated
# colour pair no background has, each a different one, so that a small network learns them in a
# few minutes. A few deliberately wear background colours, wholly or in part: aeroplane (its white
# upper half), chair (wood), dog (sand), pottedplant (grass), sheep (beige stone), person (skin),
# motorbike and tvmonitor (as dark as shadowed backgrounds).
CLASS_STYLES = (
    (shapes.cross, (235, 235, 240), (200, 30, 60), "split", 0, True),
    (shapes.bicycle, (215, 30, 40), (120, 10, 20), "flat", 0, False),
    (shapes.triangle, (40, 100, 215), (160, 200, 245), "stripes", 7, False),
    (shapes.boat, (240, 240, 235), (20, 30, 110), "stripes", 12, False),
    (shapes.bottle, (0, 175, 200), (170, 240, 245), "gradient", 0, False),
    (shapes.square, (240, 205, 30), (35, 35, 35), "checker", 10, False),
    (shapes.car, (30, 50, 160), (100, 130, 230), "flat", 0, False),
    (shapes.cat, (230, 130, 35), (130, 65, 15), "stripes", 9, False),
    (shapes.chair, (150, 95, 50), (80, 45, 20), "stripes", 6, False),
    (shapes.cow, (240, 240, 235), (30, 25, 25), "spots", 14, False),
    (shapes.table, (200, 60, 110), (250, 200, 220), "stripes", 5, False),
    (shapes.arrow, (215, 160, 70), (140, 90, 40), "noise", 4, True),
    (shapes.mug, (160, 80, 200), (80, 35, 120), "spots", 6, False),
    (shapes.annulus, (20, 20, 25), (200, 200, 210), "rings", 8, True),
    (shapes.person, (235, 180, 150), (40, 70, 160), "split", 0, False),
    (shapes.plant, (50, 160, 40), (20, 80, 20), "noise", 4, True),
    (shapes.cloud, (235, 232, 220), (170, 165, 155), "noise", 3, False),
    (shapes.u_shape, (225, 40, 190), (250, 185, 240), "dots", 9, False),
    (shapes.hexagon, (150, 210, 30), (40, 70, 10), "checker", 8, True),
    (shapes.frame, (35, 35, 45), (90, 140, 255), "gradient", 0, False),
)


def _fill_fractions(resolution=64):
    grid = (np.arange(resolution, dtype=np.float32) + 0.5) * (2 / resolution) - 1
    u, v = np.meshgrid(grid, grid)
    return np.array([style[0](u, v).mean() for style in CLASS_STYLES])


# Shapes that fill little of their box (wire frames, legs) are drawn larger, so that every class
# gets a fair share of the pixels.
SIZE_FACTORS = np.clip((0.3 / _fill_fractions()) ** 0.5, 0.75, 1.4)

# Background colours: grass, olive, sand, beige, sky, concrete, wood, slate, brick, dark earth.
BACKGROUND_COLOURS = np.array([
    (80, 110, 50), (110, 110, 70), (190, 170, 130), (205, 195, 175), (150, 175, 200),
    (140, 140, 140), (130, 95, 65), (60, 65, 75), (150, 90, 75), (55, 45, 35),
], dtype=np.float32) / 255


def _interpolation(n, cell):
    """For n pixels over grid values `cell` pixels apart: left grid index and smoothstep weight."""
    position = np.arange(n, dtype=np.float32) / cell
    index = position.astype(np.intp)
    frac = position - index
    return index, frac * frac * (3 - 2 * frac)


def _value_noise(rng, shape, cell):
    """Smooth noise in [0, 1]: random values on a grid `cell` pixels apart, smoothly interpolated."""
    cell = max(cell, 1.0)
    (y0, fy), (x0, fx) = _interpolation(shape[0], cell), _interpolation(shape[1], cell)
    grid = rng.random((y0[-1] + 2, x0[-1] + 2), dtype=np.float32)
    # Separable: along x on the few grid rows first, then along y by copying whole rows.
    rows = grid[:, x0] + (grid[:, x0 + 1] - grid[:, x0]) * fx
    return rows[y0] + (rows[y0 + 1] - rows[y0]) * fy[:, None]


def _fractal_noise(rng, shape, cell):
    noise = _value_noise(rng, shape, cell) * 0.55
    noise += _value_noise(rng, shape, cell / 2) * 0.3
    noise += _value_noise(rng, shape, cell / 4) * 0.15
    return noise


def _mix(a, b, t):
    """Blend colours a and b (RGB in 0..1) by weights t: an array of any shape gains an RGB axis."""
    return a + (b - a) * t[..., None]


def _muted_colour(rng):
    colour = BACKGROUND_COLOURS[rng.integers(len(BACKGROUND_COLOURS))]
    return np.clip(colour + rng.normal(0, 0.06, 3).astype(np.float32), 0, 1)


def _background(rng, h, w, scale):
    """One of five background families: gradient, noise, stripes, blotches, tiles."""
    a, b, c = _muted_colour(rng), _muted_colour(rng), _muted_colour(rng)
    ys, xs = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]
    angle = rng.uniform(0, np.pi)
    along = xs * np.cos(angle) + ys * np.sin(angle)
    family = rng.integers(5)
    if family == 0:
        t = (along - along.min()) / max(float(along.max() - along.min()), 1.0)
        image = _mix(a, b, t + 0.15 * (_value_noise(rng, (h, w), 24 * scale) - 0.5))
    elif family == 1:
        image = _mix(a, b, _fractal_noise(rng, (h, w), 40 * scale))
        image = _mix(image, c, 0.6 * _value_noise(rng, (h, w), 3 * scale))
    elif family == 2:
        period = rng.uniform(6, 24) * scale
        t = np.clip(0.5 + 1.5 * np.sin(along * (2 * np.pi / max(period, 3.0))), 0, 1)
        image = _mix(a, b, t * (0.6 + 0.4 * _value_noise(rng, (h, w), 30 * scale)))
    elif family == 3:
        t = _fractal_noise(rng, (h, w), 50 * scale)
        image = np.where((t < 0.45)[..., None], a, np.where((t < 0.58)[..., None], b, c))
    else:
        tile = max(rng.uniform(18, 44) * scale, 6.0)
        rows = (ys / tile).astype(np.intp)
        cols = ((xs + (rows % 2) * tile / 2) / tile).astype(np.intp)
        shade = rng.uniform(0.85, 1.15, (int(h / tile) + 2, int(w / tile) + 3)).astype(np.float32)
        grout = (ys % tile < max(scale * 2, 1)) | ((xs + (rows % 2) * tile / 2) % tile < max(scale * 2, 1))
        image = np.where(grout[..., None], b * 0.7, a * shade[rows, cols][..., None])
    return np.ascontiguousarray(image, dtype=np.float32)


def _texture(rng, kind, period, pu, pv, v, scale):
    """Blend weight in [0, 1] between an object's two colours; pu, pv are object-frame pixels."""
    period_px = max(period * scale, 3.0)
    k = 2 * np.pi / period_px
    if kind == "flat":
        return 0.25 * _value_noise(rng, pu.shape, 30 * scale)
    if kind == "gradient":
        return np.clip((v + 1) / 2, 0, 1)
    if kind == "split":  # upper half one colour, lower half the other
        return (v > 0).astype(np.float32)
    if kind == "stripes":
        return np.clip(0.5 + 1.5 * np.sin(pu * k), 0, 1)
    if kind == "checker":
        return (np.sin(pu * k) * np.sin(pv * k) > 0).astype(np.float32)
    if kind == "dots":
        du, dv = pu % period_px - period_px / 2, pv % period_px - period_px / 2
        return (du * du + dv * dv < (0.3 * period_px) ** 2).astype(np.float32)
    if kind == "rings":
        return 0.5 + 0.5 * np.sin(np.hypot(pu, pv) * k)
    if kind == "spots":
        return (_value_noise(rng, pu.shape, period_px) > 0.6).astype(np.float32)
    if kind == "noise":
        return _fractal_noise(rng, pu.shape, period_px)
    raise ValueError(f"unknown texture {kind!r}")


def _object_frame(rng, h, w, size_range, free_rotation):
    """Place an object: its bounding region and object-frame coordinates (pixels and local units)."""
    length = min(h, w) * np.exp(rng.uniform(np.log(size_range[0]), np.log(size_range[1])))
    aspect = np.exp(rng.uniform(-0.2, 0.2))
    half_u, half_v = length / 2 * aspect, length / 2 / aspect
    angle = rng.uniform(0, 2 * np.pi) if free_rotation else rng.normal(0, 0.2)
    mirror = rng.choice((-1.0, 1.0))
    cx, cy = rng.uniform(0.05 * w, 0.95 * w), rng.uniform(0.05 * h, 0.95 * h)
    return object_grid(h, w, cx, cy, half_u, half_v, angle, mirror)


def object_grid(h, w, cx, cy, half_u, half_v, angle, mirror):
    """The image region an object centred at (cx, cy) may cover, clipped to the image, and its
    object-frame coordinates there: pixels (pu, pv) and local units (u, v) spanning [-1, 1]."""
    reach = np.hypot(half_u, half_v)
    y0, y1 = max(0, int(cy - reach)), min(h, int(cy + reach) + 2)
    x0, x1 = max(0, int(cx - reach)), min(w, int(cx + reach) + 2)
    dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy)[:, None]
    dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx)[None, :]
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    pu = (cos * dx + sin * dy) * np.float32(mirror)
    pv = cos * dy - sin * dx
    return (slice(y0, y1), slice(x0, x1)), pu, pv, pu / np.float32(half_u), pv / np.float32(half_v)


def _paint_distractors(rng, image, scale):
    """Unlabelled clutter in background colours: blobs, boxes, wires, stars and object silhouettes."""
    h, w = image.shape[:2]
    for _ in range(rng.integers(1, 7)):
        region, pu, pv, u, v = _object_frame(rng, h, w, (0.08, 0.5), free_rotation=True)
        kind = rng.integers(5)
        if kind == 0:
            mask = shapes.ellipse(u, v, 0.0, 0.0, 1.0, rng.uniform(0.3, 1.0))
        elif kind == 1:
            mask = shapes.box(u, v, -1.0, -rng.uniform(0.2, 1.0), 1.0, rng.uniform(0.2, 1.0))
        elif kind == 2:  # a wire, 1.5-3 px thick at the reference size
            mask = (np.abs(pv) <= max(rng.uniform(0.75, 1.5) * scale, 0.5)) & (np.abs(u) <= 1.0)
        elif kind == 3:
            mask = shapes.star(u, v, int(rng.integers(3, 8)), 1.0, rng.uniform(0.3, 0.9))
        else:
            mask = CLASS_STYLES[rng.integers(len(CLASS_STYLES))][0](u, v)
        texture = ("flat", "noise", "stripes")[rng.integers(3)]
        t = _texture(rng, texture, rng.uniform(4, 12), pu, pv, v, scale)
        image[region][mask] = _mix(_muted_colour(rng), _muted_colour(rng), t[mask])


def _paint_objects(rng, image, scale):
    """Paint 1-4 objects, later ones occluding earlier ones; returns the instance map and classes."""
    h, w = image.shape[:2]
    instances = np.zeros((h, w), dtype=np.uint8)
    classes, full_area, visible = [0], [0], [0]
    for _ in range(1 + rng.choice(len(OBJECT_COUNTS), p=OBJECT_COUNTS)):
        for _attempt in range(10):  # after 10 rejected placements the image has one object fewer
            label = int(rng.integers(1, len(CLASS_STYLES) + 1))
            shape, colour_a, colour_b, texture, period, free = CLASS_STYLES[label - 1]
            sizes = (OBJECT_SIZES[0] * SIZE_FACTORS[label - 1], OBJECT_SIZES[1] * SIZE_FACTORS[label - 1])
            region, pu, pv, u, v = _object_frame(rng, h, w, sizes, free)
            mask = shape(u, v)
            area = int(np.count_nonzero(mask))
            hidden = np.bincount(instances[region][mask], minlength=len(classes))
            if area < 20 or any(visible[k] - hidden[k] < MIN_VISIBLE * full_area[k]
                                for k in range(1, len(classes))):
                continue
            brightness = np.float32(rng.uniform(0.85, 1.12))
            a, b = (brightness * np.asarray(colour, np.float32) / 255 + rng.normal(0, 0.03, 3).astype(np.float32)
                    for colour in (colour_a, colour_b))
            t = _texture(rng, texture, period, pu, pv, v, scale)[mask]
            shading = np.clip(1.0 - 0.1 * v[mask], 0.85, 1.15)  # lit from above
            image[region][mask] = _mix(a, b, t) * shading[:, None]
            instances[region][mask] = len(classes)
            for k in range(1, len(classes)):
                visible[k] -= int(hidden[k])
            classes.append(label)
            full_area.append(area)
            visible.append(area)
            break
    return instances, classes


def _label_maps(instances, classes, band_radius):
    """Class and instance maps with void (255) on a band around every object boundary, as VOC has."""
    size = 2 * band_radius + 1
    band = ndimage.maximum_filter(instances, size) != ndimage.minimum_filter(instances, size)
    # An instance left with no pixel outside the band disappears; the others are renumbered 1..K.
    seen = np.bincount(instances[~band], minlength=len(classes))[1:len(classes)]
    new_id = np.full(256, 255, dtype=np.uint8)
    new_id[0] = 0
    kept = np.flatnonzero(seen) + 1
    new_id[kept] = np.arange(1, len(kept) + 1)
    class_of = np.full(256, 255, dtype=np.uint8)
    class_of[:len(classes)] = classes
    labels = np.where(band, np.uint8(255), class_of[instances])
    objects = np.where(band, np.uint8(255), new_id[instances])
    return labels, objects


def _check_size(size) -> None:
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, (int, np.integer)) and s >= 32 for s in size)):
        raise ValueError(f"size must be (height, width) with both at least 32 pixels, got {size!r}")


def render_scene(rng: np.random.Generator, size=(256, 256)):
    """One synthetic image with its labels: (image uint8 H×W×3, classes uint8 H×W, instances uint8 H×W)."""
    _check_size(size)
    h, w = int(size[0]), int(size[1])
    scale = min(h, w) / REFERENCE_SIZE
    image = _background(rng, h, w, scale)
    _paint_distractors(rng, image, scale)
    instances, classes = _paint_objects(rng, image, scale)
    light = 0.8 + 0.35 * _value_noise(rng, (h, w), 120 * scale)
    image *= light[..., None]
    image += np.float32(rng.uniform(0.01, 0.035)) * rng.standard_normal((h, w, 3), dtype=np.float32)
    image = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
    labels, objects = _label_maps(instances, classes, max(1, round(min(h, w) / 200)))
    return image, labels, objects


SPLIT_STREAMS = {"train": 0, "val": 1}
SPLIT_FILES = ("train", "val", "trainval")
IMAGE_FOLDERS = ("JPEGImages", "SegmentationClass", "SegmentationObject")


def make_synthetic_voc(out, n_train: int = 1000, n_val: int = 250, size=(256, 256), seed: int = 0,
                       progress: bool = True, workers: int = 1, overwrite: bool = False) -> Path:
    """Write a synthetic dataset in the VOC 2012 layout under `out`; returns `out` as a Path.

    Image j of a split depends only on (seed, split, j), so the val set stays the same when only
    n_train changes, and `workers` processes write exactly the files one process would. The split
    files are written last: a folder holding them is complete. `out` must be empty or absent;
    with overwrite, the synthetic images already there that the new set does not have are removed,
    so no image of an older set stays mixed in (files of other names are left alone).
    """
    for name, count in (("n_train", n_train), ("n_val", n_val)):
        if not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {count!r}")
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if n_train + n_val == 0:
        raise ValueError("n_train + n_val must be at least 1, got 0 images to make")
    _check_size(size)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out = check_output_folder(out)
    if not overwrite and out.is_dir() and any(out.iterdir()):
        raise ValueError(f"--out {out} is not empty; give an empty or new folder, or --overwrite to "
                         f"replace the synthetic dataset there")
    splits = out / "ImageSets" / "Segmentation"
    for folder in (*(out / name for name in IMAGE_FOLDERS), splits):
        folder.mkdir(parents=True, exist_ok=True)
    for split in SPLIT_FILES:  # an earlier set's split files would vouch for a half-written one
        (splits / f"{split}.txt").unlink(missing_ok=True)
    ids = {split: [f"{split}_{j:06d}" for j in range(count)]
           for split, count in (("train", n_train), ("val", n_val))}
    _remove_other_samples(out, {image_id for split in ids.values() for image_id in split})
    jobs = [(split, j) for split in ids for j in range(len(ids[split]))]
    write = partial(_write_sample, out, tuple(size), seed)
    bar = tqdm(total=len(jobs), desc="synth", unit="img", disable=not progress)
    if workers == 1:
        for job in jobs:
            write(job)
            bar.update()
    else:
        with ProcessPoolExecutor(workers) as pool:
            for _ in pool.map(write, jobs, chunksize=8):
                bar.update()
    bar.close()
    ids["trainval"] = ids["train"] + ids["val"]
    for split in SPLIT_FILES:
        write_text(splits / f"{split}.txt", "".join(f"{image_id}\n" for image_id in ids[split]))
    return out


SAMPLE_NAME = re.compile(r"(train|val)_\d{6}\.(jpg|png)")


def _remove_other_samples(out: Path, keep: set[str]) -> None:
    """Delete the synthetic samples under `out` whose ids are not in `keep`."""
    for name in IMAGE_FOLDERS:
        for path in (out / name).iterdir():
            if SAMPLE_NAME.fullmatch(path.name) and path.stem not in keep:
                path.unlink()


def _write_sample(out: Path, size, seed: int, job) -> None:
    split, j = job
    image_id = f"{split}_{j:06d}"
    image, labels, objects = render_scene(np.random.default_rng([seed, SPLIT_STREAMS[split], j]), size)
    save_atomic(Image.fromarray(image), out / "JPEGImages" / f"{image_id}.jpg", quality=JPEG_QUALITY)
    save_label_png(out / "SegmentationClass" / f"{image_id}.png", labels)
    save_label_png(out / "SegmentationObject" / f"{image_id}.png", objects)
