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


def _split_scores(plan, intervals, cands, sens, n: int, min_width: float
                  ) -> list[tuple[Tensor, Tensor]]:
    """Per candidate ``(score, point)``, each ``(N, size)`` on the CPU: the BaBSR-like
    score of splitting each neuron at ``point`` (-1 where it cannot be split)."""
    out = []
    for cand in cands:
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
        out.append((score, torch.broadcast_to(point, lo.shape).cpu()))
    return out


def _top_splits(scores: list[tuple[Tensor, Tensor]], k: int
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The ``k`` best-scored neurons per domain over all candidates: ``(candidate index,
    flat index, point, score)``, each ``(N, k)``, best first; candidate index -1 where
    fewer than ``k`` neurons can be split (score <= 0)."""
    score = torch.cat([s for s, _ in scores], 1)
    point = torch.cat([p for _, p in scores], 1)
    owner = torch.cat([torch.full((s.shape[1],), ci, dtype=torch.long)
                       for ci, (s, _) in enumerate(scores)])
    start = torch.cat([torch.full((s.shape[1],), off, dtype=torch.long) for s, off in
                       zip((s for s, _ in scores), _offsets([s.shape[1] for s, _ in scores]))])
    k = min(k, score.shape[1])
    if k == 1:   # the first of equal scores, as a plain maximum finds it
        val, arg = score.max(dim=1, keepdim=True)
    else:
        val, arg = score.topk(k, dim=1)
    ci = torch.where(val > 0, owner[arg], torch.full_like(arg, -1))
    return ci, arg - start[arg], point.gather(1, arg), val


def _offsets(sizes: list[int]) -> list[int]:
    out, total = [], 0
    for size in sizes:
        out.append(total)
        total += size
    return out


def _choose_splits(plan, intervals, cands, sens, n: int, min_width: float
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """Per domain ``(candidate index, flat index, point)``; candidate index -1 where no
    neuron can be split."""
    if not cands:
        empty = torch.zeros(n, dtype=torch.long)
        return empty - 1, empty, torch.zeros(n, dtype=torch.float64)
    ci, fi, pt, _ = _top_splits(_split_scores(plan, intervals, cands, sens, n, min_width), 1)
    return ci[:, 0], fi[:, 0], pt[:, 0].to(torch.float64)
