"""Filtered smart branching (FSB) for activation splitting: score the neurons cheaply
(the BaBSR-like score of :mod:`hybridver.bab.branching`), re-bound both children of the
``k`` best-scored neurons of every open domain, and split the neuron whose worse child
has the higher bound.

The re-bounding is cheap: one CROWN pass of the spec rows per child with the parent's
intervals held fixed.  Every pre-activation node of a child is restricted to the
parent's interval (``res.intervals``, sound on the parent's domain, so also on the
child's), the split neuron's side on top; with IBP as the intermediate method the
engine then uses exactly those intervals, and no intermediate backward pass runs.

No soundness role: whichever neuron is split, the two children cover the parent; the
children's bounds computed here only rank candidates.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from hybridver.bab.branching import _choose_splits, _split_scores, _top_splits
from hybridver.bab.input_split import disjunct_margins
from hybridver.bounds.engine import compute_bounds
from hybridver.bounds.options import BoundMethod, IntermediateMethod

Tensor = torch.Tensor


def fsb_choose(graph, plan, cands, b, sens, C: np.ndarray, d: np.ndarray, groups,
               bconfig, k: int, min_width: float, device) -> tuple[Tensor, Tensor, Tensor]:
    """Per domain of the bounded batch ``b`` (:class:`~hybridver.bab.activation_split.
    _Bounded`) ``(candidate index, flat index, point)`` as
    :func:`~hybridver.bab.branching._choose_splits` gives them, but for each open domain
    the best of its ``k`` top-scored neurons by the worse child's CROWN margin."""
    n = len(b.domains)
    intervals = b.res.intervals
    if not cands:   # nothing splittable (products only): as the plain choice says
        return _choose_splits(plan, intervals, cands, sens, n, min_width)
    top_c, top_f, top_p, _ = _top_splits(
        _split_scores(plan, intervals, cands, sens, n, min_width), k)
    ci, fi, pt = top_c[:, 0].clone(), top_f[:, 0].clone(), top_p[:, 0].to(torch.float64)
    opened = b.open_idx
    valid = top_c[opened] >= 0                                   # (n_o, k)
    if opened.numel() == 0 or top_c.shape[1] < 2 or int(valid[:, 1:].sum()) == 0:
        return ci, fi, pt
    n_o, kk = valid.shape
    # children: domain-major, then candidate, then side (upper end set: hi := p; else lo)
    dom = opened.repeat_interleave(2 * kk)
    cand = top_c[opened].repeat_interleave(2, 1).reshape(-1)
    flat = top_f[opened].repeat_interleave(2, 1).reshape(-1)
    point = top_p[opened].repeat_interleave(2, 1).reshape(-1).to(torch.float64)
    upper_side = torch.tensor([True, False]).repeat(n_o * kk)
    restr = {}
    for c_i, c in enumerate(cands):
        itv = intervals[c.pre]
        lo = itv.lower.reshape(n, -1).to(torch.float64).cpu()[dom]
        hi = itv.upper.reshape(n, -1).to(torch.float64).cpu()[dom]
        if c.pre in b.restr:
            rl, ru = b.restr[c.pre]
            lo = torch.maximum(lo, rl.reshape(n, -1).cpu()[dom])
            hi = torch.minimum(hi, ru.reshape(n, -1).cpu()[dom])
        rows = torch.nonzero(cand == c_i).reshape(-1)
        if rows.numel():
            up, at = upper_side[rows], flat[rows]
            hi[rows[up], at[up]] = torch.minimum(hi[rows[up], at[up]], point[rows[up]])
            lo[rows[~up], at[~up]] = torch.maximum(lo[rows[~up], at[~up]], point[rows[~up]])
        restr[c.pre] = (lo.reshape(-1, *c.shape), hi.reshape(-1, *c.shape))
    config = dataclasses.replace(bconfig, method=BoundMethod.CROWN,
                                 intermediate=IntermediateMethod.IBP)
    idx = dom.numpy()
    res = compute_bounds(graph, b.blo[idx], b.bhi[idx], C, d, config=config,
                         restrictions=restr, bound_upper=False, device=device)
    margin = disjunct_margins(res.lower, groups).cpu().to(torch.float64)
    margin = torch.where(res.infeasible.cpu(), torch.full_like(margin, np.inf), margin)
    worst = margin.reshape(n_o, kk, 2).min(dim=2).values
    worst = torch.where(valid, worst, torch.full_like(worst, -np.inf))
    pick = worst.argmax(dim=1)                                   # first of equal ones
    ci[opened] = top_c[opened].gather(1, pick[:, None])[:, 0]
    fi[opened] = top_f[opened].gather(1, pick[:, None])[:, 0]
    pt[opened] = top_p[opened].gather(1, pick[:, None])[:, 0].to(torch.float64)
    return ci, fi, pt
