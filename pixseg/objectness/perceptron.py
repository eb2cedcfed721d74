"""The one-hidden-layer perceptron that both learned objectness models use, and its deterministic fit.

Inputs are standardised with the training sample's mean and spread, a tanh layer follows, and a
logistic output gives a probability. Fitting minimises the weighted logistic loss, which also takes
soft targets in [0, 1], by full-batch L-BFGS from a start drawn from a seeded generator, so the same
sample gives the same model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize


@dataclass(frozen=True)
class Perceptron:
    """Input standardisation (`mean`, `scale`, F each) and the layers: F x H, H, H and a scalar."""

    mean: np.ndarray
    scale: np.ndarray
    hidden_weights: np.ndarray
    hidden_bias: np.ndarray
    output_weights: np.ndarray
    output_bias: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Output probability of each row of `x` (N x F), float32 (N,)."""
        hidden = np.tanh((x - self.mean) / self.scale @ self.hidden_weights + self.hidden_bias)
        return (1.0 / (1.0 + np.exp(-(hidden @ self.output_weights + self.output_bias)))).astype(np.float32)

    def arrays(self, prefix: str = "") -> dict:
        """The parameters by name, for np.savez."""
        return {f"{prefix}mean": self.mean, f"{prefix}scale": self.scale,
                f"{prefix}hidden_weights": self.hidden_weights, f"{prefix}hidden_bias": self.hidden_bias,
                f"{prefix}output_weights": self.output_weights, f"{prefix}output_bias": np.array(self.output_bias)}

    @classmethod
    def from_arrays(cls, arrays: dict, prefix: str = "") -> "Perceptron":
        """The inverse of `arrays`; ValueError when an array is missing or the shapes disagree."""
        try:
            model = cls(mean=arrays[f"{prefix}mean"], scale=arrays[f"{prefix}scale"],
                        hidden_weights=arrays[f"{prefix}hidden_weights"], hidden_bias=arrays[f"{prefix}hidden_bias"],
                        output_weights=arrays[f"{prefix}output_weights"],
                        output_bias=float(arrays[f"{prefix}output_bias"]))
        except KeyError as missing:
            raise ValueError(f"array {missing} is missing") from None
        features = len(model.mean)
        if (model.scale.shape != (features,) or model.hidden_weights.shape[0] != features
                or model.hidden_bias.shape != model.hidden_weights.shape[1:]
                or model.output_weights.shape != model.hidden_bias.shape):
            raise ValueError("inconsistent array shapes")
        return model


def fit_perceptron(x: np.ndarray, y: np.ndarray, weight: np.ndarray, *, hidden: int, iterations: int, l2: float,
                   rng: np.random.Generator) -> Perceptron:
    """Fit to rows `x` (N x F) with targets `y` in [0, 1] and per-row loss weights `weight` (N,),
    starting from weights drawn from `rng`."""
    mean, scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)
    x = (x - mean) / scale
    n_features = x.shape[1]
    shapes = [(n_features, hidden), (hidden,), (hidden,), ()]
    sizes = [math.prod(shape) for shape in shapes]

    def unpack(theta):
        parts, start = [], 0
        for shape, size in zip(shapes, sizes):
            parts.append(theta[start:start + size].reshape(shape))
            start += size
        return parts

    def loss(theta):
        w1, b1, w2, b2 = unpack(theta)
        h = np.tanh(x @ w1 + b1)
        z = h @ w2 + b2
        # log(1 + e^z) - y z, computed without overflow.
        value = np.sum(weight * (np.logaddexp(0, z) - y * z)) + 0.5 * l2 * (np.sum(w1 * w1) + np.sum(w2 * w2))
        dz = weight * (1 / (1 + np.exp(-z)) - y)
        dh = np.outer(dz, w2) * (1 - h * h)
        grad = [x.T @ dh + l2 * w1, dh.sum(axis=0), h.T @ dz + l2 * w2, np.array(dz.sum())]
        return value, np.concatenate([g.ravel() for g in grad])

    start = np.concatenate([rng.normal(0, 1 / math.sqrt(n_features), sizes[0]),
                            np.zeros(sizes[1]), rng.normal(0, 1 / math.sqrt(hidden), sizes[2]), np.zeros(1)])
    result = optimize.minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": iterations})
    w1, b1, w2, b2 = unpack(result.x)
    return Perceptron(mean=mean.astype(np.float32), scale=scale.astype(np.float32),
                      hidden_weights=w1.astype(np.float32), hidden_bias=b1.astype(np.float32),
                      output_weights=w2.astype(np.float32), output_bias=float(b2))
