"""The hybrid objective: the segmentation loss plus lambda times an adversarial term, with the
discriminator and the segmentation network updated in alternation, each by its own optimiser.

Per training step:
1. segmenter (`hybrid_loss`, then its own optimiser's step): loss + lambda * BCE(a(x, s(x)), real),
   the non-saturating form of -lambda * ln(1 - a(x, s(x))): it keeps a useful gradient while the
   discriminator wins easily, which it does early. The discriminator's weights are frozen here;
2. discriminator (`discriminator_step`): BCE(a(x, y), real) + BCE(a(x, s(x)), fake) on the same
   batch, with s(x) detached, so the segmenter's weights receive nothing; only the
   discriminator's optimiser steps.
The discriminator learns from the first step; the term enters the segmenter's loss once the step
passes `start_after`, so the segmenter is not steered by a discriminator that knows nothing yet.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pixseg.adversarial.discriminators import Discriminator, one_hot, scaled_ground_truth


class AdversarialTraining:
    """The discriminator of a training run with its optimiser and learning-rate schedule.

    `settings`: the config's adversarial section, complete (engine/config.py fills the defaults);
    `optimizer`: a function parameters -> torch optimiser (the section's `optim`); `schedule`: step ->
    learning-rate factor, applied per step like the segmenter's.
    """

    def __init__(self, settings: dict, num_classes: int, device, optimizer, schedule, ignore_index: int = 255):
        self.weight = settings["lambda"]
        self.start_after = settings["start_after"]
        self.tau = settings["tau"] if settings["discriminator"] == "scaling" else None
        self.ignore_index = ignore_index
        self.discriminator = Discriminator(num_classes, settings["discriminator"], settings["channels"],
                                           settings["downsample"]).to(device)
        self.optimizer = optimizer(self.discriminator.parameters())
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        # What hybrid_loss saw since the last discriminator step: the batch parts, and the values to log.
        self._parts: list[tuple] = []
        self._logged: dict[str, list[float]] = {"seg_loss": [], "adv_loss": [], "d_loss": []}

    def _predicted(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # Void pixels are zero in the ground-truth maps: the same in the predicted ones, or the
        # discriminator could tell them apart there.
        return torch.softmax(logits.float(), 1) * (labels != self.ignore_index).unsqueeze(1)

    def _real(self, labels: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        if self.tau is None:
            return one_hot(labels, probs.shape[1], self.ignore_index)
        return scaled_ground_truth(labels, probs, self.tau, self.ignore_index)

    def segmenter_term(self, step: int, images: torch.Tensor, logits: torch.Tensor,
                       labels: torch.Tensor) -> torch.Tensor | None:
        """The adversarial term (before lambda) of the segmenter's loss at `step`, differentiable
        in `logits` only; None up to start_after."""
        if step <= self.start_after:
            return None
        self.discriminator.requires_grad_(False)
        try:
            verdict = self.discriminator(images, self._predicted(logits, labels))
        finally:
            self.discriminator.requires_grad_(True)
        return F.binary_cross_entropy_with_logits(verdict, torch.ones_like(verdict))

    def hybrid_loss(self, step: int, images: torch.Tensor, outputs, labels: torch.Tensor,
                    loss: torch.Tensor) -> torch.Tensor:
        """The segmenter's `loss` on a batch (or a part of one, when batches are accumulated) plus
        lambda times the adversarial term on its main output (`outputs`: logits, or {"out", "aux"}).
        The batch is kept, with its predictions detached, for the next `discriminator_step`."""
        logits = outputs["out"] if isinstance(outputs, dict) else outputs
        self._parts.append((images, logits.detach(), labels))
        self._logged["seg_loss"].append(loss.item())
        term = self.segmenter_term(step, images, logits, labels)
        if term is None:
            return loss
        self._logged["adv_loss"].append(term.item())
        return loss + self.weight * term

    def discriminator_step(self) -> dict:
        """One update of the discriminator on the ground truth and predictions of the parts that
        `hybrid_loss` kept since the last update, their gradients accumulated. Returns what the
        log records: the segmentation loss and adversarial term of those parts, the
        discriminator's loss and its accuracy on each kind of map."""
        parts, self._parts = self._parts, []
        self.optimizer.zero_grad(set_to_none=True)
        right_real = right_fake = count = 0
        for images, logits, labels in parts:
            probs = self._predicted(logits, labels)
            real = self.discriminator(images, self._real(labels, probs))
            fake = self.discriminator(images, probs)
            loss = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                    + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
            (loss / len(parts)).backward()
            self._logged["d_loss"].append(loss.item())
            right_real += int((real > 0).sum())
            right_fake += int((fake < 0).sum())
            count += len(real)
        self.optimizer.step()
        self.scheduler.step()
        logged = {key: sum(values) / len(values) for key, values in self._logged.items() if values}
        self._logged = {key: [] for key in self._logged}
        return {**logged, "d_acc_real": right_real / count, "d_acc_fake": right_fake / count}

    def parameters_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.discriminator.parameters())

    def state_dict(self) -> dict:
        return {"discriminator": self.discriminator.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
