"""Products and quotients of two variables: MUL (``x * y``) and DIV (``x / y``).

These are for nodes whose operands are both variables; a constant operand makes the node
linear and the engine handles it directly.  Shapes: the four interval tensors share one
shape ``(batch, *shape)``; alpha may add leading axes; results broadcast to alpha's shape.

**MUL: McCormick planes.**  On ``[xl, xu] x [yl, yu]``

    L1 = yl x + xl y - xl yl,   L2 = yu x + xu y - xu yu   (x y - L1 = (x - xl)(y - yl) >= 0,
                                                             x y - L2 = (xu - x)(yu - y) >= 0)
    U1 = yu x + xl y - xl yu,   U2 = yl x + xu y - xu yl   (U1 - x y = (x - xl)(yu - y) >= 0,
                                                             U2 - x y = (xu - x)(y - yl) >= 0)

A convex combination of valid lower (upper) planes is a valid lower (upper) plane, so
``alpha_lower`` gives ``alpha L1 + (1 - alpha) L2`` and ``alpha_upper`` gives ``alpha U1 +
(1 - alpha) U2``; every alpha in ``[0, 1]`` is sound.  Both planes of a pair have the same
mean gap over the box; the default ``alpha = 0.5`` halves the worst gap (``(xu - xl)(yu -
yl)`` for a single plane, half that for the average).

**DIV: shifted tangent planes.**  ``y`` must not contain 0 (else
:class:`~hybridver.relaxations.errors.NotRelaxableError`).  Slopes are convex combinations
(by alpha, default 0.5) of gradients ``(1/y0, -x0/y0**2)`` of ``x / y`` at box corners, the
analogues of McCormick for ``x * (1/y)``: lower from ``(xl, yu)`` and ``(xu, yl)``, upper
from ``(xl, yl)`` and ``(xu, yu)``.  The bias is then *shifted by the exact extreme* of
``h(x, y) = x / y - a x - b y`` over the box, so every slope is sound: ``h`` is linear in
``x``, hence extreme at ``x = xl`` or ``xu``; for fixed ``x``, ``dh/dy = -x / y**2 - b`` vanishes
at ``y = +-sqrt(-x / b)``; these (clamped into ``[yl, yu]``, where extra points are
harmless) and the corners hold the max and min.

Rounding: biases move outward by ``16 eps`` times the magnitude of the terms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from hybridver.ir.ops import OpKind
from hybridver.relaxations.base import BilinearBounds, BinaryRelaxation, Traits, register
from hybridver.relaxations.errors import NotRelaxableError

Tensor = torch.Tensor


def _alpha(alpha: Tensor | None) -> Tensor | float:
    """The plane-mixing weight; None means the default 0.5."""
    return 0.5 if alpha is None else alpha


def _check_finite(name: str, *tensors: Tensor) -> None:
    if not all(bool(torch.isfinite(t).all()) for t in tensors):
        raise NotRelaxableError(f"{name}: non-finite bounds")


@register
class Mul(BinaryRelaxation):
    """McCormick planes of ``x * y``; alpha interpolates the two planes of each side."""

    op = OpKind.MUL
    traits = Traits()
    optimizable = True

    def function(self, x: Tensor, y: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        return x * y

    def bounds(self, x_lower: Tensor, x_upper: Tensor, y_lower: Tensor, y_upper: Tensor,
               attrs: Mapping[str, Any], alpha_lower: Tensor | None = None,
               alpha_upper: Tensor | None = None) -> BilinearBounds:
        _check_finite("mul", x_lower, x_upper, y_lower, y_upper)
        xl, xu, yl, yu = x_lower, x_upper, y_lower, y_upper
        a, b = _alpha(alpha_lower), _alpha(alpha_upper)
        scale = torch.maximum(xl.abs(), xu.abs()) * torch.maximum(yl.abs(), yu.abs())
        margin = 16 * torch.finfo(xl.dtype).eps * scale
        return BilinearBounds(
            lower_x=a * yl + (1 - a) * yu, lower_y=a * xl + (1 - a) * xu,
            lower_bias=-(a * xl * yl + (1 - a) * xu * yu) - margin,
            upper_x=b * yu + (1 - b) * yl, upper_y=b * xl + (1 - b) * xu,
            upper_bias=-(b * xl * yu + (1 - b) * xu * yl) + margin)


def quotient_extremes(xl: Tensor, xu: Tensor, yl: Tensor, yu: Tensor, a: Tensor, b: Tensor
                      ) -> tuple[Tensor, Tensor]:
    """Max and min of ``x / y - a x - b y`` over the box (``0`` not in ``[yl, yu]``)."""
    values = []
    for x in (xl, xu):
        with torch.no_grad():
            safe_b = torch.where(b == 0, torch.ones_like(b), b)
            ratio = torch.where(b == 0, torch.zeros_like(b), -x / safe_b).clamp(min=0)
            root = torch.sqrt(ratio)
            crit = [torch.minimum(torch.maximum(r, yl), yu) for r in (root, -root)]
        for y in (yl, yu, *crit):
            values.append(x / y - a * x - b * y)
    stacked = torch.stack(torch.broadcast_tensors(*values))
    return stacked.max(0).values, stacked.min(0).values


@register
class Div(BinaryRelaxation):
    """``x / y`` for ``y`` bounded away from 0: shifted tangent planes (module docstring)."""

    op = OpKind.DIV
    traits = Traits()
    optimizable = True

    def function(self, x: Tensor, y: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        return x / y

    def bounds(self, x_lower: Tensor, x_upper: Tensor, y_lower: Tensor, y_upper: Tensor,
               attrs: Mapping[str, Any], alpha_lower: Tensor | None = None,
               alpha_upper: Tensor | None = None) -> BilinearBounds:
        _check_finite("div", x_lower, x_upper, y_lower, y_upper)
        xl, xu, yl, yu = x_lower, x_upper, y_lower, y_upper
        if bool(((yl <= 0) & (yu >= 0)).any()):
            raise NotRelaxableError("div: the divisor's interval contains 0")

        def grad(x0: Tensor, y0: Tensor) -> tuple[Tensor, Tensor]:
            return 1 / y0, -x0 / (y0 * y0)

        sides = []
        for alpha, corners in ((alpha_lower, ((xl, yu), (xu, yl))),
                               (alpha_upper, ((xl, yl), (xu, yu)))):
            t = _alpha(alpha)
            (ax1, ay1), (ax2, ay2) = grad(*corners[0]), grad(*corners[1])
            sx, sy = t * ax1 + (1 - t) * ax2, t * ay1 + (1 - t) * ay2
            sides.append((sx, sy, *quotient_extremes(xl, xu, yl, yu, sx, sy)))
        (lx, ly, _, lmin), (ux, uy, umax, _) = sides
        mx = torch.maximum(xl.abs(), xu.abs())
        my = torch.maximum(yl.abs(), yu.abs())
        q = mx / torch.minimum(yl.abs(), yu.abs())
        eps = 16 * torch.finfo(xl.dtype).eps
        lower_bias = lmin - eps * (q + lx.abs() * mx + ly.abs() * my)
        upper_bias = umax + eps * (q + ux.abs() * mx + uy.abs() * my)
        _check_finite("div", lx, ly, lower_bias, ux, uy, upper_bias)
        return BilinearBounds(lx, ly, lower_bias, ux, uy, upper_bias)
