import numba
import numpy as np
import pytest
import torch
from torch.func import functional_call

from pixseg.crf import CRFasRNN, crfrnn, dense_crf
from pixseg.crf.crfrnn import LatticeFilter, _ExactKernel, _NumbaKernel, _TorchKernel
from pixseg.crf.features import appearance_features, smoothness_features

PARAMETERS = ("appearance_weights", "smoothness_weights", "compatibility")


def scene(height, width, classes, batch=1, seed=0, noise=1.5):
    """Images of two flat-coloured rectangles on a background, with noisy logits favouring the
    true label: what the CRF is meant to clean up."""
    rng = np.random.default_rng(seed)
    images = np.empty((batch, 3, height, width), np.uint8)
    logits = np.empty((batch, classes, height, width), np.float32)
    for n in range(batch):
        labels = np.zeros((height, width), np.int64)
        colours = rng.integers(0, 256, (classes, 3))
        for label in (1, 2):
            y, x = rng.integers(0, height // 2), rng.integers(0, width // 2)
            labels[y:y + height // 2, x:x + width // 2] = label % classes
        picture = colours[labels] + rng.normal(0, 8, (height, width, 3))
        images[n] = np.clip(picture, 0, 255).astype(np.uint8).transpose(2, 0, 1)
        logits[n] = rng.normal(0, noise, (classes, height, width)) + 2.0 * np.eye(classes)[labels].transpose(2, 0, 1)
    return torch.from_numpy(logits), torch.from_numpy(images)


def test_gradcheck_through_the_exact_filter():
    logits, images = scene(5, 6, 3)
    layer = CRFasRNN(3, iterations=2, appearance=(2.0, 4.0, 20.0), smoothness=(1.0, 2.0), backend="exact")
    params = tuple(getattr(layer, name).detach().double().requires_grad_() for name in PARAMETERS)
    torch.manual_seed(0)
    params = tuple((p + 0.1 * torch.randn_like(p)).detach().requires_grad_() for p in params)

    def run(logits, *params):
        return functional_call(layer, dict(zip(PARAMETERS, params)), (logits, images))

    assert torch.autograd.gradcheck(run, (logits.double().requires_grad_(), *params), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("kernel_class", [_NumbaKernel, _TorchKernel])
def test_lattice_backward_is_the_transpose_of_its_forward(kernel_class):
    """<K x, y> = <x, K^T y>: the reversed blur is the exact transpose of the lattice filter, not
    only of the Gaussian it approximates."""
    _, images = scene(20, 30, 2)
    features = appearance_features(images[0].permute(1, 2, 0).numpy(), 5.0, 10.0)
    kernel = kernel_class(features if kernel_class is _NumbaKernel else torch.from_numpy(features))
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(600, 4, generator=generator), torch.randn(600, 4, generator=generator)
    forward = (kernel(x, transpose=False) * y).sum()
    backward = (x * kernel(y, transpose=True)).sum()
    assert abs(float(forward) - float(backward)) <= 1e-5 * float(forward.abs() + 1)
    # And the plain forward is not symmetric by itself, so the test can tell the two apart.
    assert abs(float(forward) - float((x * kernel(y, transpose=False)).sum())) > 1e-4


def gradients(backend, logits, images, iterations=3):
    layer = CRFasRNN(logits.shape[1], iterations, appearance=(3.0, 6.0, 15.0), smoothness=(2.0, 2.0),
                     backend=backend).double()
    logits = logits.double().requires_grad_()
    target = torch.arange(logits.shape[1], dtype=torch.float64)[None, :, None, None]
    (layer(logits, images) * target).sum().backward()
    return [logits.grad] + [getattr(layer, name).grad for name in PARAMETERS]


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_lattice_gradients_match_the_exact_layer(backend):
    """The lattice approximates the Gaussian, so gradients agree to its accuracy, not to rounding:
    relative L2 error at most 6% for the logits' gradient (measured 2.4 to 3.0% on three scenes)
    and 2% for the parameters' (measured 0.3 to 0.7%)."""
    logits, images = scene(16, 20, 3)
    lattice, exact = gradients(backend, logits, images), gradients("exact", logits, images)
    assert torch.linalg.norm(lattice[0] - exact[0]) <= 0.06 * torch.linalg.norm(exact[0])
    for ours, truth in zip(lattice[1:], exact[1:]):
        assert torch.linalg.norm(ours - truth) <= 0.02 * torch.linalg.norm(truth)


def test_fused_numba_steps_equal_autograd_through_the_same_lattices():
    """The numba backend's hand-written backward (`_FusedMeanField`, a batch of two on two worker
    threads where numba's pool has two) against autograd through the per-operation loop on the same
    lattices: equal up to float32 rounding, at perturbed parameters and with a loss that weights the
    labels differently."""
    logits, images = scene(16, 20, 3, batch=2, seed=4)
    layer = CRFasRNN(3, iterations=3, appearance=(3.0, 6.0, 15.0), smoothness=(2.0, 2.0), backend="numba",
                     threads=min(2, numba.config.NUMBA_NUM_THREADS))
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(2)))

    def gradients(refine):
        layer.zero_grad()
        inputs = logits.clone().requires_grad_()
        out = refine(inputs)
        (out * torch.arange(3.0)[None, :, None, None]).square().sum().backward()
        return [out.detach(), inputs.grad] + [getattr(layer, name).grad.clone() for name in PARAMETERS]

    def autograd_loop(inputs):
        parameters = [getattr(layer, name) for name in PARAMETERS]
        smoothness = _NumbaKernel(smoothness_features(16, 20, 2.0))
        return torch.stack([crfrnn._mean_field(inputs[n].flatten(1).T,
                                               [_NumbaKernel(layer._appearance_features(images[n])), smoothness],
                                               parameters, 3).T.reshape(3, 16, 20) for n in range(2)])

    for ours, autograd in zip(gradients(lambda inputs: layer(inputs, images)), gradients(autograd_loop)):
        assert torch.linalg.norm(ours - autograd) <= 1e-5 * torch.linalg.norm(autograd)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_initial_labels_equal_dense_crf(backend):
    logits, images = scene(60, 80, 5, seed=3)
    layer = CRFasRNN(5, iterations=5, appearance=(5.0, 30.0, 10.0), smoothness=(3.0, 3.0),
                     eval_iterations=10, backend=backend).eval()
    with torch.no_grad():
        labels = layer(logits, images).argmax(1)[0].numpy()
    expected, _ = dense_crf(images[0].permute(1, 2, 0).numpy(), torch.softmax(logits[0], 0).numpy(),
                            iterations=10, appearance=(5.0, 30.0, 10.0), smoothness=(3.0, 3.0))
    assert (labels == expected).mean() >= 0.999
    # The CRF changed the labels, so agreement is not just the logits' argmax twice.
    assert (expected != logits[0].argmax(0).numpy()).mean() > 0.05


def test_batch_equals_images_one_at_a_time_and_eval_count():
    logits, images = scene(12, 14, 4, batch=3, seed=5)
    layer = CRFasRNN(4, iterations=2, eval_iterations=4)
    together = layer(logits, images)
    alone = torch.cat([layer(logits[i:i + 1], images[i:i + 1]) for i in range(3)])
    assert torch.equal(together, alone)
    layer.eval()
    assert not torch.allclose(layer(logits, images), together)
    assert torch.equal(CRFasRNN(4, iterations=4)(logits, images), layer(logits, images))
    assert torch.equal(CRFasRNN(4, iterations=0)(logits, images), logits)


def test_float_images_and_what_learns():
    logits, images = scene(10, 12, 3, seed=2)
    layer = CRFasRNN(3, iterations=2, learn=("compatibility",))
    floats = images.float().requires_grad_()
    out = layer(logits, floats)
    assert torch.equal(out, layer(logits, images))
    out.sum().backward()
    assert floats.grad is None
    assert layer.compatibility.grad is not None and layer.appearance_weights.grad is None
    assert torch.equal(layer.compatibility, 1 - torch.eye(3))
    assert torch.equal(layer.appearance_weights, 5 * torch.eye(3))
    assert not any(p.requires_grad for p in CRFasRNN(3, learn=False).parameters())


def test_no_tensor_saved_per_blur_step():
    """The filter's graph node keeps the lattice, not the values it filtered."""
    logits, images = scene(8, 8, 2)
    kernel = _ExactKernel(appearance_features(images[0].permute(1, 2, 0).numpy(), 3.0, 10.0))
    out = LatticeFilter.apply(torch.rand(64, 2, requires_grad=True), kernel)
    assert out.grad_fn.saved_tensors == ()


@pytest.mark.parametrize("change, message", [
    (lambda l, i: (l, i[:, :, :-1]), "images are 7 x 10 but logits 8 x 10"),
    (lambda l, i: (l, i[:1]), "got 2 logit maps but 1 images"),
    (lambda l, i: (l.index_put((torch.tensor(1), torch.tensor(2), torch.tensor(3), torch.tensor(4)),
                               torch.tensor(float("nan"))), i), "1 non-finite values .first: image 1, label 2, row 3"),
    (lambda l, i: (l[:, :2], i), "logits have 2 channels; expected 3"),
    (lambda l, i: (l, i.float() + 300), "values in 0..255"),
    (lambda l, i: (l, i[:, :1]), "N x 3 x H x W"),
    (lambda l, i: (l[0], i), "N x C x H x W"),
])
def test_bad_input_errors(change, message):
    logits, images = scene(8, 10, 3, batch=2)
    with pytest.raises(ValueError, match=message):
        CRFasRNN(3, iterations=1)(*change(logits, images))


def test_bad_settings():
    with pytest.raises(ValueError, match="learn: unknown"):
        CRFasRNN(3, learn=("unary",))
    with pytest.raises(ValueError, match="smoothness"):
        CRFasRNN(3, smoothness=(3.0, 0.0))
    with pytest.raises(ValueError, match="iterations"):
        CRFasRNN(3, eval_iterations=-1)
    with pytest.raises(ValueError, match="backend"):
        CRFasRNN(3, backend="cuda")
