"""S-shaped activations: sigmoid, tanh, erf.

Each ``f`` is increasing, strictly convex on ``(-inf, 0]`` and strictly concave on
``[0, inf)`` (inflection at 0), and point-symmetric about ``(0, c)`` with ``c = f(0)``:
``f(-x) = 2c - f(x)``.  Only the UPPER line is constructed (:meth:`SShapedRelaxation.upper_line`);
the lower line on ``[l, u]`` is the mirror image of the upper line on ``[-u, -l]``: if
``f(y) <= s*y + b`` for ``y in [-u, -l]`` then ``f(x) = 2c - f(-x) >= s*x + (2c - b)``.

Upper line on ``[l, u]`` (``m = (l + u) / 2``):

* ``u <= 0`` (convex part): the chord.  Sound: a convex function lies below its chords.
* ``l >= 0`` (concave part): the tangent at ``d = l + alpha*(u - l)`` (default ``d = m``,
  which minimizes the area under the tangent).  Sound: a concave function lies below every
  tangent taken on its concave part.
* ``l < 0 < u``: let ``t_d(x) = f(d) + f'(d)(x - d)`` and ``phi(d) = t_d(l) - f(l)``.

  Claim: for ``d >= 0``, ``t_d >= f`` on ``[l, u]`` iff ``phi(d) >= 0``.  On ``[0, inf)``,
  ``t_d >= f`` by concavity.  On ``[l, 0]``, ``h = t_d - f`` is concave (linear minus
  convex), ``h(0) >= 0``, so ``h >= 0`` on ``[l, 0]`` iff ``h(l) = phi(d) >= 0``.

  ``phi'(d) = f''(d)(l - d) > 0`` for ``d > 0`` (``f'' < 0`` there and ``l < d``), and
  ``phi(0) < 0`` (the tangent at 0 of the convex part passes below ``f(l)``), ``phi(inf) =
  sup f - f(l) > 0``: so ``phi`` has a single root ``d*(l) > 0`` and EVERY ``d >= d*(l)``
  (also ``d > u``) gives a sound tangent.  This is why a tabulated point rounded UP is safe.

  ``d*`` is decreasing in ``l``: ``dd*/dl = -(f'(d*) - f'(l)) / (f''(d*)(l - d*)) < 0``
  (``f'(d*) > f'(l)`` because ``h'(l) >= (h(0) - h(l)) / (0 - l) > 0``).  So for ``l`` in
  ``[g_k, g_{k+1}]`` of the table grid, ``d*(g_{k+1}) <= d*(l) <= d*(g_k)``: the table's
  upper bracket at ``g_k`` is a safe tangent point, its lower bracket at ``g_{k+1}`` a safe
  lower bound of ``d*(l)``.

  - If ``d*(l) >= u`` the chord is sound: ``phi(u) <= 0`` gives ``f'(u) >= chord slope``,
    so ``chord - f`` decreases on ``[0, u]`` (``f'`` decreasing there) to 0 at ``u``; on
    ``[l, 0]`` it is concave and >= 0 at both ends.  Used when the table's lower bound of
    ``d*(l)`` is ``>= u``.
  - Otherwise the tangent at ``d = d_hi + alpha*(u - d_hi)`` where ``d_hi >= d*(l)`` is the
    table's (rounded-up) point; default ``d = clamp(m, d_hi, u)``, the area-minimizing
    tangent among the sound ones.  When ``d_hi >= u`` (the grid cannot decide) the tangent
    at ``d_hi`` itself is used (sound by the claim, also beyond ``u``).
  - ``l`` below the table (``< -1e6``) or infinite bounds: the constant ``f(u)`` (f is
    increasing), unless the chord is decided sound.

Every bias is moved outward by ``8 eps (1 + |s| max(|l|, |u|) + max(|f(l)|, |f(u)|))`` (``eps``
of the dtype), which covers the rounding of ``f``, ``f'``, ``s*x`` and of the sums.

``alpha`` (``alpha_upper`` for the upper line, ``alpha_lower`` for the lower line) always
moves the tangent point linearly over its sound range, left end at 0, right end at 1:
upper ``[l, u]`` / ``[d_hi, u]``, lower ``[l, u]`` / ``[l, e_lo]`` with ``e_lo = -d_hi(-u)``.
Where the line is a chord or a constant, alpha has no effect.

Tangent points come from ``hybridver/tables/tangent_points.npz`` (see
``tools/make_tangent_tables.py``); branching points from ``hybridver/tables/branch_points.npz``.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from hybridver.ir.ops import OpKind
from hybridver.relaxations import tables
from hybridver.relaxations.base import LinearBounds, Traits, UnaryRelaxation, register

Tensor = torch.Tensor

TANGENT_TABLE = "tangent_points.npz"
BRANCH_TABLE = "branch_points.npz"
_SLACK_ULPS = 8.0


def _round(x64: Tensor, dtype: torch.dtype, up: bool) -> Tensor:
    """``x64`` (float64) converted to ``dtype``, rounded towards +inf (``up``) or -inf."""
    y = x64.to(dtype)
    if dtype == torch.float64:
        return y
    back = y.to(torch.float64)
    step = torch.full_like(y, math.inf if up else -math.inf)
    wrong = back < x64 if up else back > x64
    return torch.where(wrong, torch.nextafter(y, step), y)


class SShapedRelaxation(UnaryRelaxation):
    """Shared relaxation of the S-shaped functions; subclasses give ``f``, ``f'`` and ``f(0)``."""

    traits: ClassVar[Traits] = Traits(monotone="increasing", s_shaped=True, inflection=0.0)
    optimizable: ClassVar[bool] = True
    #: name of this function's arrays in the tables
    table_key: ClassVar[str]
    #: f(0), the centre of symmetry: f(-x) = 2*center - f(x)
    center: ClassVar[float]

    @abstractmethod
    def derivative(self, x: Tensor) -> Tensor:
        """``f'(x)``, elementwise."""

    # ---- tangent-point table -------------------------------------------------------------

    def tangent_point_bracket(self, l: Tensor) -> tuple[Tensor, Tensor]:
        """``(d_lo, d_hi)`` with ``d_lo <= d*(l) <= d_hi`` for ``l <= 0`` (module docstring),
        in ``l``'s dtype (rounded outwards).  ``d_hi = inf`` below the table's range."""
        device = l.device
        grid = tables.tensor(TANGENT_TABLE, "grid", device)
        lo_tab = tables.tensor(TANGENT_TABLE, f"{self.table_key}_lo", device)
        hi_tab = tables.tensor(TANGENT_TABLE, f"{self.table_key}_hi", device)
        l64 = l.detach().to(torch.float64).contiguous()
        k = torch.searchsorted(grid, l64, right=True) - 1      # last grid point <= l
        d_hi = torch.where(k >= 0, hi_tab[k.clamp(min=0)], math.inf)
        j = torch.searchsorted(grid, l64, right=False).clamp(max=grid.numel() - 1)
        d_lo = lo_tab[j]                                        # first grid point >= l
        return _round(d_lo, l.dtype, up=False), _round(d_hi, l.dtype, up=True)

    # ---- lines -----------------------------------------------------------------------------

    def tangent(self, d: Tensor) -> tuple[Tensor, Tensor]:
        """Slope and bias of the tangent line at ``d``."""
        slope = self.derivative(d)
        return slope, self.function(d, {}) - slope * d

    def upper_line(self, lower: Tensor, upper: Tensor, alpha: Tensor | None
                   ) -> tuple[Tensor, Tensor]:
        """Slope and bias of a line above ``f`` on ``[lower, upper]`` (module docstring)."""
        finite = torch.isfinite(lower) & torch.isfinite(upper)
        l = torch.where(finite, lower, 0.0)
        u = torch.where(finite, upper, 0.0)
        fl, fu = self.function(l, {}), self.function(u, {})
        width = u - l
        positive = width > 0
        chord_slope = torch.where(positive, (fu - fl) / torch.where(positive, width, 1.0), 0.0)
        chord_bias = fl - chord_slope * l

        crossing = (l < 0) & (u > 0)
        star_lo, star_hi = self.tangent_point_bracket(torch.where(crossing, l, 0.0))
        beyond_table = crossing & torch.isinf(star_hi)
        d_min = torch.where(crossing & ~beyond_table, star_hi, l)
        d_max = torch.maximum(d_min, u)
        if alpha is None:
            d = torch.minimum(torch.maximum((l + u) / 2, d_min), d_max)
        else:
            d = d_min + alpha.clamp(0.0, 1.0) * (d_max - d_min)
        tan_slope, tan_bias = self.tangent(d)

        use_chord = (u <= 0) | (crossing & (star_lo >= u))
        slope = torch.where(use_chord, chord_slope, tan_slope)
        bias = torch.where(use_chord, chord_bias, tan_bias)
        constant = (beyond_table & ~use_chord) | ~finite
        slope = torch.where(constant, 0.0, slope)
        bias = torch.where(constant, self.function(upper, {}), bias)
        # outward by the rounding of f, f', s*x and the sums (a few ulp of each term)
        reach = torch.maximum(l.abs(), u.abs())
        margin = _SLACK_ULPS * torch.finfo(bias.dtype).eps * (
            1.0 + slope.abs() * reach + torch.maximum(fl.abs(), fu.abs()))
        return slope, bias + margin

    def bounds(self, lower: Tensor, upper: Tensor, attrs: Mapping[str, Any],
               alpha_lower: Tensor | None = None, alpha_upper: Tensor | None = None
               ) -> LinearBounds:
        """Lower/upper lines on ``[lower, upper]``; ``alpha_*`` move the tangent points."""
        up_slope, up_bias = self.upper_line(lower, upper, alpha_upper)
        mirrored_alpha = None if alpha_lower is None else 1.0 - alpha_lower
        lo_slope, lo_bias = self.upper_line(-upper, -lower, mirrored_alpha)
        return LinearBounds(lo_slope, 2.0 * self.center - lo_bias, up_slope, up_bias)

    # ---- branching -------------------------------------------------------------------------

    def gap(self, lower: Tensor, upper: Tensor) -> Tensor:
        """Area between the default upper and lower lines over ``[lower, upper]``."""
        b = self.bounds(lower, upper, {})
        mid = (lower + upper) / 2
        height = (b.upper_slope - b.lower_slope) * mid + (b.upper_bias - b.lower_bias)
        return (upper - lower) * height

    def split_gap(self, lower: Tensor, point: Tensor, upper: Tensor) -> Tensor:
        """Total gap of the two halves ``[lower, point]`` and ``[point, upper]``."""
        return self.gap(lower, point) + self.gap(point, upper)

    def table_fraction(self, lower: Tensor, upper: Tensor) -> Tensor:
        """Pre-optimized split fraction ``(p - l) / (u - l)``, bilinear in the
        ``(l, u)`` grid of ``branch_points.npz``; NaN outside the grid."""
        arrays = tables.load_npz(BRANCH_TABLE)
        axis = arrays["axis"]
        start, step, n = float(axis[0]), float(axis[1] - axis[0]), int(axis.size)
        table = tables.tensor(BRANCH_TABLE, f"{self.table_key}_fraction", lower.device)
        l64, u64 = lower.detach().to(torch.float64), upper.detach().to(torch.float64)
        inside = (l64 >= start) & (u64 <= float(axis[-1])) & (l64 < u64)
        fi = ((l64 - start) / step).nan_to_num(0.0).clamp(0, n - 1)
        fj = ((u64 - start) / step).nan_to_num(0.0).clamp(0, n - 1)
        i0 = fi.floor().clamp(max=n - 2).long()
        j0 = fj.floor().clamp(max=n - 2).long()
        ti, tj = fi - i0, fj - j0
        frac = ((1 - ti) * (1 - tj) * table[i0, j0] + ti * (1 - tj) * table[i0 + 1, j0]
                + (1 - ti) * tj * table[i0, j0 + 1] + ti * tj * table[i0 + 1, j0 + 1])
        return torch.where(inside, frac, math.nan).to(lower.dtype)

    def branch_point(self, lower: Tensor, upper: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        """The tabulated point minimizing the two halves' total gap, kept only where it
        beats the midpoint and lies strictly inside ``(lower, upper)``; else the midpoint."""
        mid = (lower + upper) / 2
        frac = self.table_fraction(lower, upper)
        point = lower + frac * (upper - lower)
        usable = torch.isfinite(point) & (lower < point) & (point < upper)
        point = torch.where(usable, point, mid)
        better = self.split_gap(lower, point, upper) < self.split_gap(lower, mid, upper)
        return torch.where(usable & better, point, mid)


@register
class Sigmoid(SShapedRelaxation):
    op = OpKind.SIGMOID
    table_key = "sigmoid"
    center = 0.5

    def function(self, x: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        return torch.sigmoid(x)

    def derivative(self, x: Tensor) -> Tensor:
        return torch.sigmoid(x) * torch.sigmoid(-x)


@register
class Tanh(SShapedRelaxation):
    op = OpKind.TANH
    table_key = "tanh"
    center = 0.0

    def function(self, x: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        return torch.tanh(x)

    def derivative(self, x: Tensor) -> Tensor:
        # 1 - tanh(x)**2 cancels to 0 for large |x|; this form keeps relative accuracy
        return 4.0 * torch.sigmoid(2.0 * x) * torch.sigmoid(-2.0 * x)


@register
class Erf(SShapedRelaxation):
    op = OpKind.ERF
    table_key = "erf"
    center = 0.0

    def function(self, x: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        return torch.erf(x)

    def derivative(self, x: Tensor) -> Tensor:
        return (2.0 / math.sqrt(math.pi)) * torch.exp(-x * x)
