"""Segmentation networks by name: `create_model(name, num_classes, **options)` and the MODELS dict.

`crf_rnn` is an option of every model rather than a model of its own: the CRF-as-RNN layer goes on
top of any network, the network's options stay checked against its own builder, and the paper's
second stage differs from the first by that one option.
"""

from torch import nn

from pixseg.models.backbones import check_options, keyword_options
from pixseg.models.crfrnn import CRFRNN, with_crf_rnn
from pixseg.models.deeplab import deeplab_v1, deeplab_v2
from pixseg.models.deeplabv3 import deeplab_v3, deeplab_v3plus
from pixseg.models.dilation import dilation
from pixseg.models.fcn import FCN, fcn8s, fcn16s, fcn32s
from pixseg.models.pspnet import pspnet
from pixseg.models.upsample import UPSAMPLE_MODES

# Name -> builder(num_classes, *, options...). A builder's keyword-only parameters are its options.
MODELS = {
    "fcn32s": fcn32s,
    "fcn16s": fcn16s,
    "fcn8s": fcn8s,
    "deeplab_v1": deeplab_v1,
    "deeplab_v2": deeplab_v2,
    "deeplab_v3": deeplab_v3,
    "deeplab_v3plus": deeplab_v3plus,
    "pspnet": pspnet,
    "dilation": dilation,
}


def model_options(name: str) -> dict:
    """The options model `name` accepts, with their defaults."""
    return keyword_options(MODELS[name])


def create_model(name: str, num_classes: int, *, crf_rnn=False, **options) -> nn.Module:
    """Build model `name` for `num_classes` classes; see the builder in MODELS for the options.
    crf_rnn: False, True or a dict of CRF-as-RNN options (pixseg.models.crfrnn) puts that layer on top."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of: {', '.join(MODELS)}")
    check_options(MODELS[name], options, f"model {name!r}")
    model = MODELS[name](num_classes, **options)
    return model if crf_rnn is None or crf_rnn is False else with_crf_rnn(model, num_classes, crf_rnn)


__all__ = ["CRFRNN", "FCN", "MODELS", "UPSAMPLE_MODES", "create_model", "model_options"]
