"""Segmentation networks by name: `create_model(name, num_classes, **options)` and the MODELS dict."""

from torch import nn

from pixseg.models.backbones import check_options, keyword_options
from pixseg.models.fcn import FCN, fcn8s, fcn16s, fcn32s
from pixseg.models.upsample import UPSAMPLE_MODES

# Name -> builder(num_classes, *, options...). A builder's keyword-only parameters are its options.
MODELS = {
    "fcn32s": fcn32s,
    "fcn16s": fcn16s,
    "fcn8s": fcn8s,
}


def model_options(name: str) -> dict:
    """The options model `name` accepts, with their defaults."""
    return keyword_options(MODELS[name])


def create_model(name: str, num_classes: int, **options) -> nn.Module:
    """Build model `name` for `num_classes` classes; see the builder in MODELS for the options."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of: {', '.join(MODELS)}")
    check_options(MODELS[name], options, f"model {name!r}")
    return MODELS[name](num_classes, **options)


__all__ = ["FCN", "MODELS", "UPSAMPLE_MODES", "create_model", "model_options"]
