"""Evaluation: run a model over a split, optionally refine with a CRF, score with one confusion matrix."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from pixseg.data.transforms import normalize_image
from pixseg.engine import distributed
from pixseg.engine.precision import autocast
from pixseg.metrics import ConfusionMatrix

# (image uint8 HxWx3, probs float32 CxHxW) -> labels HxW
Refiner = Callable[[np.ndarray, np.ndarray], np.ndarray]


@torch.no_grad()
def predict_probs(model: torch.nn.Module, image: np.ndarray, device, amp: bool = False) -> torch.Tensor:
    """Class probabilities (float32 CxHxW, on `device`) for one uint8 HxWx3 image of any size; with
    `amp` the network runs under autocast (see pixseg.engine.precision)."""
    with autocast(device, amp):
        logits = model(normalize_image(image).to(device))
    return torch.softmax(logits[0].float(), dim=0)


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset, device, *, refine: Refiner | None = None,
             progress: bool = True, desc: str = "eval", amp: bool = False) -> dict:
    """Score `model` on every (image, label) of `dataset`; returns ConfusionMatrix.compute() plus
    num_images. With `refine`, each image's probabilities go through it (e.g. a dense CRF).

    Under torchrun every process must call it: each scores its own share of the images and the
    integer counts are summed across processes, so each gets the whole split's scores, exactly
    those of one process scoring every image."""
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(dataset.num_classes, device=device)
    for index in tqdm(distributed.shard(len(dataset)), desc=desc, unit="img",
                      disable=not progress or not distributed.is_main(), dynamic_ncols=True):
        image, label = dataset[index]
        probs = predict_probs(model, image, device, amp)
        if refine is None:
            prediction = probs.argmax(0)
        else:
            prediction = torch.as_tensor(refine(image, probs.cpu().numpy()).astype(np.int64))
        matrix.update(prediction.to(device), torch.as_tensor(np.asarray(label, dtype=np.int64), device=device))
    distributed.sum_across(matrix.matrix)
    model.train(was_training)
    return {**matrix.compute(), "num_images": len(dataset)}
