"""Evaluation: run a model over a split, optionally refine with a CRF, score with one confusion matrix."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from pixseg.data.transforms import normalize_image
from pixseg.metrics import ConfusionMatrix

# (image uint8 HxWx3, probs float32 CxHxW) -> labels HxW
Refiner = Callable[[np.ndarray, np.ndarray], np.ndarray]


@torch.no_grad()
def predict_probs(model: torch.nn.Module, image: np.ndarray, device) -> torch.Tensor:
    """Class probabilities (float32 CxHxW, on `device`) for one uint8 HxWx3 image of any size."""
    logits = model(normalize_image(image).to(device))
    return torch.softmax(logits[0].float(), dim=0)


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset, device, *, refine: Refiner | None = None,
             progress: bool = True, desc: str = "eval") -> dict:
    """Score `model` on every (image, label) of `dataset`; returns ConfusionMatrix.compute() plus
    num_images. With `refine`, each image's probabilities go through it (e.g. a dense CRF)."""
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(dataset.num_classes, device=device)
    for index in tqdm(range(len(dataset)), desc=desc, unit="img", disable=not progress,
                      dynamic_ncols=True):
        image, label = dataset[index]
        probs = predict_probs(model, image, device)
        if refine is None:
            prediction = probs.argmax(0)
        else:
            prediction = torch.as_tensor(refine(image, probs.cpu().numpy()).astype(np.int64))
        matrix.update(prediction.to(device), torch.as_tensor(np.asarray(label, dtype=np.int64), device=device))
    model.train(was_training)
    return {**matrix.compute(), "num_images": len(dataset)}
