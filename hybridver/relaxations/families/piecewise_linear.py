"""Piecewise-linear activations with one kink at 0: ReLU, LeakyReLU, Abs.

All three are ``f(x) = x`` for ``x >= 0`` and ``f(x) = a*x`` for ``x < 0``, with ``a = 0``
(ReLU), ``a = attrs["alpha"]`` (LeakyReLU, any real value) and ``a = -1`` (Abs).

* Stable intervals (``l >= 0`` or ``u <= 0``): ``f`` is linear there, both lines are exact.
* Unstable intervals (``l < 0 < u``), with ``s(alpha) = a + alpha*(1 - a)`` (alpha = 0 gives
  slope ``a``, alpha = 1 slope 1):

  - ``a <= 1``: ``f = max(x, a*x)`` is convex.  Upper line: the chord through
    ``(l, a*l)`` and ``(u, u)`` (a convex function lies below its chords).  Lower line:
    ``s*x`` for any ``s`` in ``[a, 1]`` (``s*x <= x`` for ``x >= 0`` as ``s <= 1``;
    ``s*x <= a*x`` for ``x < 0`` as ``s >= a``).  ``alpha_lower`` picks ``s(alpha_lower)``.
  - ``a > 1``: ``f = min(x, a*x)`` is concave: mirror image.  Lower line: the chord;
    upper line ``s*x`` for ``s`` in ``[1, a]``, picked by ``alpha_upper``.

  Default ``s`` (no alpha): 1 where ``u >= -l``, else ``a``: the line through 0 that
  minimizes the area between it and the chord (CROWN's adaptive choice).  For ReLU
  ``s = alpha_lower``; for Abs ``s = 2*alpha_lower - 1``.

The chord is ``slope = (u - a*l) / (u - l)``, ``bias = (a - 1)*u*l / (u - l)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from hybridver.ir.ops import OpKind
from hybridver.relaxations.base import LinearBounds, Traits, UnaryRelaxation, register

Tensor = torch.Tensor


def kinked_bounds(lower: Tensor, upper: Tensor, a: float, alpha_lower: Tensor | None,
                  alpha_upper: Tensor | None) -> LinearBounds:
    """Bounds of ``x -> x if x >= 0 else a*x`` on ``[lower, upper]`` (module docstring).

    Shapes: ``lower``, ``upper``: ``(...)``; ``alpha_*``: broadcastable against them, possibly
    with extra leading axes (e.g. a spec axis), which the result then has too.
    """
    positive = lower >= 0
    negative = upper <= 0
    unstable = ~positive & ~negative
    # safe denominators, so gradients through masked-out branches stay finite
    width = torch.where(unstable, upper - lower, 1.0)
    chord_slope = torch.where(unstable, (upper - a * lower) / width, 0.0)
    chord_bias = torch.where(unstable, (a - 1.0) * upper * lower / width, 0.0)
    concave = a > 1.0
    one, slope_a = torch.ones_like(lower), torch.full_like(lower, a)
    alpha = alpha_upper if concave else alpha_lower
    if alpha is None:
        kink_slope = torch.where(upper >= -lower, one, slope_a)
    else:
        kink_slope = a + alpha.clamp(0.0, 1.0) * (1.0 - a)
    stable_slope = torch.where(positive, one, slope_a)
    zero = torch.zeros_like(lower)
    origin_slope = torch.where(unstable, kink_slope, stable_slope)
    chord_slope = torch.where(unstable, chord_slope, stable_slope)
    if concave:
        return LinearBounds(chord_slope, chord_bias, origin_slope, zero)
    return LinearBounds(origin_slope, zero, chord_slope, chord_bias)


class _Kinked(UnaryRelaxation):
    optimizable: ClassVar[bool] = True

    def negative_slope(self, attrs: Mapping[str, Any]) -> float:
        raise NotImplementedError  # each op below gives its ``a``

    def function(self, x: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        return torch.where(x >= 0, x, self.negative_slope(attrs) * x)

    def bounds(self, lower: Tensor, upper: Tensor, attrs: Mapping[str, Any],
               alpha_lower: Tensor | None = None, alpha_upper: Tensor | None = None
               ) -> LinearBounds:
        return kinked_bounds(lower, upper, self.negative_slope(attrs), alpha_lower, alpha_upper)


@register
class ReLU(_Kinked):
    op = OpKind.RELU
    traits = Traits(piecewise_linear=True, monotone="increasing", convex=True,
                    breakpoints=(0.0,))

    def negative_slope(self, attrs: Mapping[str, Any]) -> float:
        return 0.0

    def function(self, x: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        return torch.relu(x)


@register
class LeakyReLU(_Kinked):
    """``attrs["alpha"]`` is the slope for ``x < 0`` (ONNX LeakyRelu's alpha, default 0.01).
    Not declared monotone nor convex: both depend on the attribute (alpha < 0: not
    monotone; alpha > 1: concave)."""

    op = OpKind.LEAKY_RELU
    traits = Traits(piecewise_linear=True, breakpoints=(0.0,))

    def negative_slope(self, attrs: Mapping[str, Any]) -> float:
        return float(attrs.get("alpha", 0.01))


@register
class Abs(_Kinked):
    op = OpKind.ABS
    traits = Traits(piecewise_linear=True, convex=True, breakpoints=(0.0,))

    def negative_slope(self, attrs: Mapping[str, Any]) -> float:
        return -1.0

    def function(self, x: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        return torch.abs(x)
