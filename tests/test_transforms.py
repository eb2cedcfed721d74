import numpy as np
import pytest
import torch

from pixseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform, TrainTransform, normalize_image

MEAN_COLOUR = np.round(np.array(IMAGENET_MEAN) * 255).astype(np.uint8)


def gradient_pair(height=30, width=40):
    """An image whose red channel encodes the column and a label that encodes it the same way."""
    columns = np.arange(width) * (250 // width)
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = columns
    image[..., 1] = np.arange(height)[:, None] * 3
    label = np.broadcast_to((np.arange(width) % 21).astype(np.uint8), (height, width)).copy()
    return image, label


def denormalize(pixels: torch.Tensor) -> np.ndarray:
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((pixels * std + mean) * 255).round().permute(1, 2, 0).numpy()


def test_eval_transform_normalises_and_keeps_labels():
    image, label = gradient_pair()
    image[:5, :5] = MEAN_COLOUR
    pixels, target = EvalTransform()(image, label)
    assert pixels.dtype == torch.float32 and pixels.shape == (3, 30, 40)
    assert target.dtype == torch.int64
    np.testing.assert_array_equal(target.numpy(), label)
    assert pixels[:, :5, :5].abs().max() < 0.01
    np.testing.assert_allclose(denormalize(pixels), image, atol=1e-3)


def test_normalize_image_matches_eval_transform():
    image, label = gradient_pair()
    batch = normalize_image(image)
    assert batch.shape == (1, 3, 30, 40) and batch.dtype == torch.float32
    torch.testing.assert_close(batch[0], EvalTransform()(image, label)[0])


@pytest.mark.parametrize("crop", [16, (20, 28)])
def test_train_transform_crop_size(crop):
    torch.manual_seed(0)
    image, label = gradient_pair()
    pixels, target = TrainTransform(crop)(image, label)
    size = (crop, crop) if isinstance(crop, int) else crop
    assert pixels.shape == (3, *size) and target.shape == size
    assert pixels.dtype == torch.float32 and target.dtype == torch.int64


def test_padding_is_void_and_mean_colour():
    torch.manual_seed(0)
    image, label = gradient_pair(10, 12)
    pixels, target = TrainTransform((16, 20), scale_range=(1.0, 1.0), flip=False)(image, label)
    assert (target[10:, :] == 255).all() and (target[:, 12:] == 255).all()
    assert (pixels[:, 10:, :] == 0).all() and (pixels[:, :, 12:] == 0).all()
    np.testing.assert_array_equal(target[:10, :12].numpy(), label)
    np.testing.assert_allclose(denormalize(pixels[:, :10, :12]), image, atol=1e-3)


def test_flip_moves_image_and_label_together():
    image, label = gradient_pair()
    transform = TrainTransform((30, 40), scale_range=(1.0, 1.0), flip=True)
    flipped = 0
    for seed in range(12):
        torch.manual_seed(seed)
        pixels, target = transform(image, label)
        columns = denormalize(pixels)[0, :, 0] // (250 // 40)
        np.testing.assert_array_equal(target[0].numpy(), columns.astype(np.int64) % 21)
        flipped += bool(columns[0] == 39)
    assert 0 < flipped < 12  # both outcomes happen


def test_scaling_keeps_labels_in_the_valid_set():
    rng = np.random.default_rng(0)
    label = rng.choice([0, 3, 17, 255], size=(33, 47)).astype(np.uint8)
    image = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    transform = TrainTransform(24, scale_range=(0.5, 2.0))
    for seed in range(6):
        torch.manual_seed(seed)
        _, target = transform(image, label)
        assert set(target.unique().tolist()) <= {0, 3, 17, 255}


def test_scale_resizes_before_padding():
    image, label = np.zeros((33, 47, 3), np.uint8), np.ones((33, 47), np.int64)
    torch.manual_seed(0)
    _, target = TrainTransform(100, scale_range=(1.7, 1.7), flip=False)(image, label)
    assert (target == 1).sum(0).max() == round(33 * 1.7) and (target == 1).sum(1).max() == round(47 * 1.7)


def test_same_seed_same_sample():
    image, label = gradient_pair()
    transform = TrainTransform(16)
    torch.manual_seed(5)
    first = transform(image, label)
    torch.manual_seed(5)
    second = transform(image, label)
    torch.manual_seed(6)
    third = transform(image, label)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], third[0])


@pytest.mark.parametrize("image, label, message", [
    (np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8), "uint8"),
    (np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), r"\(4, 4\)"),
    (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8), r"\(4, 5\)"),
    (np.zeros((4, 4, 3), np.uint8), np.full((4, 4), 300), "300"),
    (np.zeros((4, 4, 3), np.uint8), np.full((4, 4), 1.5), "float64"),
])
def test_bad_pairs_rejected(image, label, message):
    for transform in (EvalTransform(), TrainTransform(4)):
        with pytest.raises(ValueError, match=message):
            transform(image, label)


@pytest.mark.parametrize("kwargs, message", [
    ({"crop_size": 0}, "crop_size"),
    ({"crop_size": (4, 4, 4)}, "crop_size"),
    ({"crop_size": 8, "scale_range": (2.0, 1.0)}, "scale_range"),
    ({"crop_size": 8, "scale_range": (0.5, 1.0, 2.0)}, "scale_range"),
    ({"crop_size": 8, "std": (0.2, 0.0, 0.2)}, "std"),
])
def test_bad_settings_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainTransform(**kwargs)
