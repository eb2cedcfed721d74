"""POS cache: keyed by pixels and options, written once, recomputed when damaged, filled in parallel."""

import numpy as np
import pytest
from PIL import Image

import pixseg.objectness.cache as cache
from pixseg.objectness import pixel_objectness

OPTIONS = {"n_superpixels": 60}


def picture(seed=0, size=48):
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), (60, 110, 160), np.uint8)
    image[10:30, 15:40] = (220, 200, 40)
    return np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)


def test_cached_map_equals_the_computed_one_and_is_read_back(tmp_path, monkeypatch):
    image = picture()
    pos = cache.cached_pixel_objectness(image, tmp_path, **OPTIONS)
    np.testing.assert_array_equal(pos, pixel_objectness(image, **OPTIONS))
    assert len(list(tmp_path.glob("*.npy"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(cache, "pixel_objectness", fail)
    np.testing.assert_array_equal(cache.cached_pixel_objectness(image, tmp_path, **OPTIONS), pos)


def test_key_follows_pixels_and_options_but_not_alpha():
    image = picture()
    rgba = np.concatenate([image, np.zeros(image.shape[:2] + (1,), np.uint8)], axis=2)
    assert cache.cache_key(image, OPTIONS) == cache.cache_key(rgba, OPTIONS)
    assert cache.cache_key(image, OPTIONS) != cache.cache_key(picture(seed=1), OPTIONS)
    assert cache.cache_key(image, OPTIONS) != cache.cache_key(image, {"n_superpixels": 61})
    boundaries = np.zeros((48, 48), np.float32)
    changed = boundaries.copy()
    changed[0, 0] = 1
    assert cache.cache_key(image, {"boundaries": boundaries}) != cache.cache_key(image, {"boundaries": changed})
    with pytest.raises(ValueError, match="cache key"):
        cache.cache_key(image, {"callback": print})


def test_damaged_cache_file_is_recomputed(tmp_path):
    image = picture()
    path = cache.cache_path(image, tmp_path, **OPTIONS)
    path.write_bytes(b"not an array")
    pos = cache.cached_pixel_objectness(image, tmp_path, **OPTIONS)
    np.testing.assert_array_equal(np.load(path), pos)


@pytest.mark.parametrize("workers", [1, 2])
def test_precompute_fills_the_cache_for_paths_and_datasets(tmp_path, workers):
    paths = []
    for seed in range(3):
        paths.append(tmp_path / f"image{seed}.png")
        Image.fromarray(picture(seed)).save(paths[-1])
    files = cache.precompute(paths, tmp_path / "cache", workers=workers, progress=False, **OPTIONS)
    for path, file in zip(paths, files):
        expected = cache.cached_pixel_objectness(np.asarray(Image.open(path)), tmp_path / "cache", **OPTIONS)
        np.testing.assert_array_equal(np.load(file), expected)

    class Dataset:
        def __len__(self):
            return len(paths)

        def image_path(self, index):
            return paths[index]

    assert cache.precompute(Dataset(), tmp_path / "cache", progress=False, **OPTIONS) == files


def test_precompute_refuses_missing_files_and_bad_worker_counts(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        cache.precompute([tmp_path / "missing.png"], tmp_path, progress=False)
    with pytest.raises(ValueError, match="workers"):
        cache.precompute([], tmp_path, workers=0)
