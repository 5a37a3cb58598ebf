"""Targeted tests of the smooth, periodic and bilinear relaxations (beyond the conformance
suite): tightness on narrow intervals, overflow and domain errors, GELU around its minimum,
sin/cos across extrema and over whole periods, McCormick planes, gradients in alpha."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hybridver.ir.ops import OpKind
from hybridver.relaxations import get_relaxation
from hybridver.relaxations.errors import NotRelaxableError

RNG = np.random.default_rng(0)


def t(values) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float64))


def lines_at(b, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper lines at points ``x: (n, k)``."""
    return (b.lower_slope[..., None] * x + b.lower_bias[..., None],
            b.upper_slope[..., None] * x + b.upper_bias[..., None])


def check_sound(op: OpKind, l, u, attrs=None, alpha=None, k: int = 400) -> torch.Tensor:
    """Asserts soundness on ``k`` points of each interval (ends included); returns the
    largest gap between the lines per interval."""
    attrs = attrs or {}
    relax = get_relaxation(op)
    l, u = t(l), t(u)
    a = None if alpha is None else torch.full_like(l, alpha)
    b = relax.bounds(l, u, attrs, a, a)
    s = torch.cat([torch.tensor([0.0, 1.0], dtype=torch.float64),
                   torch.rand(k, dtype=torch.float64)])
    x = (l[:, None] + s * (u - l)[:, None]).clamp(l[:, None], u[:, None])
    f = relax.function(x, attrs)
    lo, up = lines_at(b, x)
    assert bool((lo <= f).all()), f"{op.value}: lower line above f by {float((lo - f).max())}"
    assert bool((f <= up).all()), f"{op.value}: upper line below f by {float((f - up).max())}"
    return (up - lo).max(-1).values


# ---------------------------------------------------------------------------- narrow gaps
NARROW = [(OpKind.EXP, {}, (-5, 5)), (OpKind.LOG, {}, (0.1, 10)), (OpKind.SQRT, {}, (0.1, 10)),
          (OpKind.RECIPROCAL, {}, (0.2, 5)), (OpKind.RECIPROCAL, {}, (-5, -0.2)),
          (OpKind.GELU, {}, (-5, 5)), (OpKind.SIN, {}, (-10, 10)), (OpKind.COS, {}, (-10, 10)),
          (OpKind.POW, {"exponent": 2.0}, (-3, 3)), (OpKind.POW, {"exponent": 3.0}, (-3, 3)),
          (OpKind.POW, {"exponent": 1.5}, (0.1, 3)), (OpKind.POW, {"exponent": -2.0}, (0.5, 3))]


@pytest.mark.parametrize("op,attrs,span", NARROW, ids=lambda v: getattr(v, "value", str(v)))
@pytest.mark.parametrize("alpha", [None, 0.0, 0.5, 1.0])
def test_narrow_intervals_have_second_order_gaps(op, attrs, span, alpha):
    c = RNG.uniform(*span, 300)
    w = 10.0 ** RNG.uniform(-4, -2, 300)
    gap = check_sound(op, c - w / 2, c + w / 2, attrs, alpha)
    # gap <= max|f''| w^2 / 4 (tangent + chord) plus rounding margins; |f''| <= 120 here
    assert bool((gap <= 120 * t(w) ** 2 + 1e-9).all())


def test_default_is_tangent_at_midpoint_and_chord():
    l, u = t([0.0, -2.0]), t([1.0, 3.0])
    b = get_relaxation(OpKind.EXP).bounds(l, u, {})
    mid = (l + u) / 2
    torch.testing.assert_close(b.lower_slope, torch.exp(mid))
    torch.testing.assert_close(b.upper_slope, (torch.exp(u) - torch.exp(l)) / (u - l))
    torch.testing.assert_close(b.upper_slope * l + b.upper_bias, torch.exp(l))
    a = t([0.25, 1.0])
    b = get_relaxation(OpKind.LOG).bounds(l + 3, u + 4, {}, alpha_upper=a)
    d = (l + 3) + a * (u + 4 - (l + 3))
    torch.testing.assert_close(b.upper_slope, 1 / d)
    torch.testing.assert_close(b.upper_slope * d + b.upper_bias, torch.log(d))


# ---------------------------------------------------------------------------- exp overflow
def test_exp_overflow_raises_and_large_finite_values_work():
    relax = get_relaxation(OpKind.EXP)
    with pytest.raises(NotRelaxableError, match="overflow"):
        relax.bounds(t([0.0, 1.0]), t([1.0, 800.0]), {})
    with pytest.raises(NotRelaxableError):
        relax.bounds(torch.tensor([0.0]), torch.tensor([85.0]), {})  # float32
    for alpha in (None, 0.0, 1.0):
        check_sound(OpKind.EXP, [-1000.0, 690.0, 600.0], [690.0, 700.0, 600.0], alpha=alpha)
        l32, u32 = torch.tensor([-50.0, 70.0]), torch.tensor([80.0, 80.0])
        a = None if alpha is None else torch.full_like(l32, alpha)
        b = relax.bounds(l32, u32, {}, a, a)
        assert all(bool(torch.isfinite(v).all()) for v in
                   (b.lower_slope, b.lower_bias, b.upper_slope, b.upper_bias))


def test_non_finite_interval_ends_raise():
    with pytest.raises(NotRelaxableError):
        get_relaxation(OpKind.EXP).bounds(t([-math.inf]), t([0.0]), {})


# ---------------------------------------------------------------------------- domains
@pytest.mark.parametrize("op,l,u,attrs", [
    (OpKind.RECIPROCAL, -1.0, 1.0, {}), (OpKind.RECIPROCAL, 0.0, 1.0, {}),
    (OpKind.RECIPROCAL, -1.0, 0.0, {}), (OpKind.POW, -1.0, 2.0, {"exponent": -1.0}),
    (OpKind.POW, -1.0, 2.0, {"exponent": 0.5}), (OpKind.POW, 1.0, 2.0, {}),
    (OpKind.LOG, 0.0, 1.0, {}), (OpKind.LOG, -2.0, -1.0, {}), (OpKind.SQRT, -1e-9, 1.0, {})])
def test_outside_the_domain_raises(op, l, u, attrs):
    with pytest.raises(NotRelaxableError):
        get_relaxation(op).bounds(t([2.0, l]), t([3.0, u]), attrs)


def test_div_with_divisor_containing_zero_raises():
    with pytest.raises(NotRelaxableError, match="contains 0"):
        get_relaxation(OpKind.DIV).bounds(t([1.0]), t([2.0]), t([-1.0]), t([1.0]), {})


def test_sqrt_and_fractional_power_at_zero():
    for op, attrs in ((OpKind.SQRT, {}), (OpKind.POW, {"exponent": 0.5}),
                      (OpKind.POW, {"exponent": 0.25})):
        for alpha in (None, 0.0, 1.0):
            check_sound(op, [0.0, 0.0, 0.0], [1.0, 1e-8, 0.0], attrs, alpha)


def test_pow_zero_and_one_are_exact():
    l, u = t([-2.0]), t([3.0])
    b = get_relaxation(OpKind.POW).bounds(l, u, {"exponent": 1.0})
    assert (b.lower_slope.item(), b.lower_bias.item()) == (1.0, 0.0)
    b = get_relaxation(OpKind.POW).bounds(l, u, {"exponent": np.float64(0.0)})
    assert (b.upper_slope.item(), b.upper_bias.item()) == (0.0, 1.0)


def test_odd_powers_across_zero_and_negative_powers_on_negatives():
    for alpha in (None, 0.0, 0.3, 1.0):
        check_sound(OpKind.POW, [-3.0, -1.0, -0.1], [2.0, 5.0, 0.1], {"exponent": 3.0}, alpha)
        check_sound(OpKind.POW, [-3.0, -1.0], [2.0, 1.5], {"exponent": 5.0}, alpha)
        check_sound(OpKind.POW, [-3.0, -1.0], [-0.5, -0.1], {"exponent": -1.0}, alpha)
        check_sound(OpKind.POW, [-3.0, -1.0], [-0.5, -0.1], {"exponent": -2.0}, alpha)
        check_sound(OpKind.RECIPROCAL, [-3.0, 1e-3], [-1e-3, 3.0], alpha=alpha)


# ---------------------------------------------------------------------------- gelu
GELU_MIN_X, GELU_MIN = -0.7517915246935397, -0.16997120747195425


@pytest.mark.parametrize("alpha", [None, 0.0, 0.5, 1.0])
def test_gelu_around_its_minimum_and_inflections(alpha):
    s2 = math.sqrt(2)
    l = [GELU_MIN_X - 0.01, -1.5, -3.0, -s2 - 0.1, s2 - 0.1, -6.0, -20.0, -1.0]
    u = [GELU_MIN_X + 0.01, 0.0, 3.0, -s2 + 0.1, s2 + 0.1, 6.0, -10.0, 10.0]
    gap = check_sound(OpKind.GELU, l, u, alpha=alpha)
    assert float(gap[0]) < 1e-4  # narrow around the minimum
    b = get_relaxation(OpKind.GELU).bounds(t(l[:2]), t(u[:2]), {})
    # the lower line at the minimum is close to the minimum (no loose constant)
    low = b.lower_slope * GELU_MIN_X + b.lower_bias
    assert float(low[0]) > GELU_MIN - 1e-4 and float(low[1]) > GELU_MIN - 0.1


# ---------------------------------------------------------------------------- sin / cos
@pytest.mark.parametrize("op", [OpKind.SIN, OpKind.COS])
@pytest.mark.parametrize("alpha", [None, 0.0, 0.5, 1.0])
def test_sin_cos_across_extrema_and_wide(op, alpha):
    shift = 0.0 if op is OpKind.SIN else -math.pi / 2  # cos(x) = sin(x + pi/2)
    peak = math.pi / 2 + shift
    l = np.array([peak - 0.5, peak - 2.0, -peak - 0.3, 0.1, -3.0, 1e3, -1e4]) + 0.0
    u = np.array([peak + 0.5, peak + 3.0, -peak + 0.3, 0.1 + 2 * math.pi - 1e-9, 4.0, 1e3 + 1.0,
                  -1e4 + 6.0])
    check_sound(op, l, u, alpha=alpha)
    b = get_relaxation(op).bounds(t(l[:1]), t(u[:1]), {}, None if alpha is None else
                                  t([alpha]), None if alpha is None else t([alpha]))
    at_peak = b.upper_slope * peak + b.upper_bias
    if alpha is None:  # across a maximum: the default upper line stays near 1
        assert 1.0 <= float(at_peak) < 1.13
    # wider than the period (or exactly one period): the constants -1 and 1
    lw, uw = t([0.0, -10.0, 5.0]), t([2 * math.pi, 100.0, 5.0 + 2 * math.pi])
    a = None if alpha is None else torch.full_like(lw, alpha)
    b = get_relaxation(op).bounds(lw, uw, {}, a, a)
    assert b.lower_slope.abs().max() == 0 and b.upper_slope.abs().max() == 0
    assert bool((b.lower_bias == -1).all() and (b.upper_bias == 1).all())
    b = get_relaxation(op).bounds(t([-math.inf]), t([math.inf]), {})
    assert (b.lower_bias.item(), b.upper_bias.item()) == (-1.0, 1.0)


def test_sin_on_concave_arc_uses_chord_and_tangent():
    l, u = t([0.5]), t([2.5])  # sin is concave on [0, pi]
    b = get_relaxation(OpKind.SIN).bounds(l, u, {})
    torch.testing.assert_close(b.lower_slope * l + b.lower_bias, torch.sin(l))
    torch.testing.assert_close(b.lower_slope * u + b.lower_bias, torch.sin(u))
    torch.testing.assert_close(b.upper_slope, torch.cos((l + u) / 2))


# ---------------------------------------------------------------------------- bilinear
def _boxes(n: int, positive_y: bool = False):
    xl = t(RNG.uniform(-5, 5, n))
    yl = t(RNG.uniform(0.1, 5, n) if positive_y else RNG.uniform(-5, 5, n))
    if positive_y:
        yl = torch.where(t(RNG.random(n)) < 0.5, yl, -yl - 3)
    return xl, xl + t(RNG.uniform(0, 3, n)), yl, yl + t(RNG.uniform(0, 2.9, n))


@pytest.mark.parametrize("op", [OpKind.MUL, OpKind.DIV])
@pytest.mark.parametrize("alpha", [None, 0.0, 0.4, 1.0])
def test_bilinear_planes_are_sound(op, alpha):
    relax = get_relaxation(op)
    xl, xu, yl, yu = _boxes(400, positive_y=op is OpKind.DIV)
    a = None if alpha is None else torch.full((3, 400), alpha, dtype=torch.float64)
    b = relax.bounds(xl, xu, yl, yu, {}, a, a)
    s = torch.rand(2, 300, dtype=torch.float64)
    s[:, :4] = t([[0, 0, 1, 1], [0, 1, 0, 1]])
    x, y = xl[:, None] + s[0] * (xu - xl)[:, None], yl[:, None] + s[1] * (yu - yl)[:, None]
    z = relax.function(x, y, {})
    low = b.lower_x[..., None] * x + b.lower_y[..., None] * y + b.lower_bias[..., None]
    up = b.upper_x[..., None] * x + b.upper_y[..., None] * y + b.upper_bias[..., None]
    assert low.shape == (3, 400, 300) or alpha is None
    assert bool((low <= z).all()) and bool((z <= up).all())


def test_mul_alpha_picks_mccormick_planes():
    xl, xu, yl, yu = t([-1.0]), t([2.0]), t([3.0]), t([5.0])
    relax = get_relaxation(OpKind.MUL)
    b = relax.bounds(xl, xu, yl, yu, {}, t([1.0]), t([1.0]))
    assert (b.lower_x.item(), b.lower_y.item()) == (3.0, -1.0)   # L1 = yl x + xl y - xl yl
    assert abs(b.lower_bias.item() - 3.0) < 1e-12
    assert (b.upper_x.item(), b.upper_y.item()) == (5.0, -1.0)   # U1 = yu x + xl y - xl yu
    b = relax.bounds(xl, xu, yl, yu, {})  # default: the average of the two planes
    assert (b.lower_x.item(), b.lower_y.item()) == (4.0, 0.5)


def test_div_narrow_box_is_tight():
    c = t(RNG.uniform(-3, 3, 200))
    d = t(RNG.uniform(0.5, 3, 200))
    w = 1e-3
    b = get_relaxation(OpKind.DIV).bounds(c - w, c + w, d - w, d + w, {})
    gap = (b.upper_x - b.lower_x) * c + (b.upper_y - b.lower_y) * d + b.upper_bias - b.lower_bias
    assert float(gap.max()) < 1e-4


# ---------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("op,l,u,attrs", [
    (OpKind.EXP, -1.0, 2.0, {}), (OpKind.SIN, -1.0, 2.5, {}),
    (OpKind.SIN, 0.0, 2 * math.pi - 0.1, {}), (OpKind.COS, -3.0, 3.0, {}), (OpKind.GELU, -3.0, 2.0, {}), (OpKind.POW, -2.0, 1.0, {"exponent": 3.0}),
    (OpKind.SQRT, 0.0, 4.0, {}), (OpKind.RECIPROCAL, 0.5, 3.0, {})])
def test_alpha_gradients_are_finite(op, l, u, attrs):
    # alpha-CROWN differentiates the bounds in alpha (slopes through arccos at +-1, tangents
    # at 0 for sqrt: no NaN may leak into the gradient)
    alpha = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64, requires_grad=True)
    lo, hi = torch.full((3,), l, dtype=torch.float64), torch.full((3,), u, dtype=torch.float64)
    b = get_relaxation(op).bounds(lo, hi, attrs, alpha, alpha)
    mid = (lo + hi) / 2
    objective = ((b.upper_slope - b.lower_slope) * mid + b.upper_bias - b.lower_bias).sum()
    objective.backward()
    assert alpha.grad is not None and bool(torch.isfinite(alpha.grad).all())
