"""CRF as RNN (Zheng et al. 2015): mean-field inference of the dense CRF as a trainable torch layer.

One iteration, from the network's logits U (N x C x H x W): Q = softmax(current logits); filter Q
with the two normalised Gaussian kernels of `dense_crf` (appearance on position and colour,
smoothness on position); mix each kernel's output over the labels with a learned C x C weight
matrix (initialised to the kernel weight times the identity); apply the learned compatibility mu
(initialised to Potts, mu[l, l'] = [l != l'], the cost of labels l and l' at similar pixels);
new logits = U - mu(message). With the parameters at their initial values this is `dense_crf`'s
iteration with probs = softmax(U) (Potts adds the same total to every label, which softmax drops).

The Gaussian filter is linear, so its gradient is the filter's transpose applied to the incoming
gradient: splat and slice swap roles and stay the same matrices, the blur runs its axes in reverse
order (each axis's [1/2, 1, 1/2] pass is symmetric), and the diagonal normalisation is its own
transpose. `LatticeFilter` is that autograd Function: it keeps the lattice built in the forward pass
for the backward, and nothing per blur step. No gradient reaches the image.

Backends: "numba" (CPU; the lattice of `pixseg.crf.lattice`, the whole loop one autograd Function,
`_FusedMeanField`, with its backward written out, a batch's images side by side on worker
threads), "torch" (any device; `pixseg.crf.lattice_torch`), "exact" (the O(N^2) filter of
`pixseg.crf.exact` in float64, the ground truth for tests on small images; symmetric, so its
transpose is itself).
"""

import numbers
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch
from torch import nn

from pixseg.crf import crfrnn_passes
from pixseg.crf import lattice as numba_lattice
from pixseg.crf import lattice_torch
from pixseg.crf.exact import exact_filter
from pixseg.crf.features import appearance_features, smoothness_features
from pixseg.crf.inference import _check_iterations, _check_kernel
from pixseg.crf.kernels import symmetric_norm
from pixseg.jit import check_threads, numba_threads, set_openmp_threads_here

# The paper's deploy settings (its Caffe and PyTorch releases): bilateral kernel weight 5 with
# bandwidths 160 px and 3 colour levels, spatial kernel weight 3 with 3 px; 5 iterations in
# training and 10 at test.
APPEARANCE = (5.0, 160.0, 3.0)
SMOOTHNESS = (3.0, 3.0)
LEARNABLE = ("appearance", "smoothness", "compatibility")
BACKENDS = ("auto", "numba", "torch", "exact")


class LatticeFilter(torch.autograd.Function):
    """kernel(values) for N x C rows of a filter object (`_NumbaKernel`, `_TorchKernel`,
    `_ExactKernel`); the backward applies the same filter's transpose, reusing its lattice."""

    @staticmethod
    def forward(ctx, values, kernel):
        ctx.kernel = kernel
        return kernel(values, transpose=False)

    @staticmethod
    def backward(ctx, grad):
        return ctx.kernel(grad.contiguous(), transpose=True), None


class _NumbaKernel:
    """A normalised Gaussian kernel D^-1/2 K D^-1/2 on the numba lattice of N x d features; the
    splat's gather table is built once and serves every forward and backward call."""

    def __init__(self, features, threads=None):
        self.threads = threads
        lattice = numba_lattice.PermutohedralLattice(features, threads=threads)
        norm = symmetric_norm(lattice)[:, None]
        self.offsets, self.num_vertices, self.chains = lattice.offsets, lattice.num_vertices, lattice.chains
        with numba_threads(threads):
            self.table = numba_lattice.splat_table(lattice.offsets, lattice.weights * norm, lattice.num_vertices,
                                                   numba_lattice.table_parts(lattice.num_points))
        self.alpha = lattice.alpha  # the slice's weights are the splat's times alpha
        self.slice_weights = lattice.weights * (norm * lattice.alpha)

    def __call__(self, values, transpose):
        rows = np.ascontiguousarray(values.detach().cpu().numpy(), dtype=np.float32)
        vertex_values = np.empty((self.num_vertices, rows.shape[1]), np.float32)
        out = np.empty_like(rows)
        with numba_threads(self.threads):
            self.splat(rows, vertex_values)
            self.blur(vertex_values, transpose)
            numba_lattice.slice_rows(vertex_values, self.offsets, self.slice_weights, out)
        return torch.from_numpy(out).to(values.device, values.dtype)

    def splat(self, rows, vertex_values):
        """vertex_values (M x C) = the splat of N x C float32 rows."""
        numba_lattice.splat(rows, *self.table, vertex_values)

    def blur(self, vertex_values, transpose):
        """Blur M x C vertex values in place; the transpose runs the axes in reverse order."""
        vertices, bounds, axis_starts = self.chains
        if transpose:
            for axis in reversed(range(axis_starts.size - 1)):
                numba_lattice.blur(vertex_values, vertices, bounds, axis_starts[axis:axis + 2])
        else:
            numba_lattice.blur(vertex_values, vertices, bounds, axis_starts)


class _TorchKernel:
    """The same normalised kernel on `TorchLattice`, on the features' device."""

    def __init__(self, features):
        lattice = lattice_torch.TorchLattice(features)
        norm = symmetric_norm(lattice)[:, None]
        self.offsets, self.num_vertices = lattice.offsets, lattice.num_vertices
        self.neighbours = lattice.neighbours
        self.splat_weights = lattice.weights * norm
        self.slice_weights = lattice.weights * (norm * float(lattice.alpha))

    def __call__(self, values, transpose):
        rows = values.float()
        neighbours = self.neighbours.flip(0) if transpose else self.neighbours
        blurred = lattice_torch.blur(lattice_torch.splat(rows, self.offsets, self.splat_weights, self.num_vertices),
                                     neighbours, [self.num_vertices] * neighbours.shape[0])
        return lattice_torch.slice_rows(blurred, self.offsets, self.slice_weights).to(values.dtype)


class _ExactKernel:
    """D^-1/2 K D^-1/2 with the exact Gaussian K in float64 (symmetric: its own transpose)."""

    def __init__(self, features):
        self.features = np.asarray(features, np.float64)
        self.norm = 1.0 / np.sqrt(exact_filter(self.features, np.ones((1, len(self.features))))[0])

    def __call__(self, values, transpose):
        rows = values.detach().cpu().double().numpy() * self.norm[:, None]
        out = exact_filter(self.features, rows.T).T * self.norm[:, None]
        return torch.from_numpy(out).to(values.device, values.dtype)


class CRFasRNN(nn.Module):
    """Dense-CRF mean field as a layer: `forward(logits N x C x H x W, images N x 3 x H x W)` returns
    refined logits of the logits' shape (see the module doc).

    num_classes: C. iterations: mean-field iterations in training, and in eval unless
        eval_iterations is given (the paper: 5 and 10). 0 returns the logits unchanged.
    appearance: (w, theta_a, theta_b), smoothness: (w, theta_g), as in `dense_crf`: the initial
        per-class weights and the fixed bandwidths (pixels, colour levels 0..255).
    learn: which of "appearance", "smoothness" (the C x C kernel weight matrices) and
        "compatibility" (the C x C mu) train; True for all, False for none (a fixed dense CRF).
    backend: "auto" (numba on the CPU, torch elsewhere), "numba", "torch" or "exact".
    threads: how many threads the numba backend uses (None: numba's setting for the calling
        thread at each call); a batch's images run side by side, up to one per thread. The output
        and the logits' gradient are the same to the bit on any number; the parameters' gradients
        are sums over pixels by torch's matrix products, as in any torch layer, and can differ in
        the last bits. torch's own operations follow torch's setting; neither setting is changed.
    Images are uint8 or floats in 0..255, RGB, on any device; they get no gradient.
    """

    def __init__(self, num_classes, iterations=5, appearance=APPEARANCE, smoothness=SMOOTHNESS, *,
                 eval_iterations=None, learn=True, backend="auto", threads=None):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
            raise ValueError(f"num_classes must be a whole number >= 1, got {num_classes!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
        self.num_classes, self.backend = int(num_classes), backend
        self.threads = None if threads is None else check_threads(threads)
        self.iterations = _check_iterations(iterations)
        self.eval_iterations = self.iterations if eval_iterations is None else _check_iterations(eval_iterations)
        w_a, self.theta_a, self.theta_b = _check_kernel("appearance", appearance, ("w", "theta_a", "theta_b"))
        w_s, self.theta_g = _check_kernel("smoothness", smoothness, ("w", "theta_g"))
        learned = _learned(learn)
        eye = torch.eye(self.num_classes)
        self.appearance_weights = nn.Parameter(w_a * eye, requires_grad="appearance" in learned)
        self.smoothness_weights = nn.Parameter(w_s * eye, requires_grad="smoothness" in learned)
        self.compatibility = nn.Parameter(1.0 - eye, requires_grad="compatibility" in learned)

    def extra_repr(self):
        return (f"{self.num_classes}, iterations={self.iterations}, eval_iterations={self.eval_iterations}, "
                f"theta_a={self.theta_a:g}, theta_b={self.theta_b:g}, theta_g={self.theta_g:g}, "
                f"backend={self.backend!r}")

    def forward(self, logits, images):
        _check_inputs(logits, images, self.num_classes)
        iterations = self.iterations if self.training else self.eval_iterations
        if iterations == 0:
            return logits
        batch, channels, height, width = logits.shape
        backend = self.backend if self.backend != "auto" else "numba" if logits.device.type == "cpu" else "torch"
        dtype = logits.dtype if backend != "numba" else torch.float32
        parameters = [p.to(dtype) for p in (self.appearance_weights, self.smoothness_weights, self.compatibility)]
        threads = check_threads(self.threads) if backend == "numba" else None
        # The smoothness kernel depends on the image size only: one serves the whole batch.
        smoothness = _kernel(backend, smoothness_features(height, width, self.theta_g), logits.device, threads)

        def kernels(index, image_threads=None):
            return [_kernel(backend, self._appearance_features(images[index]), logits.device, image_threads),
                    smoothness]

        if backend == "numba":
            refined = _FusedMeanField.run(logits.flatten(2).to(dtype), kernels, parameters, iterations, threads)
        else:
            unary = logits.flatten(2).transpose(1, 2).to(dtype)
            refined = torch.stack([_mean_field(unary[index], kernels(index), parameters, iterations).T
                                   for index in range(batch)])
        return refined.reshape(batch, channels, height, width).to(logits.dtype)

    def _appearance_features(self, image):
        """The appearance kernel's features of one 3 x H x W image."""
        pixels = image.detach().permute(1, 2, 0).cpu().numpy()
        pixels = pixels if pixels.dtype == np.uint8 else pixels.astype(np.float32)
        return appearance_features(pixels, self.theta_a, self.theta_b)


def _kernel(backend, features, device, threads):
    """The normalised Gaussian kernel on N x d features (numpy) for one backend."""
    if backend == "numba":
        return _NumbaKernel(features, threads)
    if backend == "torch":
        return _TorchKernel(torch.from_numpy(features).to(device))
    return _ExactKernel(features)


def _mean_field(unary, kernels, parameters, iterations):
    """`iterations` CRF-RNN steps on one image's unary logits, pixels x labels rows."""
    appearance, smoothness = kernels
    appearance_weights, smoothness_weights, compatibility = parameters
    current = unary
    for _ in range(iterations):
        q = torch.softmax(current, dim=1)
        # mu (W_a K_a q + W_s K_s q) with mu folded into the C x C weights first: the graph then
        # keeps two filtered maps per iteration, not also their weighted sum.
        current = unary - (LatticeFilter.apply(q, appearance) @ (compatibility @ appearance_weights).T
                           + LatticeFilter.apply(q, smoothness) @ (compatibility @ smoothness_weights).T)
    return current


class _FusedMeanField(torch.autograd.Function):
    """`_mean_field` for a batch on the numba lattices, with its backward written out, so that a
    step makes no N x C temporaries beyond what it keeps for the backward, and runs no
    per-operation torch passes over the pixels; the batch's images run side by side on worker
    threads (`_for_each_image`).

    The label mixing is moved onto the lattices' vertices, where it costs less on photos (the
    lattices have fewer vertices than the image has pixels): the slice is linear, so with P = the
    blurred splat of q (M x C), m A^T = slice(P) A^T = slice(P A^T). A step is then: splat and blur
    each kernel, mix its vertex table, and one pixel pass (`crfrnn_passes.forward_pass`) that slices
    both kernels, adds the unary and takes the softmax.

    Backward of a step, logits = unary - slice_a(P_a A^T) - slice_s(P_s S^T), given g =
    dL/dlogits. The slice's weights are alpha times the splat's, so slice^T g = alpha splat(g) =
    alpha H: dA = -alpha H_a^T P_a; the message's gradient -alpha H_a A goes back through the blur
    (axes reversed) and the splat's transpose, which is the slice divided by alpha; so dq =
    slice_a(blur^T(-H_a A)) + slice_s(blur^T(-H_s S)), and dL/dprevious = q * (dq - <q, dq>)
    (`crfrnn_passes.backward_pass`). The unary gets every step's g and the first softmax's.
    Kept for the backward, per image and step: q (pixels x C) and the two P (M x C); the mixed
    tables are allocated once per image and reused by every step, forward and backward."""

    @staticmethod
    def run(unary, kernels, parameters, iterations, threads):
        """unary: N x C x pixels float32 logits (the result has their layout; each image is
        transposed to pixels x C rows and back by its worker: see `_forward_steps`);
        kernels(index, threads): image index's two `_NumbaKernel`s; threads: how many threads the
        batch may use in all."""
        appearance_weights, smoothness_weights, compatibility = parameters
        return _FusedMeanField.apply(unary, compatibility @ appearance_weights, compatibility @ smoothness_weights,
                                     kernels, iterations, threads)

    @staticmethod
    def forward(ctx, unary, mix_a, mix_s, kernels, iterations, threads):
        unary = unary.detach().numpy()
        # The mixing matrices as they act on rows: P -> -P A^T.
        mixing = [-matrix.detach().T for matrix in (mix_a, mix_s)]
        keep = any(ctx.needs_input_grad)
        out = np.empty(unary.shape, np.float32)
        ctx.images = [None] * len(unary)

        def image(index, image_threads):
            image_kernels = kernels(index, image_threads)
            ctx.images[index] = image_kernels, _forward_steps(unary[index], image_kernels, mixing, iterations, keep,
                                                              out[index])

        _for_each_image(len(unary), threads, image)
        ctx.threads = threads
        ctx.save_for_backward(mix_a, mix_s)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad):
        # Detached: the workers' threads record autograd graphs (grad mode is per thread).
        matrices = [matrix.detach() for matrix in ctx.saved_tensors]
        grad = grad.float().numpy()
        grad_unary = np.empty(grad.shape, np.float32)
        grad_mixes = [None] * len(grad)

        def image(index, _):
            kernels, saved = ctx.images[index]
            ctx.images[index] = None  # its tables are freed as soon as its backward is done
            grad_mixes[index] = _backward_steps(grad[index], kernels, saved, matrices, grad_unary[index])

        _for_each_image(len(grad), ctx.threads, image)
        # Summed in image order, so the bits do not depend on which worker finished first.
        grad_mix = [sum(per_image[k] for per_image in grad_mixes) for k in range(2)]
        return torch.from_numpy(grad_unary), grad_mix[0], grad_mix[1], None, None, None


def _forward_steps(logits, kernels, mixing, iterations, keep, out):
    """One image's mean field from its C x pixels logits into `out` (C x pixels; the steps work on
    pixels x C rows, transposed here in numpy memory: see below); returns what the
    backward needs: each step's input q and blurred tables (if keep) and the two mixed tables
    (allocated here, reused there). What is kept is one numpy array per kind, iterations deep:
    large numpy arrays are mapped in huge pages (torch's CPU tensors are not), so the hundreds of
    megabytes of fresh memory a batch keeps cost a fraction of the page faults."""
    appearance, smoothness = kernels
    unary = np.ascontiguousarray(logits.T)
    n, c = unary.shape
    depth = iterations if keep else 1
    inputs = np.empty((depth, n, c), np.float32)
    tables = [np.empty((depth, kernel.num_vertices, c), np.float32) for kernel in kernels]
    mixed = [np.empty((kernel.num_vertices, c), np.float32) for kernel in kernels]
    result = np.empty((n, c), np.float32)
    inputs[0] = torch.softmax(torch.from_numpy(unary), dim=1).numpy()
    with numba_threads(appearance.threads):
        for step in range(iterations):
            slot = step if keep else 0
            for kernel, table, matrix, into in zip(kernels, tables, mixing, mixed):
                kernel.splat(inputs[slot], table[slot])
                kernel.blur(table[slot], transpose=False)
                torch.mm(torch.from_numpy(table[slot]), matrix, out=torch.from_numpy(into))
            last = step == iterations - 1
            # Without keep the next q overwrites this one: the splats above were its only readers.
            target = result if last else inputs[slot + 1] if keep else inputs[0]
            crfrnn_passes.forward_pass(unary, appearance.offsets, appearance.slice_weights, mixed[0],
                                       smoothness.offsets, smoothness.slice_weights, mixed[1], target, not last)
        crfrnn_passes.to_channels(result, out)
    return inputs, tables, mixed


def _backward_steps(grad_out, kernels, saved, matrices, grad_logits):
    """One image's backward through `_forward_steps` (`saved`: what it returned) given grad_out =
    dL/doutput (C x pixels); writes dL/dlogits into grad_logits (C x pixels) and returns the
    gradients of the two mixing matrices."""
    appearance, smoothness = kernels
    inputs, tables, mixed = saved
    grad = np.ascontiguousarray(grad_out.T)
    grad_unary = grad.copy()
    grad_mix = [torch.zeros_like(matrix) for matrix in matrices]
    splats = [np.empty_like(table) for table in mixed]
    with numba_threads(appearance.threads):
        for step in reversed(range(len(inputs))):
            for kernel, table, matrix, splat, into_mixed, into in zip(kernels, tables, matrices, splats, mixed,
                                                                       grad_mix):
                kernel.splat(grad, splat)
                into.addmm_(torch.from_numpy(splat).T, torch.from_numpy(table[step]), alpha=-float(kernel.alpha))
                torch.mm(torch.from_numpy(splat), -matrix, out=torch.from_numpy(into_mixed))
                kernel.blur(into_mixed, transpose=True)
            crfrnn_passes.backward_pass(inputs[step], appearance.offsets, appearance.slice_weights, mixed[0],
                                        smoothness.offsets, smoothness.slice_weights, mixed[1], grad, grad_unary)
        crfrnn_passes.to_channels(grad_unary, grad_logits)
    return grad_mix


def _for_each_image(count, threads, work):
    """work(index, threads) for index in range(count): with more than one image and thread, the
    images are dealt round robin to min(count, threads) worker threads that split the threads
    between them: one image's kernels gain less from a second thread than a second image does.
    The bits do not depend on the split: each kernel gives the same result on any number of
    threads. numba's workqueue layer cannot take parallel kernels from several threads at once:
    there the images run one after another."""
    workers = min(count, threads) if numba.threading_layer() != "workqueue" else 1
    if workers == 1:
        for index in range(count):
            work(index, threads)
        return
    shares = [threads // workers + (worker < threads % workers) for worker in range(workers)]

    def run(worker):
        # torch's matrix products in `work` would otherwise take all the cores from each worker.
        set_openmp_threads_here(shares[worker])
        for index in range(worker, count, workers):
            work(index, shares[worker])

    with ThreadPoolExecutor(workers) as pool:
        for done in [pool.submit(run, worker) for worker in range(workers)]:
            done.result()


def _learned(learn):
    if learn is True or learn is False:
        return LEARNABLE if learn else ()
    names = (learn,) if isinstance(learn, str) else tuple(learn)
    unknown = [name for name in names if name not in LEARNABLE]
    if unknown:
        raise ValueError(f"learn: unknown parameter(s) {', '.join(map(repr, unknown))}; expected True, False "
                         f"or some of {', '.join(LEARNABLE)}")
    return names


def _check_inputs(logits, images, num_classes):
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4 or not logits.is_floating_point():
        raise ValueError(f"CRFasRNN logits must be a float N x C x H x W tensor, got "
                         f"{_describe(logits)}")
    if logits.shape[1] != num_classes:
        raise ValueError(f"CRFasRNN logits have {logits.shape[1]} channels; expected {num_classes} (num_classes)")
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"CRFasRNN images must be an N x 3 x H x W RGB tensor, got {_describe(images)}")
    if images.shape[0] != logits.shape[0]:
        raise ValueError(f"CRFasRNN got {logits.shape[0]} logit maps but {images.shape[0]} images; "
                         f"expected one image per logit map")
    if images.shape[2:] != logits.shape[2:]:
        raise ValueError(f"CRFasRNN images are {images.shape[2]} x {images.shape[3]} but logits "
                         f"{logits.shape[2]} x {logits.shape[3]}; expected the same height and width")
    if images.dtype != torch.uint8:
        if not images.is_floating_point():
            raise ValueError(f"CRFasRNN images have dtype {images.dtype}; expected uint8 or floats in 0..255")
        if not bool(((images >= 0) & (images <= 255)).all()):
            raise ValueError("CRFasRNN images must hold values in 0..255 (no NaN); for images in 0..1 "
                             "multiply by 255, for normalised ones undo the normalisation")
    if not bool(torch.isfinite(logits).all()):
        bad = ~torch.isfinite(logits)
        n, c, y, x = (int(v) for v in bad.nonzero()[0])
        raise ValueError(f"CRFasRNN logits have {int(bad.sum())} non-finite values (first: image {n}, "
                         f"label {c}, row {y}, column {x})")


def _describe(value):
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__}"
