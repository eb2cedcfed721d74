"""Turn (image, label) pairs into normalised tensors, with random scale, crop and flip for training.

Randomness comes from torch's global generator: `torch.manual_seed` makes a run repeatable, and
DataLoader seeds it differently in every worker, so workers do not repeat each other's crops.
"""

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VOID = 255


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 H×W×3, got {image.dtype} of shape {image.shape}")
    return image


def _check_pair(image, label) -> tuple[np.ndarray, np.ndarray]:
    image, label = _check_image(image), np.asarray(label)
    if label.shape != image.shape[:2]:
        raise ValueError(f"label shape {label.shape} differs from the image's H×W {image.shape[:2]}")
    if not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f"label must hold integers, got dtype {label.dtype}")
    if label.size and (label.min() < 0 or label.max() > VOID):
        raise ValueError(f"label values must be in 0..{VOID}, got {label.min()}..{label.max()}")
    return image, label


def _check_stats(mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.as_tensor(mean, dtype=torch.float32)
    std = torch.as_tensor(std, dtype=torch.float32)
    if mean.shape != (3,) or std.shape != (3,) or bool((std <= 0).any()):
        raise ValueError(f"mean and std must be 3 RGB values (std > 0), got {mean.tolist()} and {std.tolist()}")
    return mean.view(3, 1, 1), std.view(3, 1, 1)


def _normalize(image: np.ndarray, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)).div_(255.0)
    return pixels.sub_(mean).div_(std)


def normalize_image(image, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """A uint8 H×W×3 RGB image as the float32 1×3×H×W batch a model takes."""
    return _normalize(_check_image(image), *_check_stats(mean, std)).unsqueeze(0)


class EvalTransform:
    """Normalise only: (uint8 H×W×3, H×W) -> (float32 3×H×W, int64 H×W)."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.mean, self.std = _check_stats(mean, std)

    def __call__(self, image, label):
        image, label = _check_pair(image, label)
        return _normalize(image, self.mean, self.std), torch.from_numpy(label.astype(np.int64))


class TrainTransform:
    """Random scale (image bilinear, label nearest), random crop, horizontal flip, normalisation.

    Where the scaled image is smaller than the crop it is padded on the bottom and right: labels
    with void (255), images with the mean colour, which is 0 after normalisation.
    """

    def __init__(self, crop_size, scale_range=(0.5, 2.0), flip=True, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        crop = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
        if len(crop) != 2 or not all(isinstance(c, int) and c > 0 for c in crop):
            raise ValueError(f"crop_size must be a positive int or (height, width), got {crop_size!r}")
        low, high = tuple(scale_range) if len(scale_range) == 2 else (0, 0)
        if not 0 < low <= high:
            raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range!r}")
        self.crop_size = crop
        self.scale_range = (float(low), float(high))
        self.flip = flip
        self.mean, self.std = _check_stats(mean, std)

    def __call__(self, image, label):
        image, label = self._scale(*_check_pair(image, label))
        pixels = _normalize(image, self.mean, self.std)
        target = torch.from_numpy(label.astype(np.int64))
        crop_h, crop_w = self.crop_size
        pad_h, pad_w = max(crop_h - target.shape[0], 0), max(crop_w - target.shape[1], 0)
        if pad_h or pad_w:
            pixels = torch.nn.functional.pad(pixels, (0, pad_w, 0, pad_h), value=0.0)
            target = torch.nn.functional.pad(target, (0, pad_w, 0, pad_h), value=VOID)
        top = int(torch.randint(target.shape[0] - crop_h + 1, ()))
        left = int(torch.randint(target.shape[1] - crop_w + 1, ()))
        pixels = pixels[:, top:top + crop_h, left:left + crop_w]
        target = target[top:top + crop_h, left:left + crop_w]
        if self.flip and bool(torch.rand(()) < 0.5):
            pixels, target = pixels.flip(-1), target.flip(-1)
        return pixels.contiguous(), target.contiguous()

    def _scale(self, image: np.ndarray, label: np.ndarray):
        low, high = self.scale_range
        scale = low + (high - low) * float(torch.rand(()))
        height, width = label.shape
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if size == (width, height):
            return image, label
        image = Image.fromarray(image).resize(size, Image.Resampling.BILINEAR)
        label = Image.fromarray(label.astype(np.uint8)).resize(size, Image.Resampling.NEAREST)
        return np.asarray(image), np.asarray(label)
