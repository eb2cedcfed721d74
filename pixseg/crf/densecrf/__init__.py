"""pydensecrf's Python API on pixseg's engine: `import pixseg.crf.densecrf as dcrf` runs code written
for `import pydensecrf.densecrf as dcrf` unchanged, with the same labels and Q up to float32
rounding.

    d = dcrf.DenseCRF2D(width, height, labels)
    d.setUnaryEnergy(unary_from_softmax(probs))          # labels x pixels energies
    d.addPairwiseGaussian(sxy=3, compat=3)
    d.addPairwiseBilateral(sxy=80, srgb=13, rgbim=image, compat=10)
    Q = d.inference(5)                                     # labels x pixels
    labels = np.argmax(Q, axis=0).reshape(height, width)

The helpers of `pydensecrf.utils` are in `pixseg.crf.densecrf.utils` (and here). Each pairwise term
is a Gaussian kernel on its features with a label compatibility: a number w (Potts: the term adds
w K Q to the logits), a vector v (diagonal: subtracts v * K Q) or a matrix M (subtracts
(M + M^T) / 2 @ K Q), as in the reference. The four normalisations are the reference's: with
D = K 1, NORMALIZE_SYMMETRIC filters D^-1/2 K D^-1/2 Q (the default), NORMALIZE_BEFORE K D^-1 Q,
NORMALIZE_AFTER D^-1 K Q and NO_NORMALIZATION K Q.

`inference` runs `pixseg.crf.dense_crf` (the fast path) when the model is one it expresses: on a
DenseCRF2D, at most one Gaussian and one bilateral term with equal x and y bandwidths (and equal
colour bandwidths), symmetric normalisation and compatibilities that are all numbers >= 0 or all
multiples (>= 0) of one matrix. Anything else, and `stepInference`, runs mean field here, one
numba lattice (`PermutohedralLattice`) per term. The three kernel types are accepted and equal:
they differ only in which kernel parameters the reference's learning may change, and learning
(`setUnary` with a LogisticUnary, `setUnaryEnergy` with features) is not offered: those raise
NotImplementedError.
"""

from numbers import Number

import numpy as np

from pixseg.crf.densecrf.utils import (create_pairwise_bilateral, create_pairwise_gaussian, unary_from_labels,
                                       unary_from_softmax)
from pixseg.crf.inference import dense_crf
from pixseg.crf.lattice import PermutohedralLattice

# The reference's enumerations, with its values.
CONST_KERNEL, DIAG_KERNEL, FULL_KERNEL = 0, 1, 2
NO_NORMALIZATION, NORMALIZE_BEFORE, NORMALIZE_AFTER, NORMALIZE_SYMMETRIC = 0, 1, 2, 3
_KERNELS = {CONST_KERNEL: "CONST_KERNEL", DIAG_KERNEL: "DIAG_KERNEL", FULL_KERNEL: "FULL_KERNEL"}
_NORMALIZATIONS = {NO_NORMALIZATION: "NO_NORMALIZATION", NORMALIZE_BEFORE: "NORMALIZE_BEFORE",
                   NORMALIZE_AFTER: "NORMALIZE_AFTER", NORMALIZE_SYMMETRIC: "NORMALIZE_SYMMETRIC"}

__all__ = ["CONST_KERNEL", "DIAG_KERNEL", "FULL_KERNEL", "NO_NORMALIZATION", "NORMALIZE_AFTER", "NORMALIZE_BEFORE",
           "NORMALIZE_SYMMETRIC", "DenseCRF", "DenseCRF2D", "create_pairwise_bilateral", "create_pairwise_gaussian",
           "unary_from_labels", "unary_from_softmax"]


class _Term:
    """One pairwise term: features (N x d float32), the compatibility as a C x C matrix M (the
    term subtracts M @ filtered Q from the logits), the normalisation, and for the fast path its
    kind ("gaussian", "bilateral" or None) and bandwidths."""

    def __init__(self, features, compat, normalization, kind=None, bandwidths=None):
        self.features, self.compat, self.normalization = features, compat, normalization
        self.kind, self.bandwidths = kind, bandwidths
        self.potts = compat.potts
        self._lattice = self._norm = None

    def filtered(self, q):
        """The normalised kernel applied to Q (C x N float32), as the reference's DenseKernel."""
        if self._lattice is None:
            self._lattice = PermutohedralLattice(self.features)
            ones = self._lattice.filter(np.ones((1, self.features.shape[0]), np.float32))[0]
            power = 0.5 if self.normalization == NORMALIZE_SYMMETRIC else 1.0
            self._norm = (1.0 / (ones + np.float32(1e-20)) ** power).astype(np.float32)
        before = self.normalization in (NORMALIZE_SYMMETRIC, NORMALIZE_BEFORE)
        after = self.normalization in (NORMALIZE_SYMMETRIC, NORMALIZE_AFTER)
        out = self._lattice.filter(q * self._norm if before else q)
        return out * self._norm if after else out

    def energy(self, q):
        """The term's contribution to the reference's energy update: M @ filtered(Q)."""
        return self.compat.apply(self.filtered(q))


class _Compatibility:
    """A label compatibility given as a number (Potts), a vector (diagonal) or a matrix."""

    def __init__(self, compat, labels):
        self.potts = None
        if isinstance(compat, Number):
            self.potts = float(compat)
            self.matrix = -self.potts * np.eye(labels, dtype=np.float32)
            return
        array = np.asarray(compat, dtype=np.float32)
        if array.ndim == 1 and array.shape == (labels,):
            self.matrix = np.diag(array)
        elif array.ndim == 2 and array.shape == (labels, labels):
            self.matrix = (0.5 * (array + array.T)).astype(np.float32)  # the reference symmetrises it
        else:
            raise ValueError(f"compat has shape {array.shape}; expected a number (Potts), a vector of {labels} "
                             f"(diagonal) or a {labels} x {labels} matrix")
        if not np.isfinite(self.matrix).all():
            raise ValueError("compat must be finite")

    def apply(self, filtered):
        return self.matrix @ filtered


class DenseCRF:
    """pydensecrf's DenseCRF(nvar, nlabels): a CRF over nvar variables with nlabels labels and pairwise
    terms on arbitrary features (`addPairwiseEnergy`)."""

    def __init__(self, nvar, nlabels):
        for name, value in (("nvar", nvar), ("nlabels", nlabels)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        self._nvar, self._nlabel = int(nvar), int(nlabels)
        self._unary = np.zeros((self._nlabel, self._nvar), np.float32)
        self._terms = []

    def setUnaryEnergy(self, u, f=None):  # noqa: N802 (pydensecrf's names)
        """Unary energies, nlabels x nvar (-log of the probabilities; see unary_from_softmax)."""
        if f is not None:
            raise NotImplementedError("setUnaryEnergy(u, f): the learned logistic unary is not supported by "
                                      "pixseg.crf.densecrf; give the energies u alone")
        u = np.asarray(u)
        if u.shape != (self._nlabel, self._nvar):
            raise ValueError(f"Bad shape for unary energy (Need {(self._nlabel, self._nvar)}, got {u.shape})")
        if u.dtype.kind != "f" or np.isnan(u).any():
            raise ValueError(f"unary energies must be floating-point numbers without NaN, got dtype {u.dtype}")
        self._unary = np.ascontiguousarray(u, dtype=np.float32)

    def setUnary(self, u):  # noqa: N802
        raise NotImplementedError("setUnary (ConstUnary / LogisticUnary objects) is not supported by "
                                  "pixseg.crf.densecrf; use setUnaryEnergy(energies)")

    def addPairwiseEnergy(self, features, compat, kernel=DIAG_KERNEL,  # noqa: N802
                          normalization=NORMALIZE_SYMMETRIC):
        """A Gaussian kernel on `features` (d x nvar, each already divided by its bandwidth)."""
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != self._nvar or features.shape[0] == 0:
            raise ValueError(f"Bad shape for pairwise energy (Need (?, {self._nvar}), got {features.shape})")
        self._add(np.ascontiguousarray(features.T, dtype=np.float32), compat, kernel, normalization)

    def _add(self, features, compat, kernel, normalization, kind=None, bandwidths=None):
        if int(kernel) not in _KERNELS:
            raise ValueError(f"kernel {kernel!r} is not one of {', '.join(_KERNELS.values())}")
        if int(normalization) not in _NORMALIZATIONS:
            raise ValueError(f"normalization {normalization!r} is not one of {', '.join(_NORMALIZATIONS.values())}")
        if not np.isfinite(features).all():
            raise ValueError("pairwise features must be finite")
        self._terms.append(_Term(features, _Compatibility(compat, self._nlabel), int(normalization), kind,
                                 bandwidths))

    def inference(self, niter):
        """Q (nlabels x nvar float32) after `niter` mean-field iterations."""
        if isinstance(niter, bool) or not isinstance(niter, (int, np.integer)) or niter < 0:
            raise ValueError(f"niter must be a whole number >= 0, got {niter!r}")
        fast = self._fast_options()
        if fast is not None:
            return self._fast_inference(int(niter), *fast)
        q, tmp1, tmp2 = self.startInference()
        for _ in range(int(niter)):
            self.stepInference(q, tmp1, tmp2)
        return q

    def startInference(self):  # noqa: N802
        """(Q, tmp1, tmp2): Q = softmax(-unary), and two scratch arrays for stepInference."""
        return _softmax(-self._unary), np.empty((0, 0), np.float32), np.empty((0, 0), np.float32)

    def stepInference(self, Q, tmp1=None, tmp2=None):  # noqa: N802, N803
        """One mean-field iteration, updating Q (nlabels x nvar float32, from startInference) in place."""
        if not isinstance(Q, np.ndarray) or Q.shape != (self._nlabel, self._nvar) or Q.dtype != np.float32:
            raise ValueError(f"Q must be the float32 {self._nlabel} x {self._nvar} array from startInference")
        Q[...] = _softmax(self._logits(Q))

    def klDivergence(self, Q):  # noqa: N802, N803
        """The reference's KL divergence of Q from the CRF's distribution, up to its constant (the log
        of the partition function): sum Q log Q + unary * Q + Q * (each pairwise term's energy)."""
        q = np.asarray(Q, dtype=np.float32)
        kl = float(np.sum(q.astype(np.float64) * np.log(np.maximum(q, np.float32(1e-20)))))
        kl += float(np.sum(self._unary.astype(np.float64) * q))
        for term in self._terms:
            kl += float(np.sum(q * term.energy(q), dtype=np.float64))
        return kl

    def _logits(self, q):
        logits = -self._unary
        for term in self._terms:
            logits = logits - term.energy(q)
        return logits

    def _fast_options(self):
        return None

    def _fast_inference(self, niter, *options):
        raise AssertionError("only DenseCRF2D has a fast path")


class DenseCRF2D(DenseCRF):
    """pydensecrf's DenseCRF2D(width, height, nlabels): variables are the pixels of a width x height
    image in row-major order, with `addPairwiseGaussian` and `addPairwiseBilateral` terms."""

    def __init__(self, w, h, nlabels):
        for name, value in (("w", w), ("h", h)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        super().__init__(int(w) * int(h), nlabels)
        self._w, self._h = int(w), int(h)
        self._image = None

    def addPairwiseGaussian(self, sxy, compat, kernel=DIAG_KERNEL, normalization=NORMALIZE_SYMMETRIC):  # noqa: N802
        """The smoothness kernel: features (x / sx, y / sy)."""
        sx, sy = _pair("sxy", sxy, 2)
        features = np.stack(self._positions(sx, sy), axis=1)
        self._add(features, compat, kernel, normalization, "gaussian", (sx, sy))

    def addPairwiseBilateral(self, sxy, srgb, rgbim, compat, kernel=DIAG_KERNEL,  # noqa: N802
                             normalization=NORMALIZE_SYMMETRIC):
        """The appearance kernel: features (x / sx, y / sy, r / sr, g / sg, b / sb) of a uint8 image."""
        sx, sy = _pair("sxy", sxy, 2)
        srgb = _pair("srgb", srgb, 3)
        rgbim = np.asarray(rgbim)
        if rgbim.dtype != np.uint8 or rgbim.ndim != 3 or rgbim.shape[:2] != (self._h, self._w):
            raise ValueError(f"Bad shape for pairwise bilateral (Need uint8 {(self._h, self._w, 3)}, got "
                             f"{rgbim.dtype} {rgbim.shape})")
        if rgbim.shape[2] != 3:
            raise ValueError("addPairwiseBilateral only works for RGB images; build other features with "
                             "utils.create_pairwise_bilateral and add them with addPairwiseEnergy")
        colours = rgbim.reshape(-1, 3).astype(np.float32) / np.array(srgb, np.float32)
        features = np.concatenate([np.stack(self._positions(sx, sy), axis=1), colours], axis=1)
        self._add(features, compat, kernel, normalization, "bilateral", (sx, sy) + srgb)
        self._image = np.ascontiguousarray(rgbim)

    def _positions(self, sx, sy):
        """x / sx and y / sy of every pixel, row-major, in float32 (as the reference divides)."""
        x = np.arange(self._w, dtype=np.float32) / np.float32(sx)
        y = np.arange(self._h, dtype=np.float32) / np.float32(sy)
        return np.tile(x, self._h), np.repeat(y, self._w)

    def _fast_options(self):
        """dense_crf's (appearance, smoothness, compat) for this model, or None (see the module doc)."""
        kinds = [term.kind for term in self._terms]
        if (None in kinds or kinds.count("gaussian") > 1 or kinds.count("bilateral") > 1
                or any(term.normalization != NORMALIZE_SYMMETRIC for term in self._terms)):
            return None
        appearance, smoothness = (0.0, 1.0, 1.0), (0.0, 1.0)
        weights, compat = _common_compatibility([term.compat for term in self._terms])
        if weights is None:
            return None
        for term, weight in zip(self._terms, weights):
            bandwidths = term.bandwidths
            if bandwidths[0] != bandwidths[1] or (term.kind == "bilateral" and len(set(bandwidths[2:])) > 1):
                return None
            if term.kind == "gaussian":
                smoothness = (weight, bandwidths[0])
            else:
                appearance = (weight, bandwidths[0], bandwidths[2])
        return appearance, smoothness, compat

    def _fast_inference(self, niter, appearance, smoothness, compat):
        image = self._image if self._image is not None else np.zeros((self._h, self._w, 3), np.uint8)
        _, q = dense_crf(image, unary=self._unary.reshape(self._nlabel, self._h, self._w), iterations=niter,
                         appearance=appearance, smoothness=smoothness, compat=compat)
        return q.reshape(self._nlabel, self._nvar)


def _common_compatibility(compats):
    """(weights, compat) with each term's matrix = weight * M for dense_crf: compat None for Potts
    terms with weights >= 0, else M, the first non-zero matrix; (None, None) when the terms'
    matrices are not non-negative multiples of one matrix."""
    if all(c.potts is not None and c.potts >= 0 for c in compats):
        return [c.potts for c in compats], None
    base = next((c.matrix for c in compats if np.any(c.matrix)), None)
    if base is None:
        return [0.0] * len(compats), None
    weights = []
    for c in compats:
        scale = float(np.sum(c.matrix * base) / np.sum(base * base))
        if scale < 0 or not np.allclose(c.matrix, scale * base, rtol=1e-6, atol=1e-7):
            return None, None
        weights.append(scale)
    return weights, base


def _pair(name, value, count):
    """A bandwidth given as one number or `count` numbers, as a tuple of floats > 0."""
    values = (value,) * count if isinstance(value, Number) else tuple(value)
    if len(values) != count or not all(isinstance(v, Number) and np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{name} must be a number or {count} numbers, each > 0, got {value!r}")
    return tuple(float(v) for v in values)


def _softmax(logits):
    """The reference's expAndNormalize over the labels (axis 0), in float32."""
    shifted = logits - logits.max(axis=0, keepdims=True)
    with np.errstate(invalid="ignore"):
        e = np.exp(shifted, dtype=np.float32)
    return (e / e.sum(axis=0, keepdims=True)).astype(np.float32)
