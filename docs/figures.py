"""Draw the documentation's figures into docs/figures/ from pixseg's own code (`make docs` runs it).

    .venv/bin/python docs/figures.py
"""

import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from pixseg.crf import dense_crf
from pixseg.crf.features import appearance_features, smoothness_features
from pixseg.crf.inference import numba_operator
from pixseg.crf.meanfield import mean_field_numba
from pixseg.losses import CrossEntropyLoss, FusedLoss, PositiveSharingLoss
from pixseg.viz import colorize

OUT = Path(__file__).parent / "figures"


def fused_loss(path):
    """Loss and gradient on s_0 for one object pixel (label 1 of 2) as s_0 moves, s_1 = 0."""
    s0 = torch.linspace(-4, 4, 161)
    figure = Figure(figsize=(8, 3))
    loss_axis, grad_axis = figure.subplots(1, 2)
    for name, loss in (("softmax", CrossEntropyLoss()), ("positive-sharing", PositiveSharingLoss()),
                       ("fused (0.5, 0.5)", FusedLoss(0.5, 0.5))):
        values, grads = [], []
        for s in s0:
            logits = torch.tensor([[[[float(s)]], [[0.0]]]], requires_grad=True)
            value = loss(logits, torch.ones(1, 1, 1, dtype=torch.long))
            value.backward()
            values.append(float(value.detach()))
            grads.append(float(logits.grad[0, 0, 0, 0]))
        loss_axis.plot(s0, values, label=name)
        grad_axis.plot(s0, grads, label=name)
    loss_axis.set(xlabel="background score $s_0$ ($s_1 = 0$)", ylabel="loss", title="object pixel: loss")
    grad_axis.set(xlabel="background score $s_0$", ylabel=r"$\partial L / \partial s_0$", title="gradient")
    loss_axis.legend(fontsize=8)
    for axis in (loss_axis, grad_axis):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def lattice(path):
    """The 2-D permutohedral lattice (a triangular grid), a few pixels and their triangles' corners."""
    figure = Figure(figsize=(5, 4))
    axis = figure.subplots()
    basis = np.array([[1.0, 0.5], [0.0, np.sqrt(3) / 2]])  # columns: two lattice directions
    b1, b2 = basis[:, 0], basis[:, 1]
    for i in range(-8, 9):
        for origin, direction in ((basis @ (0, i), b1), (basis @ (i, 0), b2), (basis @ (i, 0), b2 - b1)):
            line = np.array([origin - 12 * direction, origin + 12 * direction])
            axis.plot(line[:, 0], line[:, 1], color="0.85", linewidth=0.8)
    rng = np.random.default_rng(3)
    points = rng.uniform(-1.6, 1.6, (6, 2))
    for point in points:
        u, v = np.linalg.solve(basis, point)
        fu, fv = np.floor(u), np.floor(v)
        corners = [(fu, fv), (fu + 1, fv), (fu, fv + 1)] if (u - fu) + (v - fv) < 1 else \
            [(fu + 1, fv), (fu, fv + 1), (fu + 1, fv + 1)]
        for corner in corners:
            target = basis @ np.array(corner)
            axis.plot([point[0], target[0]], [point[1], target[1]], color="tab:blue", linewidth=0.8)
            axis.plot(*target, "s", color="tab:orange", markersize=5)
        axis.plot(*point, "o", color="tab:blue", markersize=5)
    axis.annotate("blur along the three\nlattice directions", (0.5, 2.35), ha="center", fontsize=8)
    axis.set(xlim=(-2.6, 2.6), ylim=(-2.4, 2.8), aspect="equal", xticks=[], yticks=[])
    axis.set_title("splat (blue) onto vertices (orange), blur, slice back", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def scene(height=96, width=128, seed=0):
    """A synthetic photo (three shapes with pixel noise) and noisy network-like probabilities."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:height, :width]
    labels = np.zeros((height, width), np.int64)
    labels[15:55, 12:60] = 1
    labels[(y - 60) ** 2 + (x - 90) ** 2 <= 25 ** 2] = 2
    colours = np.array([[110, 120, 130], [200, 50, 40], [40, 170, 70]])
    image = (colours[labels] + rng.normal(0, 10, (height, width, 3))).clip(0, 255).astype(np.uint8)
    logits = 1.5 * (np.arange(3)[:, None, None] == labels) + rng.normal(0, 1.0, (3, height, width))
    probs = np.exp(logits - logits.max(0))
    return image, (probs / probs.sum(0)).astype(np.float32)


def crf_effect(path):
    image, probs = scene()
    refined, _ = dense_crf(image, probs, iterations=10, appearance=(5.0, 20.0, 10.0), smoothness=(3.0, 1.0))
    figure = Figure(figsize=(9, 2.6))
    for axis, picture, title in zip(figure.subplots(1, 3), (image, colorize(probs.argmax(0)), colorize(refined)),
                                    ("image", "argmax of the noisy probabilities", "after the dense CRF")):
        axis.imshow(picture, interpolation="nearest")
        axis.set(xticks=[], yticks=[], title=title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def crf_steps(path, repeats=5):
    """Median time of the steps of one dense_crf call on a 500 x 375 image (5 iterations)."""
    image, probs = scene(375, 500)
    probs = np.concatenate([probs, np.full((18,) + probs.shape[1:], 1e-6, np.float32)])
    probs /= probs.sum(0)
    appearance, smoothness = (4.0, 67.0, 3.0), (3.0, 1.0)
    kernels = [("appearance", lambda: appearance_features(image, *appearance[1:]), appearance[0]),
               ("smoothness", lambda: smoothness_features(375, 500, smoothness[1]), smoothness[0])]
    dense_crf(image, probs, iterations=5)  # compile
    times = {"lattices": [], "mean field (5 iterations)": [], "whole call": []}
    for _ in range(repeats):
        start = time.perf_counter()
        operator = numba_operator(kernels, 375, 500, smoothness[1])
        built = time.perf_counter()
        mean_field_numba(probs.reshape(21, -1), False, operator, None, 5, np.uint8)
        times["lattices"].append(built - start)
        times["mean field (5 iterations)"].append(time.perf_counter() - built)
        start = time.perf_counter()
        dense_crf(image, probs, iterations=5, appearance=appearance, smoothness=smoothness)
        times["whole call"].append(time.perf_counter() - start)
    figure = Figure(figsize=(6, 2.2))
    axis = figure.subplots()
    names = list(times)
    axis.barh(names, [1000 * np.median(times[name]) for name in names], color="tab:blue")
    axis.set(xlabel="milliseconds (median of 5)", title="dense_crf on 500 x 375, 21 labels")
    axis.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main():
    OUT.mkdir(exist_ok=True)
    for name, draw in (("fused_loss", fused_loss), ("lattice", lattice), ("crf_effect", crf_effect),
                       ("crf_steps", crf_steps)):
        draw(OUT / f"{name}.png")
        print(f"wrote {OUT / name}.png")


if __name__ == "__main__":
    main()
