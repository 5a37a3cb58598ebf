"""Branch-and-bound by splitting the input box (for low-dimensional inputs, e.g. ACAS Xu).

A domain is a sub-box of one spec case's input box.  Bounding a batch of domains gives,
for every row ``r`` of the case's stacked constraints, a lower bound ``row_lower[r]`` of
``(C y + d)_r`` over the domain.  A disjunct is refuted on a domain when one of its rows has
a positive lower bound; a domain is proven when every disjunct is refuted.  Unproven
domains are split in two along one input dimension and bounded again, hardest first, until
every domain is proven (the case holds), a confirmed counterexample is found, or time runs
out.  Soundness rests on the bound function and on the split covering the parent box:
children ``[l, m]`` and ``[m, u]`` share the midpoint, so no point is lost.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

Tensor = torch.Tensor

#: ``bound_fn(lower (N, n_in), upper (N, n_in)) -> (row_lower (N, m), coef (N, m, n_in) | None)``
#: where ``coef`` are the input coefficients of the linear lower bounds (CROWN's A), used to
#: choose split dimensions; None when the method has none (IBP).
BoundFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor | None]]
#: ``probe(points (K, n_in)) -> index of a confirmed counterexample among them, or None``.
ProbeFn = Callable[[np.ndarray], int | None]


@dataclasses.dataclass(frozen=True)
class InputSplitConfig:
    batch_size: int = 512
    max_domains: int = 2_000_000
    probe_every: int = 1


@dataclasses.dataclass
class InputSplitOutcome:
    """``status``: "proven", "counterexample", "timeout" or "exhausted" (domain limit)."""

    status: str
    counterexample_index: int | None = None
    counterexample_point: np.ndarray | None = None
    stats: dict = dataclasses.field(default_factory=dict)


def disjunct_margins(row_lower: Tensor, groups: Sequence[slice]) -> Tensor:
    """Per domain, the smallest over disjuncts of its best (largest) row lower bound:
    ``(N, m)`` -> ``(N,)``.  Positive means every disjunct is refuted on that domain."""
    per_disjunct = torch.stack([row_lower[:, g].max(dim=1).values for g in groups], dim=1)
    return per_disjunct.min(dim=1).values


def choose_split_dims(lower: Tensor, upper: Tensor, coef: Tensor | None) -> Tensor:
    """One dimension per domain: the largest ``sum_rows |coef| * width`` (the dimension whose
    width costs the bound most); the widest dimension where ``coef`` is absent or zero."""
    width = upper - lower
    if coef is None:
        return width.argmax(dim=1)
    score = coef.abs().sum(dim=1) * width
    flat = score.max(dim=1, keepdim=True).values <= 0  # no sensitivity info (flat region)
    score = torch.where(flat, width, score)
    score = torch.where(width > 0, score, torch.full_like(score, -1.0))
    return score.argmax(dim=1)


def input_split_bab(bound_fn: BoundFn, lower: np.ndarray, upper: np.ndarray,
                    groups: Sequence[slice], deadline: float, probe: ProbeFn | None = None,
                    config: InputSplitConfig = InputSplitConfig(),
                    device: str | torch.device = "cpu") -> InputSplitOutcome:
    """Prove the case on ``[lower, upper]`` or find a counterexample.

    ``groups``: the rows of each disjunct in the stacked constraint matrix the bound
    function uses.  ``probe`` checks candidate points (domain centres of the hardest
    domains) on the real model.
    """
    start = time.monotonic()
    stats = {"domains_bounded": 0, "batches": 0, "max_queue": 0, "probes": 0}
    lo = torch.as_tensor(np.array(lower, dtype=np.float64)[None], device=device)
    hi = torch.as_tensor(np.array(upper, dtype=np.float64)[None], device=device)
    queue: list[tuple[float, int, np.ndarray, np.ndarray]] = []
    counter = 0

    def bound_and_push(blo: Tensor, bhi: Tensor) -> InputSplitOutcome | None:
        nonlocal counter
        row_lower, coef = bound_fn(blo, bhi)
        stats["domains_bounded"] += blo.shape[0]
        stats["batches"] += 1
        margin = disjunct_margins(row_lower, groups)
        open_mask = ~(margin > 0)
        if not bool(open_mask.any()):
            return None
        idx = torch.nonzero(open_mask).reshape(-1)
        dims = choose_split_dims(blo[idx], bhi[idx], None if coef is None else coef[idx])
        if probe is not None:
            centres = ((blo[idx] + bhi[idx]) / 2).cpu().numpy()
            order = torch.argsort(margin[idx])[: 8].cpu().numpy()
            stats["probes"] += len(order)
            hit = probe(centres[order])
            if hit is not None:
                return InputSplitOutcome("counterexample", counterexample_point=centres[order][hit],
                                         stats=stats)
        for k, i in enumerate(idx.tolist()):
            counter += 1
            heapq.heappush(queue, (float(margin[i]), counter, blo[i].cpu().numpy(),
                                   bhi[i].cpu().numpy(), int(dims[k])))
        return None

    found = bound_and_push(lo, hi)
    if found is not None:
        return _finish(found, start)
    while queue:
        stats["max_queue"] = max(stats["max_queue"], len(queue))
        if time.monotonic() > deadline:
            return _finish(InputSplitOutcome("timeout", stats=stats), start)
        if stats["domains_bounded"] > config.max_domains:
            return _finish(InputSplitOutcome("exhausted", stats=stats), start)
        take = [heapq.heappop(queue) for _ in range(min(config.batch_size // 2, len(queue)))]
        plo = torch.as_tensor(np.stack([t[2] for t in take]), device=device)
        phi = torch.as_tensor(np.stack([t[3] for t in take]), device=device)
        dims = torch.as_tensor([t[4] for t in take], device=device)
        rows = torch.arange(len(take), device=device)
        mid = (plo[rows, dims] + phi[rows, dims]) / 2
        left_hi, right_lo = phi.clone(), plo.clone()
        left_hi[rows, dims] = mid
        right_lo[rows, dims] = mid
        found = bound_and_push(torch.cat([plo, right_lo]), torch.cat([left_hi, phi]))
        if found is not None:
            return _finish(found, start)
    return _finish(InputSplitOutcome("proven", stats=stats), start)


def _finish(outcome: InputSplitOutcome, start: float) -> InputSplitOutcome:
    outcome.stats["time_s"] = time.monotonic() - start
    return outcome
