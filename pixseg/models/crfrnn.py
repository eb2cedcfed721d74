"""Any network with a CRF-as-RNN layer on top (`create_model(name, num_classes, crf_rnn=...)`).

The network's input is an image normalised as the data transforms do; the layer needs the image in
colour levels 0..255, so the wrapper undoes the normalisation. The base network is kept whole as
`base`: its weights sit under `base.` in the state dict, and a checkpoint of the base alone loads
into it (the paper's second stage starts from the first stage's network).
"""

import inspect

import torch
from torch import nn

from pixseg.crf.crfrnn import CRFasRNN
from pixseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD

# The paper's iteration counts: 5 while training (10 trained worse), 10 at test.
DEFAULTS = {"iterations": 5, "eval_iterations": 10}


def crf_rnn_options():
    """The options `crf_rnn` takes (CRFasRNN's keyword arguments after num_classes), with the
    wrapper's defaults."""
    parameters = list(inspect.signature(CRFasRNN).parameters.values())[1:]
    return {**{p.name: p.default for p in parameters}, **DEFAULTS}


class CRFRNN(nn.Module):
    """base(x) refined by a CRFasRNN layer given the image x un-normalised to 0..255."""

    def __init__(self, base, num_classes, mean=IMAGENET_MEAN, std=IMAGENET_STD, **crf_options):
        super().__init__()
        self.base = base
        self.crf = CRFasRNN(num_classes, **crf_options)
        # Constants of the input format, not weights: kept out of the state dict.
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        result = self.base(x)
        # Rounding can take a pixel a hair outside 0..255.
        images = ((x.detach() * self.std + self.mean) * 255.0).clamp_(0.0, 255.0)
        if isinstance(result, dict):  # {"out", "aux"} in training: the layer refines "out" only
            return {**result, "out": self.crf(result["out"], images)}
        return self.crf(result, images)


def with_crf_rnn(base, num_classes, options):
    """`base` wrapped in CRFRNN; options: True for the defaults, or a dict of crf_rnn_options()."""
    if options is True:
        options = {}
    if not isinstance(options, dict):
        raise ValueError(f"crf_rnn = {options!r}; expected true, false or a mapping of CRF-RNN options "
                         f"({', '.join(crf_rnn_options())})")
    unknown = sorted(set(options) - set(crf_rnn_options()))
    if unknown:
        raise ValueError(f"unknown crf_rnn option {', '.join(unknown)}; valid options: {', '.join(crf_rnn_options())}")
    return CRFRNN(base, num_classes, **{**DEFAULTS, **options})
