"""Segmentation networks by name: `create_model(name, num_classes, **options)` and the MODELS dict.

What every model keeps, and all the engine relies on:
- In eval mode `model(x)` maps an N x 3 x H x W batch to logits N x num_classes x H x W, aligned
  pixel for pixel with the input, for any H, W.
- In training mode a model with an auxiliary head returns {"out": logits, "aux": aux_logits} (both
  at the input's size, torchvision's convention); the trainer adds aux_weight times the aux loss.
- Pretrained parts sit under the attribute `backbone` (see pixseg.models.backbones); everything
  else is the head, which the trainer may give a larger learning rate.
- A builder's keyword-only parameters are its options; configs pass them through unchanged.
- `crf_rnn` is an option of every model rather than a model of its own: the CRF-as-RNN layer goes
  on top of any network, the network's options stay checked against its own builder, and the
  paper's second stage differs from the first by that one option.
"""

from torch import nn

from pixseg.models.backbones import check_options, keyword_options
from pixseg.models.crfrnn import CRFRNN, with_crf_rnn
from pixseg.models.deconvnet import DeconvNet, deconvnet
from pixseg.models.deeplab import deeplab_v1, deeplab_v2
from pixseg.models.deeplabv3 import deeplab_v3, deeplab_v3plus
from pixseg.models.dilation import dilation
from pixseg.models.fcn import FCN, fcn8s, fcn16s, fcn32s
from pixseg.models.pspnet import pspnet
from pixseg.models.segnet import SegNet, segnet
from pixseg.models.unet import UNet, unet
from pixseg.models.upsample import UPSAMPLE_MODES

# Name -> builder(num_classes, *, options...). A builder's keyword-only parameters are its options.
MODELS = {
    "fcn32s": fcn32s,
    "fcn16s": fcn16s,
    "fcn8s": fcn8s,
    "unet": unet,
    "segnet": segnet,
    "deconvnet": deconvnet,
    "deeplab_v1": deeplab_v1,
    "deeplab_v2": deeplab_v2,
    "deeplab_v3": deeplab_v3,
    "deeplab_v3plus": deeplab_v3plus,
    "pspnet": pspnet,
    "dilation": dilation,
}


# Options every model takes on top of its builder's, with their defaults.
COMMON_OPTIONS = {"crf_rnn": False}


def model_options(name: str) -> dict:
    """The options model `name` accepts, with their defaults."""
    return {**keyword_options(MODELS[name]), **COMMON_OPTIONS}


def check_model(name: str, options: dict) -> None:
    """Raise ValueError unless `name` is in MODELS and takes every one of `options`."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of: {', '.join(MODELS)}")
    check_options(model_options(name), options, f"model {name!r}")


def create_model(name: str, num_classes: int, *, crf_rnn=False, **options) -> nn.Module:
    """Build model `name` for `num_classes` classes; see the builder in MODELS for the options.
    crf_rnn: False, True or a dict of CRF-as-RNN options (pixseg.models.crfrnn) puts that layer on top."""
    check_model(name, options)
    model = MODELS[name](num_classes, **options)
    return model if crf_rnn is None or crf_rnn is False else with_crf_rnn(model, num_classes, crf_rnn)


__all__ = ["CRFRNN", "DeconvNet", "FCN", "MODELS", "SegNet", "UNet", "UPSAMPLE_MODES", "check_model", "create_model",
           "model_options"]
