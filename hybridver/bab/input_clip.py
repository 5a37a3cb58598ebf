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

Pairs of rows: a disjunct's rows can each leave a point of the box while no point
satisfies two of them at once (a Lyapunov sublevel row beside a decrease row).  For
``t >= 0`` a counterexample also has ``(a_r + t a_s) . x + b_r + t b_s <= 0``, so a
disjunct is refuted when the minimum of that combination over its clipped box is
positive for some ``t``; the pairs of each disjunct's rows are tried with ``t`` in
:data:`PAIR_WEIGHTS` (powers of two, so ``t a_s`` is exact).  Rounding: the sum of
``a_r + t a_s`` (one rounding per entry), ``n`` products and ``n + 2`` additions is off
by at most ``gamma(2n + 8) * (|b_r| + t |b_s| + sum_k (|a_r,k| + t |a_s,k|) M_k)``, with
``M_k = max(|l_k|, |u_k|)``, which the minimum must exceed.

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

#: the weights ``t`` of the second row of a pair (powers of two: ``t * a`` is exact)
PAIR_WEIGHTS = tuple(2.0 ** k for k in range(-6, 7))
#: pairs tried per disjunct (the first rows' pairs, in order)
MAX_PAIRS = 6


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
        if rows.stop - rows.start >= 2:
            empty = empty | refuted_by_pairs(torch.where(empty[:, None], lower, cut_lo),
                                             torch.where(empty[:, None], upper, cut_hi),
                                             coef[:, rows], offset[:, rows])
        now_refuted.append(empty)
        union_lo = torch.where(empty[:, None], union_lo, torch.minimum(union_lo, cut_lo))
        union_hi = torch.where(empty[:, None], union_hi, torch.maximum(union_hi, cut_hi))
    refuted = torch.stack(now_refuted, dim=1)
    holds = refuted.all(dim=1, keepdim=True)
    return (torch.where(holds, lower, union_lo), torch.where(holds, upper, union_hi),
            refuted)


def refuted_by_pairs(lower: Tensor, upper: Tensor, coef: Tensor, offset: Tensor) -> Tensor:
    """Per box, whether some pair of rows ``r < s`` and weight ``t`` of
    :data:`PAIR_WEIGHTS` has ``min over [lower, upper] of (a_r + t a_s) . x + b_r + t b_s``
    above its rounding error (module docstring): ``lower, upper (K, n)``, ``coef (K, m,
    n)``, ``offset (K, m)`` float64 -> ``(K,)`` bool."""
    k_boxes, m, n = coef.shape
    t = torch.tensor(PAIR_WEIGHTS, dtype=coef.dtype, device=coef.device)[None, :, None]
    lo, hi = lower[:, None, :], upper[:, None, :]
    reach = torch.maximum(lo.abs(), hi.abs())                             # (K, 1, n)
    found = torch.zeros(k_boxes, dtype=torch.bool, device=coef.device)
    pairs = [(r, s) for r in range(m) for s in range(r + 1, m)][:MAX_PAIRS]
    for r, s in pairs:
        a = coef[:, r, None, :] + t * coef[:, s, None, :]                 # (K, T, n)
        low = torch.minimum(a * lo, a * hi).sum(-1)                       # (K, T)
        value = low + offset[:, r, None] + t[..., 0] * offset[:, s, None]
        mag = (offset[:, r, None].abs() + t[..., 0] * offset[:, s, None].abs()
               + ((coef[:, r, None, :].abs() + t * coef[:, s, None, :].abs()) * reach).sum(-1))
        found |= (value > gamma(2 * n + 8, U64) * mag).any(dim=1)
    return found
