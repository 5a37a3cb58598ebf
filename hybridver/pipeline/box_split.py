"""Bisection of many cases' boxes at once, bounded by a cheap method (whole-box stage).

For specs with many cases whose boxes vary in few inputs (nn4sys: thousands of cases,
one to four inputs of 154 vary), CROWN with its intermediate back-substitution costs far
more per case than bisecting the box a few times and bounding the pieces with CROWN over
IBP intervals (on nn4sys's mscn: 0.1 s per CROWN box, 2 ms per CROWN-IBP piece).

Each open case starts as one domain (its box); every round bounds all domains, drops the
refuted ones and bisects the others along their widest input.  The two halves of a box
cover it, so a case whose domains are all refuted is PROVEN: every point of its box lies
in a refuted piece.  A case is given up (left open for the later stages) when it holds
more than ``max_domains_per_case`` domains.
"""

from __future__ import annotations

import numpy as np

from hybridver.bab.input_split import disjunct_margins
from hybridver.bounds.engine import compute_bounds
from hybridver.bounds.options import BoundConfig
from hybridver.pipeline.case_batches import CaseBatch


def bisect_prove(graph, batch: CaseBatch, config: BoundConfig, rounds: int,
                 max_domains_per_case: int, chunk: int, timed_out,
                 device: str = "cpu", whole_boxes_bounded: bool = False) -> list[int]:
    """The indices of ``batch`` (spec case indices) proven by ``rounds`` rounds of
    bisection, each domain bounded with ``config`` (in chunks of ``chunk`` domains);
    ``timed_out()`` is asked before every chunk.  ``whole_boxes_bounded``: the cases'
    whole boxes were just bounded with ``config`` in vain, so the first round bisects
    them without bounding them again."""
    lower, upper = batch.lower.copy(), batch.upper.copy()
    owner = np.arange(len(batch))
    given_up = np.zeros(len(batch), dtype=bool)
    if whole_boxes_bounded and rounds > 0:
        lower, upper, owner = _bisect(lower, upper, owner)
        rounds -= 1
    for _ in range(rounds + 1):
        refuted = np.zeros(len(owner), dtype=bool)
        for start in range(0, len(owner), chunk):
            if timed_out():  # every domain of this round counts as open
                return _proven(batch, given_up, owner)
            sl = slice(start, start + chunk)
            rows = owner[sl]
            bounds = compute_bounds(graph, lower[sl], upper[sl], batch.C[rows], batch.d[rows],
                                    config=config, bound_upper=False, device=device)
            refuted[sl] = (disjunct_margins(bounds.lower, batch.groups) > 0).cpu().numpy()
        lower, upper, owner = lower[~refuted], upper[~refuted], owner[~refuted]
        counts = np.bincount(owner, minlength=len(batch))
        given_up |= counts > max_domains_per_case // 2
        keep = ~given_up[owner]
        lower, upper, owner = lower[keep], upper[keep], owner[keep]
        if not len(owner):
            break
        lower, upper, owner = _bisect(lower, upper, owner)
    return _proven(batch, given_up, owner)


def _proven(batch: CaseBatch, given_up: np.ndarray, owner: np.ndarray) -> list[int]:
    """The cases neither given up nor owning a domain not refuted."""
    open_cases = given_up.copy()
    open_cases[owner] = True
    return [batch.indices[k] for k in np.flatnonzero(~open_cases)]


def _bisect(lower: np.ndarray, upper: np.ndarray, owner: np.ndarray):
    """Each box cut in two at the middle of its widest input: the halves cover it."""
    rows = np.arange(len(owner))
    dim = np.argmax(upper - lower, axis=1)
    mid = (lower[rows, dim] + upper[rows, dim]) / 2
    upper_lo, lower_hi = upper.copy(), lower.copy()
    upper_lo[rows, dim] = mid
    lower_hi[rows, dim] = mid
    return (np.concatenate([lower, lower_hi]), np.concatenate([upper_lo, upper]),
            np.concatenate([owner, owner]))
