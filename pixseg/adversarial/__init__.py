"""Adversarial training for segmentation (Luc et al., 2016): a discriminator on (image, label map)
pairs and the hybrid loss that trains a segmentation network against it. Switched on by the
training config's `adversarial` section; `pixseg adversarial-study` measures what it changes."""

from pixseg.adversarial.discriminators import (DISCRIMINATORS, Discriminator, one_hot, product_input,
                                               scaled_ground_truth)
from pixseg.adversarial.training import AdversarialTraining

__all__ = ["DISCRIMINATORS", "AdversarialTraining", "Discriminator", "one_hot", "product_input",
           "scaled_ground_truth"]
