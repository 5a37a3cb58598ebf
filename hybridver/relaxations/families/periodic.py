"""SIN and COS: sound linear bounds on any interval.

Both are ``f(x) = sin(x + phi)`` (``phi = 0`` for SIN, ``pi/2`` for COS), evaluated with
``torch.sin`` / ``torch.cos`` on ``x`` itself so no rounded shift enters the values.

**Construction: choose a slope, then shift.**  For any slope ``s`` the tightest lines of
that slope are

    upper:  s*x + max_{x in [l, u]} g(x),     lower:  s*x + min_{x in [l, u]} g(x),
    where g(x) = f(x) - s*x,

and both are sound by definition of max/min.  The extrema of ``g`` over ``[l, u]`` lie at
``l``, ``u`` or at critical points ``cos(x + phi) = s``, i.e. ``x = +-arccos(s) - phi +
2 k pi``.  Along each of the two families ``g(x0 + 2 k pi) = g(x0) - 2 k pi s`` is monotone in
``k``, so only the first and the last member inside ``[l, u]`` can be extreme: six points in
all.  Candidate points are clamped into ``[l, u]``: evaluating ``g`` at extra points of the
interval never makes the max/min wrong as long as the true arg-max/arg-min is among them
(for ``|s| > 1`` there are no critical points and the clamped points are merely extra).  So
every slope gives sound bounds; the slope only decides tightness.  A rounded critical point
``x* + delta`` changes ``g`` by at most ``delta**2 / 2`` (``g' = 0``, ``|g''| <= 1``), and a
margin of ``8 eps (2 + |s| max(|l|, |u|))`` on the bias covers that and the rounding of
``f`` and ``s*x``.

**Slopes.**  Intervals of width ``>= 2 pi`` (or with non-finite ends) get the constant
bounds ``[-1, 1]``.  Otherwise, with ``f'' = -f``:

* where ``f`` has one curvature on ``[l, u]`` (no multiple of ``pi`` in ``(l + phi, u + phi)``)
  the chord dominates every line on the secant side (upper if convex, lower if concave);
  the other side uses the tangent slope at ``d``;
* on mixed-curvature intervals both sides use the tangent slope ``f'(d)`` (then shifted).

``alpha`` (``alpha_lower`` / ``alpha_upper``) picks ``d = l + alpha (u - l)``; every alpha
is sound.  Without alpha, each side takes, among the slopes ``{chord, 0, f'(l), f'(l + w/4),
f'(mid), f'(l + 3w/4), f'(u)}``, the one whose shifted line has the smallest area between
line and ``f`` (for one-signed curvature that is the tangent at the midpoint and the
chord).  Shapes: ``lower``/``upper`` ``(batch, *shape)``; alpha may add leading axes; the
results broadcast to ``alpha``'s shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch

from hybridver.ir.ops import OpKind
from hybridver.relaxations.base import LinearBounds, Traits, UnaryRelaxation, register
from hybridver.relaxations.errors import NotRelaxableError

Tensor = torch.Tensor
TWO_PI = 2 * math.pi


def _clamp(x: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    return torch.minimum(torch.maximum(x, lo), hi)


def _best(slopes: Tensor, biases: Tensor, mid: Tensor, upper: bool) -> tuple[Tensor, Tensor]:
    """Per element, the candidate line (axis 0) with the least area between it and ``f``:
    the smallest value at the midpoint for upper lines, the largest for lower lines."""
    slopes, biases, mid = torch.broadcast_tensors(slopes, biases, mid)
    value = slopes * mid + biases
    idx = (value.argmin(0) if upper else value.argmax(0)).unsqueeze(0)
    return slopes.gather(0, idx)[0], biases.gather(0, idx)[0]


class _ShiftedSine(UnaryRelaxation):
    """``f(x) = sin(x + phi)``; subclasses set ``phi``, ``f`` and ``fp`` (the derivative)."""

    phi: ClassVar[float]
    traits: ClassVar[Traits] = Traits(period=TWO_PI)
    optimizable: ClassVar[bool] = True
    f: ClassVar[Callable[[Tensor], Tensor]]
    fp: ClassVar[Callable[[Tensor], Tensor]]

    def function(self, x: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        return type(self).f(x)

    def extremes(self, lower: Tensor, upper: Tensor, slope: Tensor) -> tuple[Tensor, Tensor]:
        """Max and min of ``g(x) = f(x) - slope*x`` over ``[lower, upper]`` (exact up to
        rounding, see the module docstring); all arguments broadcast together."""
        f = type(self).f
        with torch.no_grad():
            base = torch.arccos(slope.clamp(-1.0, 1.0))
            points = []
            for sign in (1.0, -1.0):
                x0 = sign * base - self.phi
                for k in (torch.ceil((lower - x0) / TWO_PI), torch.floor((upper - x0) / TWO_PI)):
                    points.append(_clamp(x0 + TWO_PI * k, lower, upper))
            crit = torch.stack(torch.broadcast_tensors(*points))
        g = torch.cat([(f(crit) - slope * crit),
                       torch.stack(torch.broadcast_tensors(f(lower) - slope * lower,
                                                           f(upper) - slope * upper))])
        return g.max(0).values, g.min(0).values

    def bounds(self, lower: Tensor, upper: Tensor, attrs: Mapping[str, Any],
               alpha_lower: Tensor | None = None, alpha_upper: Tensor | None = None
               ) -> LinearBounds:
        fp = type(self).fp
        width = upper - lower
        wide = ~(width < TWO_PI)  # also catches inf / nan widths
        zero = torch.zeros_like(lower)
        l, u = torch.where(wide, zero, lower), torch.where(wide, zero, upper)
        w, mid = u - l, (l + u) / 2
        # chord slope, stably: (f(u) - f(l)) / w = f'(mid) * sin(w/2) / (w/2)
        chord = fp(mid) * torch.sinc(w / TWO_PI)
        # curvature: mixed iff some k pi lies strictly inside (l + phi, u + phi)
        first = (torch.floor((l + self.phi) / math.pi) + 1) * math.pi
        mixed = first < u + self.phi
        convex = torch.sin(mid + self.phi) < 0  # f'' = -f
        sides = []
        for alpha, is_upper in ((alpha_lower, False), (alpha_upper, True)):
            secant_side = ~mixed & (convex if is_upper else ~convex)
            if alpha is None:
                quarter = [l + t * w for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
                slopes = torch.stack(torch.broadcast_tensors(
                    chord, zero, *(fp(x) for x in quarter)))
            else:
                d = _clamp(l + alpha * w, l, u)
                slopes = torch.where(secant_side, chord, fp(d)).unsqueeze(0)
            smax, smin = self.extremes(l, u, slopes)
            slope, bias = _best(slopes, smax if is_upper else smin, mid, is_upper)
            eps = torch.finfo(lower.dtype).eps
            margin = 8 * eps * (2 + slope.abs() * torch.maximum(l.abs(), u.abs()))
            bias = bias + margin if is_upper else bias - margin
            # wide intervals: constant bounds
            slope = torch.where(wide, zero, slope)
            bias = torch.where(wide, torch.full_like(bias, 1.0 if is_upper else -1.0), bias)
            sides.append((slope, bias))
        (ls, lb), (us, ub) = sides
        if not all(bool(torch.isfinite(t).all()) for t in (ls, lb, us, ub)):
            raise NotRelaxableError(f"{self.op.value}: relaxation is not finite")
        return LinearBounds(ls, lb, us, ub)


@register
class Sin(_ShiftedSine):
    op = OpKind.SIN
    phi = 0.0
    f = staticmethod(torch.sin)
    fp = staticmethod(torch.cos)


@register
class Cos(_ShiftedSine):
    op = OpKind.COS
    phi = math.pi / 2
    f = staticmethod(torch.cos)
    fp = staticmethod(lambda x: -torch.sin(x))
