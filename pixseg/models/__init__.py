"""Segmentation networks by name: `create_model(name, num_classes, **options)` and the MODELS dict."""

import inspect

from torch import nn

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
    parameters = inspect.signature(MODELS[name]).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY}


def create_model(name: str, num_classes: int, **options) -> nn.Module:
    """Build model `name` for `num_classes` classes; see the builder in MODELS for the options."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of: {', '.join(MODELS)}")
    valid = model_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option {', '.join(unknown)} for model {name!r}; valid options: {', '.join(valid)}")
    return MODELS[name](num_classes, **options)


__all__ = ["FCN", "MODELS", "UPSAMPLE_MODES", "create_model", "model_options"]
