"""dense_crf: the CRF cleans up noisy maps, both backends agree, and every bad input is caught."""

import numpy as np
import pytest
import torch
from PIL import Image

from pixseg.cli import main
from pixseg.crf import CRF_PRESETS, DEFAULT_PRESET, dense_crf, dense_crf_batch
from pixseg.data.palette import read_label_png

HEIGHT, WIDTH = 48, 64


def scene(seed=0):
    """Background, a rectangle, a disc and a triangle in distinct colours with pixel noise:
    (uint8 image, labels 0..3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:HEIGHT, :WIDTH]
    labels = np.zeros((HEIGHT, WIDTH), np.uint8)
    labels[8:26, 6:28] = 1
    labels[(y - 30) ** 2 + (x - 44) ** 2 <= 144] = 2
    labels[(y >= 28) & (y <= 44) & (x >= 6) & (x <= 6 + (y - 28) * 1.2)] = 3
    colours = np.array([[120, 120, 120], [200, 40, 40], [40, 180, 60], [50, 60, 200]])
    image = (colours[labels] + rng.normal(0, 8, (HEIGHT, WIDTH, 3))).clip(0, 255).astype(np.uint8)
    return image, labels


def noisy_probs(labels, channels, seed=0, signal=1.5, noise=1.2):
    """Softmax of one-hot logits plus heavy Gaussian noise: many pixels' argmax is wrong."""
    rng = np.random.default_rng(seed)
    logits = signal * (np.arange(channels)[:, None, None] == labels) + rng.normal(0, noise, (channels,) + labels.shape)
    probs = np.exp(logits - logits.max(0))
    return (probs / probs.sum(0)).astype(np.float32)


def random_inputs(channels, seed=0, height=HEIGHT, width=WIDTH):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    probs = rng.random((channels, height, width)).astype(np.float32) ** 3 + 1e-3
    return image, (probs / probs.sum(0)).astype(np.float32)


def mean_iou(prediction, labels, channels):
    ious = [((prediction == c) & (labels == c)).sum() / ((prediction == c) | (labels == c)).sum()
            for c in range(channels) if ((prediction == c) | (labels == c)).any()]
    return float(np.mean(ious))


@pytest.mark.parametrize("channels", [2, 4])
def test_crf_raises_iou_on_noisy_shapes(channels):
    image, labels = scene()
    labels = labels if channels == 4 else (labels > 0).astype(np.uint8)
    probs = noisy_probs(labels, channels)
    before = mean_iou(probs.argmax(0), labels, channels)
    refined, q = dense_crf(image, probs)
    after = mean_iou(refined, labels, channels)
    assert before < 0.7 and after > 0.9 and after > before + 0.25, (before, after)
    assert refined.dtype == np.uint8 and refined.shape == (HEIGHT, WIDTH)
    assert q.dtype == np.float32 and q.shape == (channels, HEIGHT, WIDTH)
    np.testing.assert_allclose(q.sum(0), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(refined, q.argmax(0))


@pytest.mark.parametrize("channels", [2, 21])
def test_torch_backend_agrees_with_numba(channels):
    for image, probs in (random_inputs(channels), (scene()[0], noisy_probs(scene()[1] % channels, channels))):
        numba_labels, numba_q = dense_crf(image, probs, backend="numba")
        torch_labels, torch_q = dense_crf(image, probs, backend="torch")
        assert isinstance(torch_labels, np.ndarray) and torch_labels.dtype == np.uint8
        assert (numba_labels == torch_labels).mean() >= 0.999
        assert np.abs(numba_q - torch_q).max() < 1e-3


@pytest.mark.parametrize("options", [{"appearance": (0.0, 67.0, 3.0)}, {"smoothness": (0.0, 1.0)},
                                     {"compat": "random"}])
def test_torch_backend_agrees_with_numba_on_each_kernel_alone_and_with_a_matrix(options):
    """The numba backend filters the smoothness kernel on its grid lattice (alone, or beside the
    merged appearance kernel), the torch backend on the general lattice: the same CRF."""
    image, labels = scene()
    probs = noisy_probs(labels % 3, 3)
    if options.get("compat") == "random":
        matrix = np.random.default_rng(0).uniform(0.5, 2.0, (3, 3))
        options = {"compat": (matrix + matrix.T) * (1 - np.eye(3))}
    numba_labels, numba_q = dense_crf(image, probs, backend="numba", **options)
    torch_labels, torch_q = dense_crf(image, probs, backend="torch", **options)
    assert (numba_labels == torch_labels).mean() >= 0.999
    assert np.abs(numba_q - torch_q).max() < 1e-3


def test_tensor_inputs_give_tensors():
    image, probs = random_inputs(3)
    labels, q = dense_crf(torch.from_numpy(image), torch.from_numpy(probs))
    assert isinstance(labels, torch.Tensor) and isinstance(q, torch.Tensor)
    expected, _ = dense_crf(image, probs)
    np.testing.assert_array_equal(labels.numpy(), expected)
    labels, q = dense_crf(image, torch.from_numpy(probs), backend="torch", device="cpu")
    assert labels.dtype == torch.uint8 and q.device.type == "cpu"


def test_zero_iterations_return_the_unary_argmax_and_softmax():
    image, probs = random_inputs(5)
    labels, q = dense_crf(image, probs, iterations=0)
    np.testing.assert_array_equal(labels, probs.argmax(0))
    np.testing.assert_allclose(q, probs, rtol=1e-5)
    unary = np.random.default_rng(3).normal(size=(5, HEIGHT, WIDTH)).astype(np.float32)
    labels, q = dense_crf(image, None, unary=unary, iterations=0)
    softmax = np.exp(-unary) / np.exp(-unary).sum(0)
    np.testing.assert_array_equal(labels, (-unary).argmax(0))
    np.testing.assert_allclose(q, softmax, rtol=1e-5, atol=1e-7)


def test_zero_weights_drop_the_kernels():
    image, probs = random_inputs(3)
    labels, q = dense_crf(image, probs, appearance=(0, 80, 13), smoothness=(0, 3))
    np.testing.assert_array_equal(labels, probs.argmax(0))
    only_smoothness, _ = dense_crf(image, probs, appearance=(0, 80, 13), smoothness=(3, 3))
    assert (only_smoothness != labels).any()


def test_unary_replaces_log_probs():
    image, probs = random_inputs(4)
    from_probs = dense_crf(image, probs)
    from_unary = dense_crf(image, None, unary=-np.log(probs))
    np.testing.assert_array_equal(from_probs[0], from_unary[0])
    np.testing.assert_allclose(from_probs[1], from_unary[1], atol=1e-5)
    # An infinite energy rules a label out everywhere it is set.
    unary = -np.log(probs)
    unary[1, :, : WIDTH // 2] = np.inf
    labels, q = dense_crf(image, None, unary=unary)
    assert (labels[:, : WIDTH // 2] != 1).all() and (q[1, :, : WIDTH // 2] == 0).all()


def test_potts_equals_the_matrix_one_minus_identity():
    image, probs = random_inputs(4)
    potts = dense_crf(image, probs)
    matrix = dense_crf(image, probs, compat=1 - np.eye(4))
    np.testing.assert_array_equal(potts[0], matrix[0])
    np.testing.assert_allclose(potts[1], matrix[1], atol=1e-3)  # float32: the matrix form adds sum_l msg_l
    # A matrix that makes labels 0 and 1 compatible lets them mix freely.
    compat = 1 - np.eye(4)
    compat[0, 1] = compat[1, 0] = 0
    assert (dense_crf(image, probs, compat=compat)[0] != potts[0]).any()


def test_grayscale_and_rgba_images_are_converted():
    image, probs = random_inputs(3)
    gray = image[:, :, 0]
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    expected = dense_crf(rgb, probs)[0]
    np.testing.assert_array_equal(dense_crf(gray, probs)[0], expected)
    np.testing.assert_array_equal(dense_crf(gray[:, :, None], probs)[0], expected)
    rgba = np.concatenate([rgb, np.full((HEIGHT, WIDTH, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(dense_crf(rgba, probs)[0], expected)


def test_labels_beyond_uint8_use_int32():
    image, probs = random_inputs(300, height=8, width=10)
    labels, q = dense_crf(image, probs, iterations=1)
    assert labels.dtype == np.int32 and q.shape == (300, 8, 10)


BAD_CALLS = {
    "probs shape": (lambda image, probs: dense_crf(image, probs[:, :-1]), "expected C x 48 x 64"),
    "probs HxWxC": (lambda image, probs: dense_crf(image, probs.transpose(1, 2, 0)), "transpose it to C x H x W"),
    "probs 2-D": (lambda image, probs: dense_crf(image, probs[0]), "expected C x 48 x 64"),
    "probs NaN": (lambda image, probs: dense_crf(image, np.where(probs == probs.max(), np.nan, probs)), "1 NaN"),
    "probs negative": (lambda image, probs: dense_crf(image, probs - 0.01), "negative values"),
    "probs not summing to 1": (lambda image, probs: dense_crf(image, probs * 1.01), "must sum to 1"),
    "probs integer": (lambda image, probs: dense_crf(image, (probs > 0.5).astype(np.int64)), "dtype int64"),
    "no probs": (lambda image, probs: dense_crf(image, None), "give probs"),
    "image float": (lambda image, probs: dense_crf(image / 255.0, probs), "dtype float64; expected uint8"),
    "image channels": (lambda image, probs: dense_crf(image[:, :, :2], probs), "expected H x W x 3"),
    "image size": (lambda image, probs: dense_crf(image[:-1], probs), "expected C x 47 x 64"),
    "unary NaN": (lambda image, probs: dense_crf(image, None, unary=np.full_like(probs, np.nan)), "NaN"),
    "unary -inf": (lambda image, probs: dense_crf(image, None, unary=np.full_like(probs, -np.inf)), "-inf"),
    "unary all +inf": (lambda image, probs: dense_crf(image, None, unary=np.full_like(probs, np.inf)),
                       "every label"),
    "iterations negative": (lambda image, probs: dense_crf(image, probs, iterations=-1), "iterations"),
    "iterations float": (lambda image, probs: dense_crf(image, probs, iterations=2.5), "iterations"),
    "appearance length": (lambda image, probs: dense_crf(image, probs, appearance=(4, 67)), "appearance"),
    "theta zero": (lambda image, probs: dense_crf(image, probs, smoothness=(3, 0)), "bandwidths > 0"),
    "compat shape": (lambda image, probs: dense_crf(image, probs, compat=np.ones((2, 2))), "expected 3 x 3"),
    "compat asymmetric": (lambda image, probs: dense_crf(image, probs, compat=np.triu(np.ones((3, 3)))),
                          "symmetric"),
    "backend": (lambda image, probs: dense_crf(image, probs, backend="cuda"), "backend"),
    "device with numba": (lambda image, probs: dense_crf(image, probs, backend="numba", device="cpu"), "torch"),
}


@pytest.mark.parametrize("case", BAD_CALLS)
def test_bad_input_gives_a_clear_error(case):
    image, probs = random_inputs(3)
    call, message = BAD_CALLS[case]
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(image, probs)


def test_tensor_probs_are_checked_too():
    image, probs = random_inputs(3)
    with pytest.raises(ValueError, match="must sum to 1"):
        dense_crf(image, torch.from_numpy(probs * 2))
    with pytest.raises(ValueError, match="NaN"):
        dense_crf(image, torch.full((3, HEIGHT, WIDTH), float("nan")), backend="torch")


def test_batch_matches_single_calls_and_names_the_bad_item():
    inputs = [random_inputs(3, seed) for seed in range(3)]
    images, probs = [i for i, _ in inputs], [p for _, p in inputs]
    results = dense_crf_batch(images, probs, iterations=3)
    for (image, p), (labels, q) in zip(inputs, results):
        np.testing.assert_array_equal(labels, dense_crf(image, p, iterations=3)[0])
    with pytest.raises(ValueError, match="batch item 1: probs must sum to 1"):
        dense_crf_batch(images, [probs[0], probs[1] * 2, probs[2]])
    with pytest.raises(ValueError, match="3 images but 2 probability maps"):
        dense_crf_batch(images, probs[:2])


def test_presets_are_keyword_arguments_and_the_default_is_deeplab_v2():
    assert DEFAULT_PRESET == "deeplab_v2"
    assert CRF_PRESETS["deeplab_v2"] == {"appearance": (4.0, 67.0, 3.0), "smoothness": (3.0, 1.0)}
    assert CRF_PRESETS["reference"] == {"appearance": (10.0, 80.0, 13.0), "smoothness": (3.0, 3.0)}
    image, probs = random_inputs(3)
    np.testing.assert_array_equal(dense_crf(image, probs)[0], dense_crf(image, probs, **CRF_PRESETS["deeplab_v2"])[0])
    assert (dense_crf(image, probs, **CRF_PRESETS["reference"])[0] != dense_crf(image, probs)[0]).any()


def test_cli_writes_a_palette_png_and_q(tmp_path, capsys):
    image, labels = scene()
    probs = noisy_probs(labels, 4)
    Image.fromarray(image).save(tmp_path / "image.png")
    np.save(tmp_path / "probs.npy", probs)
    out, q_path = tmp_path / "labels.png", tmp_path / "q.npy"
    assert main(["crf", "--image", str(tmp_path / "image.png"), "--probs", str(tmp_path / "probs.npy"),
                 "--out", str(out), "--save-q", str(q_path), "--iterations", "5"]) == 0
    expected_labels, expected_q = dense_crf(image, probs, iterations=5)
    np.testing.assert_array_equal(read_label_png(out), expected_labels)
    np.testing.assert_array_equal(np.load(q_path), expected_q)
    with Image.open(out) as written:
        assert written.mode == "P"
    assert main(["crf", "--image", str(tmp_path / "image.png"), "--probs", str(tmp_path / "probs.npy"),
                 "--out", str(out), "--preset", "reference", "--smoothness", "5", "2"]) == 0
    assert "smoothness (5.0, 2.0)" in capsys.readouterr().out


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    image, labels = scene()
    Image.fromarray(image).save(tmp_path / "image.png")
    np.save(tmp_path / "probs.npy", noisy_probs(labels, 4) * 2)
    assert main(["crf", "--image", str(tmp_path / "image.png"), "--probs", str(tmp_path / "probs.npy"),
                 "--out", str(tmp_path / "labels.png")]) == 2
    error = capsys.readouterr().err
    assert "probs.npy" in error and "must sum to 1" in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "labels.png").exists()
    assert main(["crf", "--image", str(tmp_path / "missing.png"), "--probs", str(tmp_path / "probs.npy"),
                 "--out", str(tmp_path / "labels.png")]) == 2
    (tmp_path / "junk.npy").write_text("not numpy")
    assert main(["crf", "--image", str(tmp_path / "image.png"), "--unary", str(tmp_path / "junk.npy"),
                 "--out", str(tmp_path / "labels.png")]) == 2
    assert "junk.npy is not a readable .npy array" in capsys.readouterr().err


@pytest.mark.parametrize("shares", [1, 3])
@pytest.mark.parametrize("preset", ["reference", "deeplab_v2"])
def test_splat_fused_into_the_pixel_pass_matches_the_separate_splat(monkeypatch, shares, preset):
    """Small lattices splat inside the pixel pass (in `shares` ranges of pixels), large ones with a
    separate gather: both give the same Q. Forced here, since the choice depends on the lattice
    size and the thread count. DeepLab v2's narrow smoothness kernel is on the grid lattice, which
    reads Q stored by the fused pass."""
    from pixseg.crf import meanfield

    image, labels = scene()
    probs = noisy_probs(labels, 4)
    options = {"iterations": 5, **CRF_PRESETS[preset]}
    monkeypatch.setattr(meanfield, "splat_shares", lambda points, vertices: 0)
    separate = dense_crf(image, probs, **options)
    monkeypatch.setattr(meanfield, "splat_shares", lambda points, vertices: shares)
    fused = dense_crf(image, probs, **options)
    np.testing.assert_allclose(fused[1], separate[1], atol=1e-5)
    assert (fused[0] == separate[0]).mean() > 0.999
