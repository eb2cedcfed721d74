"""Training losses on segmentation logits: cross-entropy, positive-sharing, fused, Dice and focal.

Every loss is an ``nn.Module`` called as ``loss(logits, target)`` with logits ``N x C x H x W`` (any
float dtype; float16 / bfloat16 are computed in float32) and target ``N x H x W`` integer labels in
``0..C-1`` or ``ignore_index`` (void, 255). Class 0 is background.

Two normalisations, chosen by ``reduction=``:

- ``"mean"`` (default, what PyTorch users expect): the summed pixel losses divided by the number of
  valid (non-void) pixels. With class weights this still divides by the pixel count, not by the sum
  of the weights as ``torch.nn.functional.cross_entropy`` does, so weights scale the loss.
- ``"batch"`` (the paper's, docs/method/losses.md): the summed pixel losses divided by the batch size N.

A batch with only void pixels gives a loss of 0 whose gradient is 0, never NaN.

``create_loss`` builds a loss from a config entry such as ``{"name": "fused", "ws": 0.5, "wp": 0.5}``.
Class weights given as ``"inverse_frequency"`` or ``"median_frequency"`` need label statistics of the
training set, which the caller computes and passes as ``class_weights=``::

    method = weight_method(spec)            # None, "inverse_frequency" or "median_frequency"
    if method:
        freq = pixseg.class_weights.class_frequencies(train_set, num_classes)
        class_weights = torch.as_tensor(pixseg.class_weights.METHODS[method](freq))
    loss = create_loss(spec, num_classes, class_weights=class_weights)
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

REDUCTIONS = ("mean", "batch")
WEIGHT_METHODS = ("inverse_frequency", "median_frequency")


def _check_weight(weight, num_classes=None) -> torch.Tensor:
    """Class weights as a 1-D float tensor: finite, non-negative, not all zero, C long if C is known."""
    try:
        weight = torch.as_tensor(weight, dtype=torch.float64).detach()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"class weights must be a list of numbers, got {weight!r}") from None
    if weight.dim() != 1:
        raise ValueError(f"class weights must be a list of numbers, got shape {tuple(weight.shape)}")
    if num_classes is not None and len(weight) != num_classes:
        raise ValueError(f"class weights have {len(weight)} entries, expected one per class ({num_classes})")
    if not torch.isfinite(weight).all() or (weight < 0).any():
        raise ValueError(f"class weights must be finite and >= 0, got {weight.tolist()}")
    if not (weight > 0).any():
        raise ValueError("class weights are all zero: the loss would ignore every pixel")
    return weight.float()


def _check_non_negative(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class _PixelLoss(nn.Module):
    """Shared argument checks, input validation and the two normalisations."""

    def __init__(self, ignore_index: int = 255, reduction: str = "mean", weight=None):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise ValueError(f"ignore_index must be an integer, got {ignore_index!r}")
        self.ignore_index = ignore_index
        self.reduction = reduction
        # A buffer, so that .to(device) moves the weights with the module.
        self.register_buffer("weight", None if weight is None else _check_weight(weight))

    def _prepare(self, logits: torch.Tensor, target: torch.Tensor, min_classes: int = 1):
        """Validate the inputs; returns float logits (float16 / bfloat16 upcast), the int64 target, the
        labels with void replaced by 0 (safe to index with) and the mask of valid pixels."""
        if not isinstance(logits, torch.Tensor) or logits.dim() != 4 or not logits.is_floating_point():
            raise ValueError(f"logits must be a float tensor N x C x H x W, got {_describe(logits)}")
        if not isinstance(target, torch.Tensor) or target.dim() != 3 or target.is_floating_point():
            raise ValueError(f"target must be an integer tensor N x H x W, got {_describe(target)}")
        n, c, h, w = logits.shape
        if target.shape != (n, h, w):
            raise ValueError(f"target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}")
        if c < min_classes:
            raise ValueError(f"{type(self).__name__} needs at least {min_classes} classes, logits have {c}")
        if self.weight is not None and len(self.weight) != c:
            raise ValueError(f"class weights have {len(self.weight)} entries but logits have {c} classes")
        target = target.long()
        valid = target != self.ignore_index
        labels = torch.where(valid, target, 0)
        low, high = labels.aminmax() if labels.numel() else (0, 0)
        if low < 0 or high >= c:
            values = torch.unique(labels[(labels < 0) | (labels >= c)])[:10].tolist()
            raise ValueError(f"target labels {values} are outside 0..{c - 1} and not the ignore index "
                             f"{self.ignore_index}")
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        return logits, target, labels, valid

    def _reduce(self, total: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if self.reduction == "batch":
            return total / valid.shape[0]
        return total / valid.sum().clamp_min(1)

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, reduction={self.reduction!r}"


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


class CrossEntropyLoss(_PixelLoss):
    """Softmax cross-entropy, optionally class-weighted (w_c multiplies the loss of pixels of class c)."""

    def __init__(self, weight=None, ignore_index: int = 255, reduction: str = "mean"):
        super().__init__(ignore_index, reduction, weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target, _, valid = self._prepare(logits, target)
        weight = None if self.weight is None else self.weight.to(logits.dtype)
        total = F.cross_entropy(logits, target, weight=weight, ignore_index=self.ignore_index, reduction="sum")
        return self._reduce(total, valid)


class _FusedSum(torch.autograd.Function):
    """Summed fused loss over valid pixels, with the closed-form gradient of docs/method/losses.md.

    Pixel loss: ws (lse - s_y) + wp (lse - s_0) for background, ws (lse - s_y) + wp (lse - lse1) for
    objects, with lse = logsumexp(s_0..C) and lse1 = logsumexp(s_1..C): log p_y = s_y - lse and
    log(1 - p_0) = lse1 - lse. Only one C x H x W tensor is allocated: the forward pass fills it with the
    terms exp(s_l - max_l s_l) of lse1 (l >= 1) and the backward pass turns it into the gradient in place,
    so backward can run once per forward. Autograd through the same expressions keeps several C x H x W
    intermediates and costs about four times as much (CPU).
    """

    @staticmethod
    def forward(ctx, logits, labels, valid, ws, wp):
        objects = labels > 0
        s0 = logits[:, 0]
        top = logits[:, 1:].amax(dim=1, keepdim=True)
        buffer = torch.empty_like(logits)
        terms = torch.sub(logits[:, 1:], top, out=buffer[:, 1:]).exp_()
        sum1 = terms.sum(dim=1)
        lse1 = sum1.log().add_(top.squeeze(1))
        lse = torch.logaddexp(s0, lse1)
        s_y = logits.gather(1, labels.unsqueeze(1)).squeeze(1)
        # Differences from lse, never below zero in floating point (lse >= lse1 >= s_y and lse >= s0 as
        # computed): (ws + wp) lse - ws s_y - wp lse1 lost that and went negative by an ulp of lse.
        pixel = ws * (lse - s_y) + wp * (lse - torch.where(objects, lse1, s0))
        ctx.save_for_backward(buffer, sum1, labels, valid, objects, s0, lse1, lse)
        ctx.weights = (ws, wp)
        return torch.where(valid, pixel, 0).sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        try:
            grad, sum1, labels, valid, objects, s0, lse1, lse = ctx.saved_tensors
        except RuntimeError:  # autograd's version check: the buffer already became a gradient
            raise RuntimeError("FusedLoss computes its gradient in place of its forward buffer, so backward can "
                               "run only once per forward (retain_graph=True is not supported)") from None
        ws, wp = ctx.weights
        p0 = torch.exp(s0 - lse)
        not_p0 = torch.exp(lse1 - lse)  # 1 - p_0 without cancellation when p_0 is close to 1
        # For l >= 1, p_l = q_l (1 - p_0) with q_l = exp(s_l - lse1) = terms_l / sum1, which turns the
        # closed form into dL/ds_l = q_l * scale: (ws + wp)(1 - p_0) for background, ws (1 - p_0) - wp p_0
        # for objects; objects also get the softmax term's -ws at their true class.
        scale = torch.where(objects, ws * not_p0 - wp * p0, (ws + wp) * not_p0)
        first = torch.where(objects, (ws + wp) * p0, -(ws + wp) * not_p0)
        pixel_grad = torch.where(valid, grad_output, 0)
        grad[:, 1:].mul_((scale * pixel_grad / sum1).unsqueeze(1))
        torch.mul(first, pixel_grad, out=grad[:, 0])
        grad.scatter_add_(1, labels.unsqueeze(1), (-ws * pixel_grad * objects).unsqueeze(1))
        return grad, None, None, None, None


class FusedLoss(_PixelLoss):
    """The paper's fused loss: ws * softmax cross-entropy + wp * positive-sharing (see PositiveSharingLoss).

    The gradient is the paper's closed form, computed in place of the forward pass's buffer: one
    backward per forward (``retain_graph=True`` raises), and no double backward.
    """

    def __init__(self, ws: float = 0.5, wp: float = 0.5, ignore_index: int = 255, reduction: str = "mean"):
        super().__init__(ignore_index, reduction)
        self.ws = _check_non_negative("ws", ws)
        self.wp = _check_non_negative("wp", wp)
        if self.ws == 0 and self.wp == 0:
            raise ValueError("ws and wp are both 0: the fused loss would be identically zero")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, _, labels, valid = self._prepare(logits, target, min_classes=2)
        return self._reduce(_FusedSum.apply(logits, labels, valid, self.ws, self.wp), valid)

    def extra_repr(self) -> str:
        return f"ws={self.ws}, wp={self.wp}, {super().extra_repr()}"


class PositiveSharingLoss(FusedLoss):
    """Foreground-vs-background loss: -log p_0 on background pixels, -log(1 - p_0) on object pixels.

    log(1 - p_0) is computed as logsumexp(s_1..C) - logsumexp(s_0..C), never as log(1 - p_0), so the loss
    stays finite for any finite logits. It is FusedLoss with ws = 0, wp = 1 (one backward per forward).
    """

    def __init__(self, ignore_index: int = 255, reduction: str = "mean"):
        super().__init__(ws=0.0, wp=1.0, ignore_index=ignore_index, reduction=reduction)

    def extra_repr(self) -> str:
        return _PixelLoss.extra_repr(self)


class DiceLoss(_PixelLoss):
    """Soft multi-class Dice loss, squares in the denominator, void pixels excluded.

    For class c over a set of pixels: d_c = 1 - (2 sum p_c y_c + smooth) / (sum y_c^2 + sum p_c^2 + smooth),
    with p the softmax and y the one-hot target. The loss averages d_c over the classes present in the
    target or in the prediction (the arg-max) of that set: a class that is neither contributes nothing,
    while a class predicted but absent from the target is still penalised (with smooth > 0 its term pushes
    its probabilities down). The set of pixels is the whole batch for ``reduction="mean"``; for ``"batch"``
    each image is its own set and the per-image losses are summed and divided by N.
    """

    def __init__(self, smooth: float = 1.0, ignore_index: int = 255, reduction: str = "mean"):
        super().__init__(ignore_index, reduction)
        self.smooth = _check_non_negative("smooth", smooth)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, _, labels, valid = self._prepare(logits, target)
        num_classes = logits.shape[1]
        mask = valid.unsqueeze(1).to(logits.dtype)
        probs = torch.softmax(logits, dim=1) * mask
        truth = F.one_hot(labels, num_classes).permute(0, 3, 1, 2).to(logits.dtype) * mask
        predicted = F.one_hot(logits.argmax(dim=1), num_classes).permute(0, 3, 1, 2).to(logits.dtype) * mask
        dims = (0, 2, 3) if self.reduction == "mean" else (2, 3)
        intersection = (probs * truth).sum(dims)
        denominator = truth.sum(dims) + (probs * probs).sum(dims) + self.smooth
        present = (truth.sum(dims) > 0) | (predicted.sum(dims) > 0)
        # Without smoothing an all-void set has a zero denominator; it is masked out, but 0/0 would still
        # put NaN into the gradient.
        safe = torch.where(present, denominator, 1)
        dice = torch.where(present, 1 - (2 * intersection + self.smooth) / safe, 0)
        per_set = dice.sum(-1) / present.sum(-1).clamp_min(1)
        if self.reduction == "mean":
            return per_set
        return per_set.sum() / logits.shape[0]

    def extra_repr(self) -> str:
        return f"smooth={self.smooth}, {super().extra_repr()}"


class FocalLoss(_PixelLoss):
    """Focal loss (Lin et al. 2017): -w_y (1 - p_y)^gamma log p_y; gamma = 0 is (weighted) cross-entropy."""

    def __init__(self, gamma: float = 2.0, weight=None, ignore_index: int = 255, reduction: str = "mean"):
        super().__init__(ignore_index, reduction, weight)
        self.gamma = _check_non_negative("gamma", gamma)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, _, labels, valid = self._prepare(logits, target)
        log_p = torch.log_softmax(logits, dim=1).gather(1, labels.unsqueeze(1)).squeeze(1)
        # 1 - p_y via expm1 keeps precision near p_y = 1; the floor keeps the power's gradient finite there.
        focus = (-torch.expm1(log_p)).clamp_min(torch.finfo(log_p.dtype).tiny) ** self.gamma
        pixel = -focus * log_p
        if self.weight is not None:
            pixel = pixel * self.weight.to(logits.dtype)[labels]
        return self._reduce(torch.where(valid, pixel, 0).sum(), valid)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, {super().extra_repr()}"


_COMMON = {"ignore_index", "reduction"}
# name -> (class, accepted options besides the common ones, defaults the name implies)
_LOSSES = {
    "ce": (CrossEntropyLoss, {"weight"}, {}),
    "weighted_ce": (CrossEntropyLoss, {"weight"}, {"weight": "median_frequency"}),
    "positive_sharing": (PositiveSharingLoss, set(), {}),
    "fused": (FusedLoss, {"ws", "wp"}, {}),
    "dice": (DiceLoss, {"smooth"}, {}),
    "focal": (FocalLoss, {"gamma", "weight"}, {}),
}


def _options(spec) -> tuple[str, dict]:
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"loss spec must be a name or a mapping with a 'name' key, got {spec!r}")
    options = dict(spec)
    name = options.pop("name")
    if name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(_LOSSES)}")
    _, accepted, defaults = _LOSSES[name]
    unknown = sorted(set(options) - accepted - _COMMON)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for loss {name!r}; "
                         f"expected some of {', '.join(sorted(accepted | _COMMON))}")
    return name, {**defaults, **options}


def weight_method(spec) -> str | None:
    """The statistics-based weighting a loss spec asks for ("inverse_frequency" / "median_frequency"), or None."""
    weight = _options(spec)[1].get("weight")
    return weight if isinstance(weight, str) else None


def create_loss(spec, num_classes: int, class_weights=None) -> nn.Module:
    """Build a loss from a name or a mapping like ``{"name": "fused", "ws": 0.5, "wp": 0.5}``.

    Names: ce, weighted_ce (ce whose weight defaults to "median_frequency"), positive_sharing, fused, dice,
    focal. ``weight`` is a list with one number per class, or "inverse_frequency" / "median_frequency",
    in which case ``class_weights`` (computed by the caller with pixseg.class_weights) supplies the values.
    """
    name, options = _options(spec)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    weight = options.get("weight")
    if isinstance(weight, str):
        if weight not in WEIGHT_METHODS:
            raise ValueError(f"unknown class weighting {weight!r} for loss {name!r}; expected a list of "
                             f"{num_classes} numbers or one of {', '.join(WEIGHT_METHODS)}")
        if class_weights is None:
            raise ValueError(f"loss {name!r} uses weight {weight!r}: pass class_weights= computed with "
                             f"pixseg.class_weights.{weight} from the training labels")
        options["weight"] = class_weights
    if options.get("weight") is not None:
        options["weight"] = _check_weight(options["weight"], num_classes)
    return _LOSSES[name][0](**options)
