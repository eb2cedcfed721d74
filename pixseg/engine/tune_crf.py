"""Choose dense-CRF parameters on held-out training images: the named presets plus a random search."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from pixseg.engine.evaluate import predict_probs
from pixseg.metrics import ConfusionMatrix

# Log-uniform ranges for the random search, around the published settings (docs/method/crf.md).
SEARCH_RANGES = {"w1": (2.0, 12.0), "theta_a": (10.0, 120.0), "theta_b": (2.0, 15.0), "theta_g": (1.0, 5.0)}
SMOOTHNESS_WEIGHT = 3.0


def candidate_settings(trials: int, iterations: int, seed: int = 0) -> list[dict]:
    """The presets first (so tuning never does worse than them on held-out data), then random draws."""
    from pixseg.crf import CRF_PRESETS

    candidates = [{**preset, "iterations": iterations} for preset in CRF_PRESETS.values()]
    rng = np.random.default_rng(seed)
    for _ in range(trials):
        draw = {k: float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) for k, (lo, hi) in SEARCH_RANGES.items()}
        candidates.append({"iterations": iterations,
                           "appearance": (round(draw["w1"], 2), round(draw["theta_a"], 1), round(draw["theta_b"], 2)),
                           "smoothness": (SMOOTHNESS_WEIGHT, round(draw["theta_g"], 2))})
    return candidates


def tune_crf(model, dataset, device, candidates: list[dict], progress: bool = True, inference=None) -> dict:
    """Score every candidate on every image of `dataset` (each image's probabilities computed
    once, as `inference` says; whole images when None) and return {"best": settings, "best_miou": .., "no_crf_miou": .., "trials": [...]}."""
    from pixseg.crf import dense_crf

    if len(dataset) == 0:
        raise ValueError("no held-out images to tune the CRF on (set data.holdout > 0 when training)")
    matrices = [ConfusionMatrix(dataset.num_classes) for _ in candidates]
    plain = ConfusionMatrix(dataset.num_classes)
    model.eval()
    for index in tqdm(range(len(dataset)), desc=f"tune crf ({len(candidates)} settings)", unit="img",
                      disable=not progress, dynamic_ncols=True):
        image, label = dataset[index]
        label = torch.as_tensor(np.asarray(label, dtype=np.int64))
        probs = predict_probs(model, image, device, inference).cpu().numpy()
        plain.update(torch.as_tensor(probs.argmax(0)), label)
        for settings, matrix in zip(candidates, matrices):
            labels, _ = dense_crf(image, probs, **settings)
            matrix.update(torch.as_tensor(np.asarray(labels, dtype=np.int64)), label)
    trials = [{"settings": settings, "miou": matrix.compute()["miou"]}
              for settings, matrix in zip(candidates, matrices)]
    best = max(trials, key=lambda t: t["miou"])
    return {"best": best["settings"], "best_miou": best["miou"], "no_crf_miou": plain.compute()["miou"],
            "num_images": len(dataset), "trials": trials}
