"""Evaluation: run a model over a split, optionally refine with a CRF, score with one confusion matrix."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from pixseg.data.transforms import normalize_image
from pixseg.engine import distributed
from pixseg.engine.inference import InferenceConfig, infer
from pixseg.engine.precision import autocast
from pixseg.metrics import ConfusionMatrix

# (image uint8 HxWx3, probs float32 CxHxW) -> labels HxW
Refiner = Callable[[np.ndarray, np.ndarray], np.ndarray]


@torch.no_grad()
def predict_batch(model: torch.nn.Module, images, device, inference: InferenceConfig | None = None,
                  amp: bool = False) -> torch.Tensor:
    """Class probabilities (float32 N x C x H x W, on `device`) for uint8 H x W x 3 images of one
    size; with `amp` the network runs under autocast (see pixseg.engine.precision)."""
    batch = torch.cat([normalize_image(image) for image in images]).to(device)
    with autocast(device, amp):
        logits = infer(model, batch, inference)
    return torch.softmax(logits.float(), dim=1)


def predict_probs(model: torch.nn.Module, image: np.ndarray, device, inference: InferenceConfig | None = None,
                  amp: bool = False) -> torch.Tensor:
    """Class probabilities (float32 C x H x W, on `device`) for one uint8 H x W x 3 image of any size."""
    return predict_batch(model, [image], device, inference, amp)[0]


def same_size_groups(samples: list) -> list[list]:
    """`samples` ((image, label) pairs) grouped by image size, in order of first appearance."""
    groups: dict[tuple, list] = {}
    for sample in samples:
        groups.setdefault(np.shape(sample[0])[:2], []).append(sample)
    return list(groups.values())


@torch.no_grad()
def confusion_matrix(model: torch.nn.Module, dataset, device, *, refine: Refiner | None = None,
                     inference: InferenceConfig | None = None, progress: bool = True, desc: str = "eval",
                     amp: bool = False) -> ConfusionMatrix:
    """The confusion matrix of `model` on every (image, label) of `dataset`. With `refine`, each
    image's probabilities go through it (e.g. a dense CRF).

    Under torchrun every process must call it: each scores its own share of the images and the
    integer counts are summed across processes, so each gets the whole split's matrix, exactly
    that of one process scoring every image.

    Images are read by a DataLoader (`inference.batch_size`, `inference.workers`) and each batch is
    split by image size: images of one size go through the model together, never padded to another
    size, so a prediction does not depend on which images share its batch (padding would change
    what a network sees near the border)."""
    inference = inference or InferenceConfig()
    was_training = model.training
    model.eval()
    matrix = ConfusionMatrix(dataset.num_classes, device=device)
    share = Subset(dataset, distributed.shard(len(dataset)))
    # A generator of its own: a DataLoader draws its workers' base seed from the global one
    # otherwise, and validation would change the random stream of the training around it.
    loader = DataLoader(share, batch_size=inference.batch_size, num_workers=inference.workers, collate_fn=list,
                        generator=torch.Generator().manual_seed(0))
    with tqdm(total=len(share), desc=desc, unit="img", disable=not progress or not distributed.is_main(),
              dynamic_ncols=True) as bar:
        for samples in loader:
            for group in same_size_groups(samples):
                images = [image for image, _ in group]
                probs = predict_batch(model, images, device, inference, amp)
                for image, (_, label), image_probs in zip(images, group, probs):
                    if refine is None:
                        prediction = image_probs.argmax(0)
                    else:
                        prediction = torch.as_tensor(refine(image, image_probs.cpu().numpy()).astype(np.int64))
                    matrix.update(prediction.to(device),
                                  torch.as_tensor(np.asarray(label, dtype=np.int64), device=device))
            bar.update(len(samples))
    distributed.sum_across(matrix.matrix)
    model.train(was_training)
    return matrix


def evaluate(model: torch.nn.Module, dataset, device, *, refine: Refiner | None = None,
             inference: InferenceConfig | None = None, progress: bool = True, desc: str = "eval",
             amp: bool = False) -> dict:
    """Score `model` on `dataset` (see `confusion_matrix`); returns ConfusionMatrix.compute() plus num_images."""
    matrix = confusion_matrix(model, dataset, device, refine=refine, inference=inference, progress=progress,
                              desc=desc, amp=amp)
    return {**matrix.compute(), "num_images": len(dataset)}
