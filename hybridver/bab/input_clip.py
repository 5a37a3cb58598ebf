"""Shrinking input-split domains to where a counterexample can still be (domain clipping).

For every domain (box ``[l, u]``) and spec row ``r`` the bound function may return CROWN's
linear lower bound ``a_r . x + b_r <= row_r(x)``, valid at every point of the box
(:attr:`hybridver.bounds.engine.BoundResult.input_offset`).  A counterexample of disjunct
``j`` has ``row_r(x) <= 0`` for every row ``r`` of ``j``, hence ``a_r . x + b_r <= 0``: it
lies in the box cut by those half-spaces.  The smallest box around one half-space cut is
closed-form: for ``a_i > 0``,

    x_i <= (-b - sum_{k != i} min(a_k l_k, a_k u_k)) / a_i      (``>=`` for ``a_i < 0``),

the boxes of the rows of a disjunct intersect, and the boxes of the disjuncts that are not
yet refuted unite (their bounding box).  So every counterexample of the domain lies in the
clipped box; a disjunct whose intersection is empty has none, and a domain whose
disjuncts are all empty holds.  Splitting the clipped box instead of the whole one loses no
counterexample, and the pre-activation bounds of the domain stay sound on the sub-box.

Rounding: the numerator is a float64 sum of ``n + 1`` terms, each a product; its error is
at most ``gamma(2n + 4) * (|b| + sum_k |a_k| max(|l_k|, |u_k|))`` and is added to the
numerator before the division, whose own rounding is covered by a relative ``4 u`` moved
outward.  A coefficient that is zero, or a result that is not finite, leaves that end of
the box as it was.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hybridver.numerics import U64, gamma

Tensor = torch.Tensor


def clip_to_halfspaces(lower: Tensor, upper: Tensor, coef: Tensor, offset: Tensor
                       ) -> tuple[Tensor, Tensor]:
    """Per domain and row, the smallest box around ``{x in [lower, upper]: coef . x +
    offset <= 0}``, rounded outward: ``lower, upper (K, n)``, ``coef (K, m, n)``, ``offset
    (K, m)`` float64 -> ``(K, m, n)`` twice (``lower > upper`` somewhere: the cut is empty)."""
    lo, hi = lower[:, None, :], upper[:, None, :]
    low_terms = torch.minimum(coef * lo, coef * hi)                  # (K, m, n)
    s_min = low_terms.sum(-1, keepdim=True)
    n = coef.shape[-1]
    mag = offset.abs()[..., None] + (coef.abs() * torch.maximum(lo.abs(), hi.abs())
                                     ).sum(-1, keepdim=True)
    # a_i x_i <= t_i, t_i = -b - (s_min - low_i), enlarged by its rounding error
    t = -offset[..., None] - (s_min - low_terms) + gamma(2 * n + 4, U64) * mag
    with torch.no_grad():
        bound = t / coef
    widen = 4 * U64 * bound.abs() + torch.finfo(torch.float64).tiny
    up_cut = torch.where((coef > 0) & torch.isfinite(bound), bound + widen, hi)
    lo_cut = torch.where((coef < 0) & torch.isfinite(bound), bound - widen, lo)
    return torch.maximum(lo, lo_cut), torch.minimum(hi, up_cut)


def clip_domains(lower: Tensor, upper: Tensor, coef: Tensor, offset: Tensor,
                 groups: Sequence[slice], refuted: Tensor
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """Clip ``K`` boxes to their possible counterexamples (module docstring).

    ``coef (K, m, n)``, ``offset (K, m)``: each row's linear lower bound on its box;
    ``groups``: the rows of each disjunct; ``refuted (K, g)`` bool: disjuncts already
    refuted on the domain.  Returns the clipped boxes ``(K, n)`` twice and ``refuted``
    updated with the disjuncts whose cut is empty (``(K, g)``); where every disjunct is
    refuted the box is returned unchanged (the domain holds)."""
    row_lo, row_hi = clip_to_halfspaces(lower, upper, coef, offset)
    inf = torch.full_like(lower, float("inf"))
    union_lo, union_hi = inf, -inf
    now_refuted = []
    for j, rows in enumerate(groups):
        cut_lo = row_lo[:, rows].max(dim=1).values
        cut_hi = row_hi[:, rows].min(dim=1).values
        empty = refuted[:, j] | (cut_lo > cut_hi).any(dim=1)
        now_refuted.append(empty)
        union_lo = torch.where(empty[:, None], union_lo, torch.minimum(union_lo, cut_lo))
        union_hi = torch.where(empty[:, None], union_hi, torch.maximum(union_hi, cut_hi))
    refuted = torch.stack(now_refuted, dim=1)
    holds = refuted.all(dim=1, keepdim=True)
    return (torch.where(holds, lower, union_lo), torch.where(holds, upper, union_hi),
            refuted)
