"""Forecasting future segmentations (Luc et al. 2017): the S2S model and its variants, their loss,
autoregressive rollout, the copy-last and optical-flow baselines, training and evaluation."""

from pixseg.forecast.baselines import copy_last, estimate_motion, flow_forecast
from pixseg.forecast.losses import forecast_loss, gradient_difference_loss
from pixseg.forecast.model import MODELS, S2S, create_forecaster, rollout

__all__ = ["MODELS", "S2S", "copy_last", "create_forecaster", "estimate_motion", "flow_forecast", "forecast_loss",
           "gradient_difference_loss", "rollout"]
