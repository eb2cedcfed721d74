import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from pixseg.losses import (
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    FusedLoss,
    PositiveSharingLoss,
    create_loss,
    weight_method,
)

VOID = 255
LOSSES = {
    "ce": lambda r: CrossEntropyLoss(reduction=r),
    "weighted_ce": lambda r: CrossEntropyLoss(weight=[0.5, 2.0, 1.0, 0.0], reduction=r),
    "positive_sharing": lambda r: PositiveSharingLoss(reduction=r),
    "fused": lambda r: FusedLoss(ws=0.3, wp=0.7, reduction=r),
    "dice": lambda r: DiceLoss(reduction=r),
    "focal": lambda r: FocalLoss(gamma=2, reduction=r),
}


def random_batch(n=2, c=4, h=5, w=6, dtype=torch.float64, void_fraction=0.2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(n, c, h, w, generator=generator)).to(dtype)
    target = torch.randint(0, c, (n, h, w), generator=generator)
    target[torch.rand(n, h, w, generator=generator) < void_fraction] = VOID
    return logits.requires_grad_(), target


def paper_gradient(logits, target, ws, wp):
    """dL/ds from docs/method/losses.md (the paper's closed form, normalised by the batch size N)."""
    p = torch.softmax(logits.detach(), dim=1)
    valid = (target != VOID).unsqueeze(1)
    y = torch.where(target == VOID, 0, target).unsqueeze(1)
    background, objects = valid & (y == 0), valid & (y >= 1)
    onehot = F.one_hot(y.squeeze(1), logits.shape[1]).permute(0, 3, 1, 2).bool()
    p0 = p[:, :1]
    grad = (ws + wp * background) * p - ws * (onehot & objects) - wp * objects * p0 * p / (1 - p0)
    grad[:, :1] = (ws + wp) * (background * (p0 - 1) + objects * p0)
    return grad * valid / logits.shape[0]


@pytest.mark.parametrize("ws, wp", [(0.5, 0.5), (0.3, 0.9), (1.0, 0.0), (0.0, 1.0), (2.0, 0.25)])
def test_fused_gradient_equals_the_papers_closed_form(ws, wp):
    logits, target = random_batch(n=3, c=5, h=7, w=6)
    FusedLoss(ws, wp, reduction="batch")(logits, target).backward()
    torch.testing.assert_close(logits.grad, paper_gradient(logits, target, ws, wp), rtol=0, atol=1e-6)


@pytest.mark.parametrize("wp", [0.25, 0.5])
def test_fused_with_weights_summing_to_one_is_cross_entropy_with_the_object_label_term_down_weighted(wp):
    # -log p_y = -log(1 - p_0) - log q_y on an object pixel, so with Ws + Wp = 1 the fused loss keeps the
    # cross-entropy's background-vs-object part and weighs only the which-object part, -log q_y, by Ws:
    # its gradient differs from the cross-entropy's by Wp (one_hot(y) - q) on the object labels of object
    # pixels, and nowhere else (not on s_0, not on background pixels).
    logits, target = random_batch(n=3, c=5, h=7, w=6)
    FusedLoss(1 - wp, wp, reduction="batch")(logits, target).backward()
    fused, logits.grad = logits.grad, None
    CrossEntropyLoss(reduction="batch")(logits, target).backward()
    objects = ((target != VOID) & (target > 0)).unsqueeze(1)
    q = torch.softmax(logits.detach()[:, 1:], dim=1)
    onehot = F.one_hot(torch.where(objects.squeeze(1), target - 1, 0), 4).permute(0, 3, 1, 2)
    expected = torch.zeros_like(fused)
    expected[:, 1:] = wp * (onehot - q) * objects / logits.shape[0]
    torch.testing.assert_close(fused - logits.grad, expected, rtol=0, atol=1e-9)


def central_differences(f, x, step=1e-6):
    """Numerical gradient of the scalar function f at x (float64)."""
    grad = torch.zeros_like(x)
    point = x.detach().clone()
    for i in range(point.numel()):
        value = point.view(-1)[i].item()
        point.view(-1)[i] = value + step
        up = f(point).item()
        point.view(-1)[i] = value - step
        down = f(point).item()
        point.view(-1)[i] = value
        grad.view(-1)[i] = (up - down) / (2 * step)
    return grad


@pytest.mark.parametrize("reduction", ["mean", "batch"])
def test_fused_gradient_matches_finite_differences(reduction):
    logits, target = random_batch(n=2, c=3, h=3, w=4)
    loss = FusedLoss(0.4, 0.8, reduction=reduction)
    loss(logits, target).backward()
    numerical = central_differences(lambda x: loss(x, target), logits)
    torch.testing.assert_close(logits.grad, numerical, rtol=0, atol=1e-7)


def test_fused_second_backward_raises_a_clear_error():
    logits, target = random_batch()
    loss = FusedLoss()(logits, target)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward can run only once per forward"):
        loss.backward()


def test_fused_value_is_weighted_sum_of_softmax_and_positive_sharing_terms():
    logits, target = random_batch()
    log_p = torch.log_softmax(logits, dim=1)
    valid = target != VOID
    y = torch.where(valid, target, 0)
    softmax_term = -(log_p.gather(1, y.unsqueeze(1)).squeeze(1) * valid).sum() / 2
    # Plain formula, fine for moderate logits: log(1 - p0) directly.
    log_not_p0 = torch.log1p(-log_p[:, 0].exp())
    sharing_term = -(torch.where(y == 0, log_p[:, 0], log_not_p0) * valid).sum() / 2
    loss = FusedLoss(0.3, 0.9, reduction="batch")(logits, target)
    torch.testing.assert_close(loss, 0.3 * softmax_term + 0.9 * sharing_term, rtol=1e-12, atol=0)
    torch.testing.assert_close(PositiveSharingLoss(reduction="batch")(logits, target), sharing_term,
                               rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_fused_with_ws_1_wp_0_equals_cross_entropy(dtype, tolerance):
    logits, target = random_batch(n=2, c=21, h=9, w=8, dtype=dtype)
    reference = logits.detach().clone().requires_grad_()
    loss = FusedLoss(ws=1.0, wp=0.0)(logits, target)
    expected = F.cross_entropy(reference, target, ignore_index=VOID)
    loss.backward()
    expected.backward()
    torch.testing.assert_close(loss, expected, rtol=tolerance, atol=0)
    torch.testing.assert_close(logits.grad, reference.grad, rtol=tolerance, atol=tolerance * 1e-3)


def test_positive_sharing_is_finite_and_exact_for_huge_logits():
    # p0 = 1 to machine precision: log(1 - p0) computed naively would be -inf.
    logits = torch.tensor([1e4, -1e4, 0.0]).reshape(1, 3, 1, 1).repeat(1, 1, 1, 2).requires_grad_()
    target = torch.tensor([[[1, 0]]])
    loss = PositiveSharingLoss(reduction="batch")(logits, target)
    assert loss.item() == pytest.approx(1e4)  # -log(1 - p0) = lse(s) - lse(s_1..) = 1e4 - 0
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    # Object pixel: dL/ds0 = p0 = 1, dL/ds2 = -p0 q_2 = -1; the background pixel is already right.
    torch.testing.assert_close(logits.grad[0, :, 0, 0], torch.tensor([1.0, 0.0, -1.0]))
    torch.testing.assert_close(logits.grad[0, :, 0, 1], torch.zeros(3))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_are_finite_under_cpu_autocast(name, dtype):
    conv = torch.nn.Conv2d(3, 4, 1)
    image = 1e4 * torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1, 2, 3, VOID]).repeat(7)[:32].reshape(2, 4, 4)
    with torch.autocast("cpu", dtype=dtype):
        logits = conv(image)
        loss = LOSSES[name]("mean")(logits, target)
    assert logits.dtype == dtype
    loss.backward()
    assert torch.isfinite(loss) and loss >= 0
    assert all(torch.isfinite(p.grad).all() for p in conv.parameters())


@st.composite
def extreme_batches(draw):
    n, c, h, w = draw(st.integers(1, 2)), 4, draw(st.integers(1, 3)), draw(st.integers(1, 3))
    value = st.one_of(st.sampled_from([-1e4, -100.0, 0.0, 100.0, 1e4]), st.floats(-1e4, 1e4))
    logits = draw(st.lists(value, min_size=n * c * h * w, max_size=n * c * h * w))
    labels = draw(st.lists(st.sampled_from([0, 1, 2, 3, VOID]), min_size=n * h * w, max_size=n * h * w))
    dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.bfloat16]))
    return (torch.tensor(logits).reshape(n, c, h, w).to(dtype).requires_grad_(),
            torch.tensor(labels).reshape(n, h, w))


@pytest.mark.parametrize("reduction", ["mean", "batch"])
@pytest.mark.parametrize("name", sorted(LOSSES))
@settings(max_examples=25, deadline=None)
@given(batch=extreme_batches())
def test_every_loss_is_finite_and_non_negative_for_extreme_logits(name, reduction, batch):
    logits, target = batch
    loss = LOSSES[name](reduction)(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and loss >= 0
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("label", [0, 1])
def test_fused_loss_is_never_below_zero_when_one_logit_dominates(label):
    """Found by hypothesis: with logit 91 against -1e4 the loss is 0 up to rounding, and the first form
    of the sum, (ws + wp) lse - ws s_y - wp lse1, came out at -3.8e-6."""
    logits = torch.full((1, 4, 1, 1), -1e4)
    logits[0, label] = 91.0
    for loss in (FusedLoss(), FusedLoss(ws=0.3, wp=0.7), PositiveSharingLoss()):
        assert loss(logits, torch.tensor([[[label]]])) >= 0


@pytest.mark.parametrize("reduction", ["mean", "batch"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_all_void_batch_gives_zero_loss_and_zero_gradient(name, reduction):
    logits = torch.randn(2, 4, 3, 3, requires_grad=True)
    loss = LOSSES[name](reduction)(logits, torch.full((2, 3, 3), VOID))
    loss.backward()
    assert loss.item() == 0
    assert torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_empty_images_give_zero(name):
    logits = torch.zeros(2, 4, 0, 5, requires_grad=True)
    loss = LOSSES[name]("mean")(logits, torch.zeros(2, 0, 5, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0


def test_reductions_divide_the_pixel_sum_by_valid_pixels_or_by_batch_size():
    logits, target = random_batch(n=3)
    total = F.cross_entropy(logits, target, ignore_index=VOID, reduction="sum")
    valid = (target != VOID).sum()
    torch.testing.assert_close(CrossEntropyLoss()(logits, target), total / valid)
    torch.testing.assert_close(CrossEntropyLoss(reduction="batch")(logits, target), total / 3)
    torch.testing.assert_close(FocalLoss(gamma=0, reduction="batch")(logits, target), total / 3)


def test_weighted_cross_entropy_weighs_each_pixel_by_its_class_and_divides_by_pixel_count():
    logits, target = random_batch()
    weight = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64)
    valid = target != VOID
    y = torch.where(valid, target, 0)
    nll = -torch.log_softmax(logits, 1).gather(1, y.unsqueeze(1)).squeeze(1)
    expected = (nll * weight[y] * valid).sum() / valid.sum()
    torch.testing.assert_close(CrossEntropyLoss(weight=weight)(logits, target), expected)


def test_focal_loss_by_hand():
    logits = torch.tensor([[[[2.0]], [[0.0]]]])
    p = torch.softmax(logits.flatten(), 0)
    loss = FocalLoss(gamma=2, weight=[1.0, 3.0])(logits, torch.tensor([[[1]]]))
    assert loss.item() == pytest.approx(-3.0 * (1 - p[1].item()) ** 2 * math.log(p[1].item()))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_gradient_is_finite_where_the_prediction_is_certain(gamma):
    # p_y = 1 exactly: d(1 - p)^gamma / dp is infinite for gamma < 1 and must not reach the gradient.
    logits = torch.tensor([[[[1e4]], [[-1e4]]]], requires_grad=True)
    loss = FocalLoss(gamma=gamma)(logits, torch.tensor([[[0]]]))
    loss.backward()
    assert loss.item() == 0
    assert torch.isfinite(logits.grad).all()


def test_dice_loss_by_hand():
    # Two pixels, two classes; the second pixel is void and must not count.
    logits = torch.tensor([[[[0.0, 50.0]], [[math.log(3.0), -50.0]]]])  # pixel 0: p = (1/4, 3/4)
    target = torch.tensor([[[1, VOID]]])
    loss = DiceLoss(smooth=0.0)(logits, target)
    # Class 1 (target and prediction): 1 - 2 * 0.75 / (1 + 0.5625); class 0 is absent from both.
    assert loss.item() == pytest.approx(1 - 1.5 / 1.5625)
    loss = DiceLoss(smooth=1.0)(logits, target)
    assert loss.item() == pytest.approx(1 - 2.5 / 2.5625)


def test_dice_loss_counts_classes_present_in_prediction_only_and_ignores_absent_ones():
    logits = torch.tensor([[[[0.0]], [[2.0]], [[-1e4]]]])  # predicts class 1, target is class 0
    p = torch.softmax(logits.flatten(), 0)
    loss = DiceLoss(smooth=1.0)(logits, torch.tensor([[[0]]]))
    d0 = 1 - (2 * p[0] + 1) / (1 + p[0] ** 2 + 1)
    d1 = 1 - 1 / (p[1] ** 2 + 1)  # class 2 has p = 0 and is in neither, so it is left out
    assert loss.item() == pytest.approx(((d0 + d1) / 2).item())


def test_dice_batch_reduction_averages_per_image_losses():
    logits, target = random_batch(n=2, void_fraction=0.0)
    per_image = [DiceLoss()(logits[i:i + 1], target[i:i + 1]) for i in range(2)]
    torch.testing.assert_close(DiceLoss(reduction="batch")(logits, target), sum(per_image) / 2)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_logits_at_void_pixels_do_not_change_any_loss(name):
    logits, target = random_batch(void_fraction=0.4)
    changed = logits.detach().clone()
    changed[(target == VOID).unsqueeze(1).expand_as(changed)] = 1e3
    loss = LOSSES[name]("mean")
    torch.testing.assert_close(loss(logits, target), loss(changed, target))


@pytest.mark.parametrize("make, message", [
    (lambda: FusedLoss(ws=0, wp=0), "both 0"),
    (lambda: FusedLoss(ws=-0.5), "ws must be a finite number >= 0"),
    (lambda: FocalLoss(gamma=float("nan")), "gamma"),
    (lambda: CrossEntropyLoss(weight=[1.0, -1.0]), "finite and >= 0"),
    (lambda: CrossEntropyLoss(weight=[0.0, 0.0]), "all zero"),
    (lambda: CrossEntropyLoss(weight={"person": 2.0}), "list of numbers"),
    (lambda: CrossEntropyLoss(reduction="sum"), "reduction must be one of"),
])
def test_bad_arguments_raise_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_labels_out_of_range_are_named_in_the_error(name):
    target = torch.tensor([[[0, 7], [VOID, -2]]])
    with pytest.raises(ValueError, match=r"target labels \[-2, 7\] are outside 0..3"):
        LOSSES[name]("mean")(torch.zeros(1, 4, 2, 2), target)


def test_shape_and_weight_length_mismatches_raise():
    with pytest.raises(ValueError, match="does not match logits"):
        FusedLoss()(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="N x C x H x W"):
        FusedLoss()(torch.zeros(4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="integer tensor"):
        FusedLoss()(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="3 entries but logits have 4 classes"):
        CrossEntropyLoss(weight=[1.0, 1.0, 1.0])(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="at least 2 classes"):
        PositiveSharingLoss()(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


@pytest.mark.parametrize("spec, cls", [
    ("ce", CrossEntropyLoss), ({"name": "fused", "ws": 0.2, "wp": 0.8}, FusedLoss),
    ("positive_sharing", PositiveSharingLoss), ({"name": "dice", "smooth": 0.5}, DiceLoss),
    ({"name": "focal", "gamma": 1.0, "reduction": "batch"}, FocalLoss),
])
def test_create_loss_builds_each_named_loss(spec, cls):
    loss = create_loss(spec, num_classes=4)
    assert type(loss) is cls
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key != "name":
                assert getattr(loss, key) == value


def test_create_loss_resolves_class_weights():
    loss = create_loss({"name": "ce", "weight": [1, 2, 3]}, num_classes=3)
    assert loss.weight.tolist() == [1.0, 2.0, 3.0]
    computed = torch.tensor([0.5, 1.0, 4.0])
    loss = create_loss({"name": "focal", "weight": "inverse_frequency"}, num_classes=3, class_weights=computed)
    assert torch.equal(loss.weight, computed)
    assert weight_method("weighted_ce") == "median_frequency"
    assert weight_method({"name": "ce", "weight": [1, 2]}) is None
    assert weight_method("fused") is None
    loss = create_loss("weighted_ce", num_classes=3, class_weights=computed)
    assert torch.equal(loss.weight, computed)


@pytest.mark.parametrize("spec, kwargs, message", [
    ("hinge", {}, "unknown loss 'hinge'; expected one of ce, weighted_ce, positive_sharing, fused, dice, focal"),
    ({"name": "fused", "alpha": 1}, {}, "unknown option.*alpha.*expected some of ignore_index, reduction, wp, ws"),
    ({"name": "dice", "weight": [1, 1]}, {}, "unknown option.*weight"),
    ({"ws": 1}, {}, "'name' key"),
    ({"name": "ce", "weight": [1, 2]}, {}, "2 entries, expected one per class \\(3\\)"),
    ({"name": "ce", "weight": "sqrt_frequency"}, {}, "expected a list of 3 numbers or one of"),
    ({"name": "ce", "weight": "median_frequency"}, {}, "pass class_weights="),
    ({"name": "ce", "weight": "median_frequency"}, {"class_weights": [1.0, 1.0]}, "2 entries"),
    ({"name": "fused", "ws": 0, "wp": 0}, {}, "both 0"),
])
def test_create_loss_rejects_bad_specs(spec, kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_loss(spec, num_classes=3, **kwargs)


def test_class_weights_move_with_the_module():
    loss = CrossEntropyLoss(weight=[1.0, 2.0]).to(torch.float64)
    assert "weight" in dict(loss.named_buffers())
    logits, target = random_batch(c=2)
    assert torch.isfinite(loss(logits, target))
