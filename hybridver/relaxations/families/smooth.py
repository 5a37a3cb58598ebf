"""Smooth elementwise functions: EXP, LOG, SQRT, RECIPROCAL, POW (constant exponent), GELU.

Each function is described by its value ``f``, derivative ``fp`` and curvature pattern:
inflection points ``knots`` (increasing) splitting the line into pieces of alternating
curvature, the first piece convex or concave.  One generic routine, :func:`relax`, builds
the bounds.  Shapes: ``lower``/``upper`` ``(batch, *shape)``; alpha may add leading axes;
the results broadcast to alpha's shape.

**One curvature on [l, u]** (no knot strictly inside).  For convex ``f``:

* lower = tangent at ``d = l + alpha (u - l)`` (default: the midpoint, which minimizes the
  area under ``f``): a convex function lies above each of its tangents;
* upper = chord slope ``s`` with bias ``max(f(l) - s l, f(u) - s u)``: ``f(x) - s x`` is
  convex, so its max over ``[l, u]`` is at an end.  This is sound for *any* ``s``, so the
  chord slope need not be computed exactly (it is computed stably).  The chord dominates
  every other upper line, so alpha does not change it.

Concave ``f``: the mirror image (upper = tangent, lower = chord).

**Mixed curvature** (GELU around ``+-sqrt 2``, odd powers around 0): *shift by the maximum
violation*.  For a slope ``s`` the bias ``max_{[l,u]} g`` with ``g(x) = f(x) - s x`` gives a
sound upper line and ``min g`` a sound lower line.  :func:`extremes` bounds these soundly
piece by piece: on a convex piece ``[a, b]`` the max of ``g`` is ``max(g(a), g(b))`` and
the min is at least ``g(c) + min(g'(c)(a - c), g'(c)(b - c))`` for ANY ``c`` in ``[a, b]``
(``g`` lies above its tangent at ``c``); ``c`` is found by bisection and Newton steps on
the monotone ``g'`` so this bound is tight, but its soundness does not depend on ``c``.
Concave pieces: the mirror image.  With alpha both sides use the tangent slope ``f'(d)``,
``d = l + alpha (u - l)``; without alpha each side takes the best (least area) of the slopes
``{chord, f'(l), f'(mid), f'(u)}``.

Rounding: every bias is moved outward by ``8 eps (1 + |s| max(|l|, |u|) + max(|f(l)|,
|f(u)|))``, which covers the rounding of ``f``, ``f'``, ``s x`` and of the tangent-bound
remainder.  Inputs outside the domain, non-finite interval ends and results that overflow
raise :class:`~hybridver.relaxations.errors.NotRelaxableError`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hybridver.ir.ops import OpKind
from hybridver.relaxations.base import LinearBounds, Traits, UnaryRelaxation, register
from hybridver.relaxations.errors import NotRelaxableError

Tensor = torch.Tensor
Fn = Callable[[Tensor], Tensor]
_BISECTION_STEPS = 60
_SQRT2 = math.sqrt(2.0)


@dataclasses.dataclass(frozen=True)
class Curve:
    """A smooth function with known curvature pattern (see the module docstring).

    ``chord``: optional stable chord slope ``(l, u) -> slope``; ``fpp``: optional second
    derivative (speeds up the root search of :func:`extremes`); ``pole_at_zero``: tangent
    points are kept ``> 0`` (``f'(0)`` is infinite: sqrt, ``x**p`` with ``0 < p < 1``; the
    function must then be concave on all of ``[0, inf)`` so a tangent at any ``d > 0`` stays
    sound).
    """

    f: Fn
    fp: Fn
    knots: tuple[float, ...] = ()
    first_convex: bool = True
    chord: Callable[[Tensor, Tensor], Tensor] | None = None
    pole_at_zero: bool = False
    fpp: Fn | None = None


def _clamp(x: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    return torch.minimum(torch.maximum(x, lo), hi)


def _chord(curve: Curve, l: Tensor, u: Tensor) -> Tensor:
    if curve.chord is not None:
        return curve.chord(l, u)
    w = u - l
    far = w > 1e-6 * (1 + torch.maximum(l.abs(), u.abs()))
    safe = torch.where(far, w, torch.ones_like(w))
    return torch.where(far, (curve.f(u) - curve.f(l)) / safe, curve.fp((l + u) / 2))


def _best(slopes: Tensor, biases: Tensor, mid: Tensor, upper: bool) -> tuple[Tensor, Tensor]:
    """Per element, the candidate (axis 0) whose line has the least area against ``f``."""
    slopes, biases, mid = torch.broadcast_tensors(slopes, biases, mid)
    value = slopes * mid + biases
    idx = (value.argmin(0) if upper else value.argmax(0)).unsqueeze(0)
    return slopes.gather(0, idx)[0], biases.gather(0, idx)[0]


def _root(curve: Curve, a: Tensor, b: Tensor, s: Tensor, convex: bool) -> Tensor:
    """A point of ``[a, b]`` near the solution of ``f'(c) = s`` (``f'`` monotone there):
    bisection, then Newton steps kept inside the bisection bracket when ``f''`` is known."""
    with torch.no_grad():
        lo, hi = a.clone(), b.clone()
        for _ in range(_BISECTION_STEPS if curve.fpp is None else 8):
            m = (lo + hi) / 2
            right = (curve.fp(m) < s) if convex else (curve.fp(m) > s)  # root right of m
            lo, hi = torch.where(right, m, lo), torch.where(right, hi, m)
        c = (lo + hi) / 2
        if curve.fpp is not None:
            for _ in range(4):
                step = c - (curve.fp(c) - s) / curve.fpp(c)
                c = torch.where(torch.isfinite(step), _clamp(step, lo, hi), c)
    return c


def extremes(curve: Curve, l: Tensor, u: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """Sound ``(upper bound of max, lower bound of min)`` of ``f(x) - s x`` over ``[l, u]``.

    All arguments broadcast together.  Pieces that miss ``[l, u]`` collapse to an end point
    (their value is a value of ``g`` on ``[l, u]``, so they cannot spoil the max/min).  The
    tangent-bound point ``c`` of a piece only sharpens the bound; soundness holds for any
    ``c`` in the piece, so it is computed without gradient.
    """
    f, fp = curve.f, curve.fp
    edges = [-math.inf, *curve.knots, math.inf]
    gmax = gmin = None
    for k in range(len(edges) - 1):
        convex = curve.first_convex == (k % 2 == 0)
        a = _clamp(torch.full_like(l, edges[k]), l, u)
        b = _clamp(torch.full_like(u, edges[k + 1]), l, u)
        a, b, s_ = torch.broadcast_tensors(a, b, s)
        c = _root(curve, a, b, s_, convex)
        ga, gb, gc = f(a) - s_ * a, f(b) - s_ * b, f(c) - s_ * c
        dc = fp(c) - s_
        tangent = gc + torch.where(dc > 0, dc * (b - c), dc * (a - c)) if not convex else \
            gc + torch.where(dc > 0, dc * (a - c), dc * (b - c))
        pmax = torch.maximum(ga, gb) if convex else tangent
        pmin = tangent if convex else torch.minimum(ga, gb)
        gmax = pmax if gmax is None else torch.maximum(gmax, pmax)
        gmin = pmin if gmin is None else torch.minimum(gmin, pmin)
    return gmax, gmin


def _shifted(curve: Curve, l: Tensor, u: Tensor, cands: Tensor, mask: Tensor, upper: bool
             ) -> tuple[Tensor, Tensor]:
    """Best shifted line among candidate slopes ``cands: (K, ...)``, computed only where
    ``mask`` (mixed curvature) holds; elsewhere zeros (callers select with ``mask``)."""
    shape = torch.broadcast_shapes(l.shape, cands.shape[1:], mask.shape)
    m = mask.expand(shape)
    ls, us = l.expand(shape)[m], u.expand(shape)[m]
    cs = cands.expand(cands.shape[0], *shape)[:, m]
    gmax, gmin = extremes(curve, ls, us, cs)
    slope, bias = _best(cs, gmax if upper else gmin, (ls + us) / 2, upper)
    zero = torch.zeros(shape, dtype=l.dtype, device=l.device)
    return zero.masked_scatter(m, slope), zero.masked_scatter(m, bias)


def relax(curve: Curve, lower: Tensor, upper: Tensor, alpha_lower: Tensor | None = None,
          alpha_upper: Tensor | None = None, name: str = "function") -> LinearBounds:
    """Sound linear bounds of ``curve.f`` on ``[lower, upper]`` (module docstring)."""
    if not (bool(torch.isfinite(lower).all()) and bool(torch.isfinite(upper).all())):
        raise NotRelaxableError(f"{name}: interval with non-finite ends")
    l, u = lower, upper
    w, mid = u - l, (l + u) / 2
    f, fp = curve.f, curve.fp
    mixed = torch.zeros_like(l, dtype=torch.bool)
    for knot in curve.knots:
        mixed = mixed | ((l < knot) & (knot < u))
    flips = torch.zeros_like(l, dtype=torch.int64)
    for knot in curve.knots:
        flips = flips + (mid > knot).to(torch.int64)
    convex = (flips % 2 == 0) == curve.first_convex
    chord = _chord(curve, l, u)
    # any finite slope is sound on the secant side (the bias is computed for it)
    chord = torch.where(torch.isfinite(chord), chord, torch.zeros_like(chord))
    fl, fu = f(l), f(u)
    end_max = lambda s: torch.maximum(fl - s * l, fu - s * u)  # noqa: E731
    end_min = lambda s: torch.minimum(fl - s * l, fu - s * u)  # noqa: E731
    tiny = torch.clamp(u * 2.0 ** -20, min=2.0 ** -40)

    def tangent_at(d: Tensor) -> tuple[Tensor, Tensor]:
        if curve.pole_at_zero:
            d = torch.maximum(d, tiny)
        s = fp(d)
        return s, f(d) - s * d

    mid_s, mid_b = tangent_at(mid)

    def tangent(alpha: Tensor | None) -> tuple[Tensor, Tensor]:
        if alpha is None:
            return mid_s, mid_b
        # degenerate intervals: d = l without alpha, so no inf * 0 reaches alpha's gradient
        # (x**1.5 has f''(0) = inf)
        s, b = tangent_at(torch.where(w > 0, _clamp(l + alpha * w, l, u), l))
        # a tangent that overflows (e.g. 1/x at a tiny d) is replaced by the midpoint's:
        # any tangent point of the piece gives a sound line
        ok = torch.isfinite(s) & torch.isfinite(b)
        return torch.where(ok, s, mid_s), torch.where(ok, b, mid_b)

    sides = []
    for alpha, is_upper in ((alpha_lower, False), (alpha_upper, True)):
        ts, tb = tangent(alpha)
        secant = convex if is_upper else ~convex
        slope = torch.where(secant, chord, ts)
        bias = torch.where(secant, end_max(chord) if is_upper else end_min(chord), tb)
        if curve.knots and bool(mixed.any()):
            if alpha is None:
                pts = [l + t * w for t in (0.0, 0.5, 1.0)]
                cands = torch.stack(torch.broadcast_tensors(chord, *(fp(p) for p in pts)))
            else:
                cands = ts.unsqueeze(0)
            ms, mb = _shifted(curve, l, u, cands, mixed, is_upper)
            slope, bias = torch.where(mixed, ms, slope), torch.where(mixed, mb, bias)
        scale = torch.maximum(fl.abs(), fu.abs()) + 1
        margin = 8 * torch.finfo(l.dtype).eps * (scale + slope.abs() * torch.maximum(
            l.abs(), u.abs()))
        sides.append((slope, bias + margin if is_upper else bias - margin))
    (ls, lb), (us, ub) = sides
    if not all(bool(torch.isfinite(t).all()) for t in (ls, lb, us, ub)):
        raise NotRelaxableError(f"{name}: the relaxation overflows {l.dtype} on this interval")
    return LinearBounds(ls, lb, us, ub)


def _const_bounds(lower: Tensor, slope: float, bias: float) -> LinearBounds:
    s, b = torch.full_like(lower, slope), torch.full_like(lower, bias)
    return LinearBounds(s, b, s.clone(), b.clone())


# ---------------------------------------------------------------------------- exp / log
def _exp_chord(l: Tensor, u: Tensor) -> Tensor:
    """``(e^u - e^l) / (u - l)``: ``e^l expm1(w) / w`` for ``w <= 1`` (no cancellation)."""
    w = u - l
    pos = w > 0
    safe = torch.where(pos, w, torch.ones_like(w))
    small = torch.exp(l) * torch.expm1(torch.clamp(w, max=1.0)) / safe
    return torch.where(w > 1, (torch.exp(u) - torch.exp(l)) / safe,
                       torch.where(pos, small, torch.exp(l)))


def _log_chord(l: Tensor, u: Tensor) -> Tensor:
    w = u - l
    pos = w > 0
    return torch.where(pos, torch.log1p(w / l) / torch.where(pos, w, torch.ones_like(w)), 1 / l)


EXP_CURVE = Curve(torch.exp, torch.exp, chord=_exp_chord)
LOG_CURVE = Curve(torch.log, torch.reciprocal, first_convex=False, chord=_log_chord)


@register
class Exp(UnaryRelaxation):
    """Convex: tangent below, chord above.

    Overflow: an upper end ``u`` with ``e^u (1 + |u|)`` near the dtype's maximum (``u >
    L - log(L + 2) - 2``, ``L = log(max)``: about 701 in float64, 82 in float32) has no
    usable finite upper line; it raises :class:`NotRelaxableError` and the engine must fall
    back (split, tighter input bounds, or give up on the subdomain).  Below that limit all
    slopes and biases are finite (chord slope ``<= e^u``, tangent points ``<= u``)."""

    op = OpKind.EXP
    traits = Traits(monotone="increasing", convex=True)
    optimizable = True

    def function(self, x: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        return torch.exp(x)

    def bounds(self, lower, upper, attrs, alpha_lower=None, alpha_upper=None):
        log_max = math.log(torch.finfo(lower.dtype).max)
        limit = log_max - math.log(log_max + 2) - 2  # keeps e^u (1 + |u|) well below max
        if bool((upper > limit).any()):
            raise NotRelaxableError(f"exp: upper end {float(upper.max()):.6g} > {limit:.6g}; "
                                    "exp would overflow, no finite upper line exists")
        return relax(EXP_CURVE, lower, upper, alpha_lower, alpha_upper, "exp")


@register
class Log(UnaryRelaxation):
    """Concave on ``(0, inf)``: tangent above, chord below; needs ``lower > 0``."""

    op = OpKind.LOG
    traits = Traits(monotone="increasing", concave=True, domain=(0.0, math.inf))
    optimizable = True

    def function(self, x: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        return torch.log(x)

    def bounds(self, lower, upper, attrs, alpha_lower=None, alpha_upper=None):
        if bool((lower <= 0).any()):
            raise NotRelaxableError("log: interval reaches 0 or below (no finite lower line)")
        return relax(LOG_CURVE, lower, upper, alpha_lower, alpha_upper, "log")


# ---------------------------------------------------------------------------- powers
def _sqrt_chord(l: Tensor, u: Tensor) -> Tensor:
    den = torch.sqrt(u) + torch.sqrt(l)
    return torch.where(den > 0, 1 / torch.where(den > 0, den, torch.ones_like(den)),
                       torch.zeros_like(den))


SQRT_CURVE = Curve(torch.sqrt, lambda x: 0.5 / torch.sqrt(x), first_convex=False,
                   chord=_sqrt_chord, pole_at_zero=True)


def power_curve(p: float, lower: Tensor, upper: Tensor) -> Curve | None:
    """The :class:`Curve` of ``x**p`` valid on ``[lower, upper]``; None for ``p`` in {0, 1}.

    Curvature ``p (p - 1) x**(p - 2)``: integer ``p >= 2`` even: convex; odd: concave for
    ``x < 0`` and convex for ``x > 0`` (knot 0); ``p < 0``: the interval must exclude 0,
    convex for ``x > 0``, for ``x < 0`` convex if ``p`` is even, concave if odd; non-integer
    ``p``: needs ``lower >= 0`` (``> 0`` when ``p < 0``), convex for ``p > 1`` or ``p < 0``,
    concave for ``0 < p < 1``.
    """
    if p in (0.0, 1.0):
        return None
    f: Fn = lambda x: torch.pow(x, p)  # noqa: E731
    fp: Fn = lambda x: p * torch.pow(x, p - 1)  # noqa: E731
    if p == 2.0:
        return Curve(f, lambda x: 2 * x, chord=lambda l, u: l + u)
    integer = float(p).is_integer()
    if p < 0 and bool(((lower <= 0) & (upper >= 0)).any()):
        raise NotRelaxableError(f"pow: exponent {p} on an interval containing 0")
    if not integer and bool((lower < 0).any() if p > 0 else (lower <= 0).any()):
        raise NotRelaxableError(f"pow: non-integer exponent {p} on an interval reaching "
                                f"{'below ' if p > 0 else ''}0")
    if integer:
        odd = int(p) % 2 == 1
        return Curve(f, fp, knots=(0.0,) if odd else (), first_convex=not odd,
                     fpp=lambda x: p * (p - 1) * torch.pow(x, p - 2))
    return Curve(f, fp, first_convex=p > 1 or p < 0, pole_at_zero=0 < p < 1)


def exponent_of(attrs: Mapping[str, Any]) -> float:
    """The scalar exponent ``attrs["exponent"]`` of a POW node."""
    if "exponent" not in attrs:
        raise NotRelaxableError("pow: attrs['exponent'] is missing (variable exponent?)")
    value = np.asarray(attrs["exponent"].detach().cpu() if isinstance(attrs["exponent"], Tensor)
                       else attrs["exponent"], dtype=np.float64)
    if value.size != 1 or not np.isfinite(value).all():
        raise NotRelaxableError(f"pow: exponent must be one finite scalar, got {value!r}")
    return float(value.reshape(-1)[0])


@register
class Pow(UnaryRelaxation):
    """``x ** p`` for a constant scalar ``p = attrs["exponent"]`` (see :func:`power_curve`).

    ``p = 0`` gives the constant 1 and ``p = 1`` the identity; alpha is the tangent point.
    """

    op = OpKind.POW
    traits = Traits()
    optimizable = True

    def function(self, x: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        return torch.pow(x, exponent_of(attrs))

    def bounds(self, lower, upper, attrs, alpha_lower=None, alpha_upper=None):
        p = exponent_of(attrs)
        if p == 0.0:
            return _const_bounds(lower, 0.0, 1.0)
        if p == 1.0:
            return _const_bounds(lower, 1.0, 0.0)
        return relax(power_curve(p, lower, upper), lower, upper, alpha_lower, alpha_upper,
                     f"pow({p})")


@register
class Sqrt(UnaryRelaxation):
    """Concave on ``[0, inf)``: tangent above (tangent point kept ``> 0``: ``f'(0)`` is
    infinite), chord ``1 / (sqrt(l) + sqrt(u))`` below; needs ``lower >= 0``."""

    op = OpKind.SQRT
    traits = Traits(monotone="increasing", concave=True, domain=(0.0, math.inf))
    optimizable = True

    def function(self, x: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        return torch.sqrt(x)

    def bounds(self, lower, upper, attrs, alpha_lower=None, alpha_upper=None):
        if bool((lower < 0).any()):
            raise NotRelaxableError("sqrt: interval reaches below 0")
        return relax(SQRT_CURVE, lower, upper, alpha_lower, alpha_upper, "sqrt")


RECIPROCAL_CURVE = Curve(torch.reciprocal, lambda x: -1 / (x * x), knots=(0.0,),
                         first_convex=False, chord=lambda l, u: -1 / (l * u))


@register
class Reciprocal(UnaryRelaxation):
    """``1/x``: convex for ``x > 0``, concave for ``x < 0``; intervals containing 0 raise
    :class:`NotRelaxableError`.  Decreasing on each side of 0."""

    op = OpKind.RECIPROCAL
    traits = Traits(monotone="decreasing")
    optimizable = True

    def function(self, x: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        return torch.reciprocal(x)

    def bounds(self, lower, upper, attrs, alpha_lower=None, alpha_upper=None):
        if bool(((lower <= 0) & (upper >= 0)).any()):
            raise NotRelaxableError("reciprocal: interval contains 0")
        return relax(RECIPROCAL_CURVE, lower, upper, alpha_lower, alpha_upper, "reciprocal")


# ---------------------------------------------------------------------------- gelu
def _gelu(x: Tensor) -> Tensor:
    """``x Phi(x)`` with ``Phi`` via erfc (accurate in the left tail)."""
    return x * 0.5 * torch.erfc(-x / _SQRT2)


def _gelu_prime(x: Tensor) -> Tensor:
    """``Phi(x) + x phi(x)``."""
    return 0.5 * torch.erfc(-x / _SQRT2) + x * torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


#: GELU'' = phi(x) (2 - x^2): concave, convex on [-sqrt 2, sqrt 2], concave
GELU_CURVE = Curve(_gelu, _gelu_prime, knots=(-_SQRT2, _SQRT2), first_convex=False,
                   fpp=lambda x: torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) * (2 - x * x))


@register
class Gelu(UnaryRelaxation):
    """Exact (erf) GELU; tangent/chord on one-curvature intervals, shifted lines otherwise."""

    op = OpKind.GELU
    traits = Traits()
    optimizable = True

    def function(self, x: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        return F.gelu(x)

    def bounds(self, lower, upper, attrs, alpha_lower=None, alpha_upper=None):
        return relax(GELU_CURVE, lower, upper, alpha_lower, alpha_upper, "gelu")
