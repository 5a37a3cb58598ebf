"""Branching of activation splitting (:mod:`hybridver.bab.activation_split`): which
neurons can be split, and which one to split per domain.

A candidate is a splittable nonlinear node (a unary nonlinearity read from a
pre-activation node of the graph).  The choice (BaBSR-like, see the activation-splitting
module docstring) scores each unstable neuron by the relaxation gap at its split point
weighted by ``|lambda|`` from one CROWN-style backward pass of the domain's critical row
(:func:`_sensitivities`), or by the gap alone when that pass is unavailable.  No
soundness role: whichever neuron is split, the two children cover the parent.
"""

from __future__ import annotations

import dataclasses

import torch

from hybridver.bounds.plan import NodeKind
from hybridver.bounds.sensitivity import branching_sensitivities

Tensor = torch.Tensor


@dataclasses.dataclass(frozen=True)
class _Candidate:
    """A splittable nonlinear node: ``act`` (the nonlinearity) reading pre-activation
    ``pre``."""

    act: str
    pre: str
    size: int
    shape: tuple[int, ...]


#: one split decision: (candidate index, flat neuron index, is_upper, point)
#: ``is_upper``: the decision sets the restriction's upper end (``hi := point``).
Decision = tuple[int, int, bool, float]


def _candidates(graph, plan) -> list[_Candidate]:
    out, seen = [], set()
    for name in plan.order:
        if plan.kind.get(name) is not NodeKind.UNARY:
            continue
        pre = plan.graph.node(name).inputs[0]
        if pre not in plan.pre_activations or pre not in graph or pre in seen:
            continue  # an input node, or a node created by decomposition
        seen.add(pre)
        node = plan.graph.node(pre)
        out.append(_Candidate(name, pre, node.size, tuple(node.shape)))
    return out


def _sensitivities(plan, intervals, rows_C: Tensor, cands: list[_Candidate]
                   ) -> dict[str, Tensor] | None:
    """``|lambda|`` ``(N, size)`` at each candidate's nonlinear output and at the input,
    from one backward walk of ``rows_C (N, n_out)`` with the slopes of the relaxations on
    the domains' intervals (:func:`hybridver.bounds.sensitivity.branching_sensitivities`);
    the signed input coefficients under the key :data:`SIGNED_INPUT`.  None when a node
    kind on the way has no backward rule there."""
    sens = branching_sensitivities(plan, intervals, rows_C, [c.act for c in cands])
    if sens is None:
        return None
    found = dict(sens.magnitudes)
    if sens.signed_input is not None:
        found[SIGNED_INPUT] = sens.signed_input
    return found


#: key of the signed input coefficients in :func:`_sensitivities`' answer
SIGNED_INPUT = "<signed input>"


def _choose_splits(plan, intervals, cands, sens, n: int, min_width: float
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """Per domain ``(candidate index, flat index, point)``; candidate index -1 where no
    neuron can be split."""
    best_score = torch.full((n,), -1.0, dtype=torch.float64)
    best_c = torch.full((n,), -1, dtype=torch.long)
    best_f = torch.zeros(n, dtype=torch.long)
    best_p = torch.zeros(n, dtype=torch.float64)
    for ci, cand in enumerate(cands):
        relax = plan.relaxations[cand.act]
        attrs = plan.attrs[cand.act]
        itv = intervals[cand.pre]
        lo = itv.lower.reshape(n, -1).to(torch.float64)
        hi = itv.upper.reshape(n, -1).to(torch.float64)
        finite = torch.isfinite(lo) & torch.isfinite(hi) & (hi - lo > min_width)
        safe_lo = torch.where(finite, lo, torch.zeros_like(lo))
        safe_hi = torch.where(finite, hi, torch.ones_like(hi))
        point = relax.branch_point(safe_lo, safe_hi, attrs)
        ok = finite & (safe_lo < point) & (point < safe_hi)
        bps = relax.traits.breakpoints
        if relax.traits.piecewise_linear and bps:
            crosses = torch.zeros_like(ok)
            for b in bps:
                crosses |= (safe_lo < b) & (b < safe_hi)
            ok &= crosses
        lb = relax.bounds(safe_lo, safe_hi, attrs)
        gap = (lb.upper_slope - lb.lower_slope) * point + (lb.upper_bias - lb.lower_bias)
        gap = torch.broadcast_to(gap, lo.shape)
        gap = torch.nan_to_num(gap, nan=0.0, posinf=0.0, neginf=0.0).clamp(min=0)
        # a tiny width term breaks ties among zero-gap (e.g. zero-sensitivity) neurons
        score = gap + 1e-12 * (safe_hi - safe_lo)
        if sens is not None and cand.act in sens:
            score = score * (sens[cand.act].to(torch.float64).cpu() + 1e-9)
        score = torch.where(ok.cpu(), score.cpu(), torch.full_like(score.cpu(), -1.0))
        val, arg = score.max(dim=1)
        better = val > best_score
        best_score = torch.where(better, val, best_score)
        best_c = torch.where(better, torch.full_like(best_c, ci), best_c)
        best_f = torch.where(better, arg, best_f)
        best_p = torch.where(better, point.cpu().gather(1, arg[:, None])[:, 0], best_p)
    best_c = torch.where(best_score > 0, best_c, torch.full_like(best_c, -1))
    return best_c, best_f, best_p
