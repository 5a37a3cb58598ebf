"""Branch-and-bound by splitting the input box (for low-dimensional inputs, e.g. ACAS Xu).

A domain is a sub-box of one spec case's input box.  Bounding a batch of domains gives,
for every row ``r`` of the case's stacked constraints, a lower bound ``row_lower[r]`` of
``(C y + d)_r`` over the domain.  A disjunct is refuted on a domain when one of its rows has
a positive lower bound; a domain is proven when every disjunct is refuted.  Unproven
domains are split in two along one input dimension and bounded again, hardest first, until
every domain is proven (the case holds), a confirmed counterexample is found, or time runs
out.

Parent bounds are reused: the bound function may return, per domain, intervals of some
nodes (the pre-activations); they are sound on the parent box, hence on each child (a
subset), and are handed to the children's bounding as restrictions, so a neuron stable in
the parent stays stable without recomputation and tight bounds are never lost.

Hand-off: an optional :class:`Delegate` may take open domains out of the pool after each
batch (e.g. to an exact back end through the scheduler) and later report each one proven,
a counterexample, or returned (then it is bounded and split again).  A delegated domain
counts as open until it is reported proven.

The loop (deadline, stop, domain limit, hand-off timing, progress) is
:func:`hybridver.bab_core.run_search`; this module is its strategy for boxes.

Soundness rests on the bound function and on the split covering the parent box: children
``[l, m]`` and ``[m, u]`` share the midpoint, so no point is lost; "proven" needs an empty
pool and no delegated domain outstanding.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import torch

from hybridver.bab.input_clip import clip_domains
from hybridver.bab.input_domains import (DomainBatch, DomainPool, NodeBounds, concat_batches,
                                         split_domains, split_domains_along)
from hybridver.bab_core import (ProbeFn, ProgressFn, SearchLimits, SearchOutcome, SearchStats,
                                StopFn, run_search)

Tensor = torch.Tensor


@dataclasses.dataclass
class Bounded:
    """What a bound function returns for ``N`` domains.

    ``row_lower``: ``(N, m)`` sound lower bounds of the stacked rows; ``coef``:
    ``(N, m, n_in)`` input sensitivities of the rows (steers the split dimension; no
    soundness role) or None; ``node_bounds``: node name -> ``(lower, upper)`` of shape
    ``(N, *node.shape)``, sound on each domain, passed to its children as restrictions;
    ``offset``: ``(N, m)`` or None, with ``coef`` a linear lower bound of each row valid at
    every point of the domain (``coef . x + offset <= row``): it lets the domain be
    clipped (:mod:`hybridver.bab.input_clip`).
    """

    row_lower: Tensor
    coef: Tensor | None = None
    node_bounds: NodeBounds | None = None
    offset: Tensor | None = None

    def rows(self, rows: Tensor) -> "Bounded":
        """The bounds of the domains at ``rows``."""
        return Bounded(self.row_lower[rows], None if self.coef is None else self.coef[rows],
                       None if self.node_bounds is None else
                       {n: (lo[rows], hi[rows]) for n, (lo, hi) in self.node_bounds.items()},
                       None if self.offset is None else self.offset[rows])


#: ``bound_fn(lower (N, n_in), upper (N, n_in), restrictions NodeBounds | None) -> Bounded``
BoundFn = Callable[[Tensor, Tensor, NodeBounds | None], Bounded]


@dataclasses.dataclass(frozen=True)
class InputSplitConfig:
    """Settings of input splitting.  ``clip_domains``: shrink each open box to where a
    counterexample may lie (:mod:`hybridver.bab.input_clip`); ``fill_splits``: when the
    open domains fill less than half a batch, split each along up to this many dimensions
    at once (1: one); ``deciding_rows``: score split dimensions by each open disjunct's
    best row only; ``smooth_splitting``: on networks with smooth nonlinearities (sin, cos,
    products, sigmoid...), whose bounding calls cost much more per call than per domain,
    use ``smooth_batch_size``, ``smooth_fill_splits`` and ``deciding_rows`` (see
    :meth:`for_network`); ``quadratic_forms``: bound quadratic forms ``u^T P u`` (a
    Lyapunov function) as weighted squares (:attr:`BoundConfig.quadratic_forms`)."""

    batch_size: int = 512          # children bounded per call (parents = half)
    max_domains: int = 20_000_000  # domains bounded before giving up ("exhausted")
    probes_per_batch: int = 8      # hardest domain centres checked on the model per batch
    lookahead: int = 0             # >0: bound the children of the top-k dimensions, keep the best
    width_weight: float = 1.0      # see rank_split_dims
    clip_domains: bool = True      # shrink open boxes to their possible counterexamples
    fill_splits: int = 1           # few open domains: split each along up to this many dims
    deciding_rows: bool = False    # split score from each open disjunct's best row only
    smooth_splitting: bool = True  # smooth networks: the smooth_* settings, deciding_rows
    smooth_batch_size: int = 4096
    smooth_fill_splits: int = 4
    quadratic_forms: bool = True

    def __post_init__(self) -> None:
        if min(self.batch_size, self.smooth_batch_size, self.fill_splits,
               self.smooth_fill_splits) < 1:
            raise ValueError("InputSplitConfig: batch_size, smooth_batch_size, fill_splits "
                             "and smooth_fill_splits must be >= 1")

    def for_network(self, smooth: bool) -> "InputSplitConfig":
        """The settings to use on a network with (``smooth``) or without smooth
        nonlinearities."""
        if smooth and self.smooth_splitting:
            return dataclasses.replace(self, batch_size=self.smooth_batch_size,
                                       fill_splits=self.smooth_fill_splits, deciding_rows=True)
        return self


class Delegate(Protocol):
    """Takes hard domains out of the branch-and-bound and reports on them later."""

    def select(self, pool: DomainPool, deadline: float) -> DomainBatch | None:
        """Remove and take over some domains of ``pool`` (or None)."""

    def collect(self) -> tuple[list[DomainBatch], np.ndarray | None, int]:
        """``(returned, counterexample point or None, proven count)`` since the last call:
        returned domains go back to the pool."""

    def outstanding(self) -> int:
        """Domains taken over and not yet reported."""

    def wait(self, deadline: float) -> None:
        """Block until something may be collected (or ``deadline``)."""


def per_disjunct_margins(row_lower: Tensor, groups: Sequence[slice]) -> Tensor:
    """Per domain and disjunct, its best (largest) row lower bound: ``(N, m)`` ->
    ``(N, g)``.  Positive means that disjunct is refuted on that domain."""
    return torch.stack([row_lower[:, g].max(dim=1).values for g in groups], dim=1)


def disjunct_margins(row_lower: Tensor, groups: Sequence[slice]) -> Tensor:
    """Per domain, the smallest over disjuncts of its best (largest) row lower bound:
    ``(N, m)`` -> ``(N,)``.  Positive means every disjunct is refuted on that domain."""
    return per_disjunct_margins(row_lower, groups).min(dim=1).values


def deciding_rows(row_lower: Tensor, groups: Sequence[slice]) -> Tensor:
    """``(N, m)`` bool: per open disjunct (best row still <= 0) its best row, the one whose
    bound decides the disjunct's margin (a disjunct is refuted by any one row)."""
    mask = torch.zeros_like(row_lower, dtype=torch.bool)
    rows = torch.arange(row_lower.shape[0], device=row_lower.device)
    for g in groups:
        best = row_lower[:, g].max(dim=1)
        start = g.start or 0
        mask[rows, start + best.indices] = best.values <= 0
    return mask


def rank_split_dims(lower: Tensor, upper: Tensor, coef: Tensor | None,
                    row_lower: Tensor | None, k: int, width_weight: float = 0.0,
                    rows: Tensor | None = None) -> Tensor:
    """The ``k`` best dimensions per domain, ``(N, k)``, by the score
    ``sum_rows w_r |coef_r| * width`` (how much the dimension's width costs the linear
    bound), normalized to a maximum of 1 and plus ``width_weight * width / max width``
    when ``width_weight`` > 0 (wide dimensions also loosen the intermediate bounds, which
    the slopes do not show); the widest where ``coef`` is absent or zero.  With
    ``row_lower``, rows that are already positive get no weight (they no longer decide
    the margin); ``rows`` ``(N, m)`` bool, when given, names the rows that count instead
    (e.g. :func:`deciding_rows`)."""
    width = upper - lower
    if coef is None:
        score = width
    else:
        weight = coef.abs()
        if rows is not None or row_lower is not None:
            chosen = rows if rows is not None else row_lower <= 0
            open_rows = chosen.to(coef.dtype)[:, :, None]
            has_open = open_rows.sum(dim=1, keepdim=True) > 0
            weight = torch.where(has_open, weight * open_rows, weight)
        score = weight.sum(dim=1) * width
        flat = score.max(dim=1, keepdim=True).values <= 0
        score = torch.where(flat, width, score)
        if width_weight:
            score = score / score.max(dim=1, keepdim=True).values.clamp(min=1e-300) \
                + width_weight * width / width.max(dim=1, keepdim=True).values.clamp(min=1e-300)
    score = torch.where(width > 0, score, torch.full_like(score, -1.0))
    top = torch.topk(score, min(k, score.shape[1]), dim=1)
    # a zero-width dimension is never a candidate: repeat the best one instead
    return torch.where(top.values < 0, top.indices[:, :1], top.indices)


@dataclasses.dataclass
class _Parents:
    """Domains popped from the pool, to be split along their ranked dimensions ``dims
    (K, n_dims)`` and bounded."""

    batch: DomainBatch
    dims: Tensor


@dataclasses.dataclass
class _Open:
    """A bounded batch's open domains: rows ``idx`` of ``batch``, with their bounds
    (``bounded``, all rows), per-disjunct margins ``(K, g)`` (the parent's folded in) and
    case margins ``(K,)`` of all rows."""

    batch: DomainBatch
    bounded: Bounded
    per_disjunct: Tensor
    margin: Tensor
    idx: Tensor


class _PoolHandOff:
    """A :class:`Delegate` seen by the BaB core (it offers the pool)."""

    def __init__(self, delegate: Delegate, pool: DomainPool):
        self.delegate, self.pool = delegate, pool

    def offer(self, deadline: float) -> int:
        if not len(self.pool):
            return 0
        taken = self.delegate.select(self.pool, deadline)
        return 0 if taken is None else len(taken)

    def collect(self) -> tuple[list[DomainBatch], np.ndarray | None, int]:
        return self.delegate.collect()

    def outstanding(self) -> int:
        return self.delegate.outstanding()

    def wait(self, deadline: float) -> None:
        self.delegate.wait(deadline)


class InputSplitting:
    """The strategy (:class:`hybridver.bab_core.Strategy`): pop the lowest-margin parents,
    split each along its best dimension (with lookahead: the best of several), bound the
    children, probe the centres of the hardest open ones, push the open ones with their
    ranked split dimensions."""

    def __init__(self, bound_fn: BoundFn, lower: np.ndarray, upper: np.ndarray,
                 groups: Sequence[slice], config: InputSplitConfig, device: torch.device,
                 delegate: Delegate | None):
        self.bound_fn, self.groups, self.config, self.device = bound_fn, groups, config, device
        self.stats = SearchStats()
        self.lo = torch.as_tensor(np.array(lower, dtype=np.float64).reshape(1, -1), device=device)
        self.hi = torch.as_tensor(np.array(upper, dtype=np.float64).reshape(1, -1), device=device)
        self.pool = DomainPool(self.lo.shape[1], device)
        self.hand_off = None if delegate is None else _PoolHandOff(delegate, self.pool)
        self.n_look = max(1, config.lookahead)
        self.n_dims = min(self.lo.shape[1], max(self.n_look, config.fill_splits))

    def root(self) -> DomainBatch:
        return DomainBatch(self.lo, self.hi,
                           torch.full((1, len(self.groups)), -np.inf, dtype=torch.float64,
                                      device=self.device),
                           torch.zeros(1, dtype=torch.long, device=self.device), {})

    def open_count(self) -> int:
        return len(self.pool)

    def best_margin(self) -> float:
        return self.pool.best_margin()

    def select(self) -> _Parents:
        parents, dims = self.pool.pop(max(1, self.config.batch_size // (2 * self.n_look)))
        return _Parents(parents, dims)

    def _bound(self, batch: DomainBatch) -> Bounded:
        bounded = self.bound_fn(batch.lower, batch.upper, batch.node_bounds or None)
        self.stats.domains_bounded += len(batch)
        self.stats.batches += 1
        return bounded

    def bound(self, work: DomainBatch | _Parents) -> _Open | None:
        """Bound a batch as it is (the root, domains the hand-off returned: their split
        dimensions were not kept) or the children of popped parents."""
        if isinstance(work, DomainBatch):
            batch, bounded = work, self._bound(work)
        else:
            batch, bounded = self._split_and_bound(work.batch, work.dims)
        per_disjunct = torch.maximum(per_disjunct_margins(bounded.row_lower, self.groups),
                                     batch.margin)  # the parent's bounds hold on a child
        if self.config.clip_domains and bounded.offset is not None and bounded.coef is not None:
            batch, per_disjunct = self._clip(batch, bounded, per_disjunct)
        margin = per_disjunct.min(dim=1).values
        open_mask = ~(margin > 0)
        if not bool(open_mask.any()):
            return None
        return _Open(batch, bounded, per_disjunct, margin, torch.nonzero(open_mask).reshape(-1))

    def _clip(self, batch: DomainBatch, bounded: Bounded, per_disjunct: Tensor
              ) -> tuple[DomainBatch, Tensor]:
        """Clip the open domains' boxes to where a counterexample may lie; a disjunct
        with no such point gets margin +inf (refuted: no point of the box violates it)."""
        refuted = per_disjunct > 0
        lower, upper, now = clip_domains(batch.lower, batch.upper, bounded.coef,
                                         bounded.offset, self.groups, refuted)
        per_disjunct = torch.where(now & ~refuted, torch.full_like(per_disjunct, np.inf),
                                   per_disjunct)
        return dataclasses.replace(batch, lower=lower, upper=upper), per_disjunct

    def _split_and_bound(self, parents: DomainBatch, dims: Tensor
                         ) -> tuple[DomainBatch, Bounded]:
        """Split every parent along its best dimension (when the parents fill less than
        half the batch: along its best few, ``2**k`` children each, so that the bounding
        call, whose fixed cost dominates small batches, does more work); with lookahead,
        bound the children of each candidate dimension and keep those whose worse child
        is best."""
        k = min(self.n_look, dims.shape[1])
        if k == 1 or len(parents) == 0:
            fill = 1
            while fill < min(dims.shape[1], self.config.fill_splits) \
                    and len(parents) * 2 ** (fill + 1) <= self.config.batch_size:
                fill += 1
            children = split_domains_along(parents, dims[:, :fill])
            return children, self._bound(children)
        both = concat_batches([split_domains(parents, dims[:, j]) for j in range(k)])
        bounded = self._bound(both)
        n = len(parents)
        margin = disjunct_margins(bounded.row_lower, self.groups).reshape(k, 2, n)
        best = margin.min(dim=1).values.argmax(dim=0)                      # (n,)
        rows = torch.arange(n, device=self.device)
        pick = torch.cat([best * 2 * n + rows, best * 2 * n + n + rows])   # left, right
        return both.rows(pick), bounded.rows(pick)

    def candidates(self, found: _Open) -> np.ndarray | None:
        """The centres of the hardest open domains (``probes_per_batch``)."""
        if self.config.probes_per_batch <= 0:
            return None
        idx = found.idx
        centres = ((found.batch.lower[idx] + found.batch.upper[idx]) / 2).cpu().numpy()
        order = torch.argsort(found.margin[idx])[: self.config.probes_per_batch].cpu().numpy()
        return centres[order]

    def branch(self, found: _Open) -> None:
        """Push the open domains with their ranked split dimensions and node bounds."""
        batch, bounded, idx = found.batch, found.bounded, found.idx
        blo, bhi = batch.lower[idx], batch.upper[idx]
        coef = None if bounded.coef is None else bounded.coef[idx]
        row_lower = bounded.row_lower[idx]
        dims = rank_split_dims(blo, bhi, coef, row_lower, self.n_dims,
                               self.config.width_weight,
                               deciding_rows(row_lower, self.groups)
                               if self.config.deciding_rows else None)
        nodes = bounded.node_bounds if bounded.node_bounds is not None else batch.node_bounds
        nodes = {n: (lo_n[idx], hi_n[idx]) for n, (lo_n, hi_n) in nodes.items()}
        depth = batch.depth[idx]
        self.stats.max_depth = max(self.stats.max_depth, int(depth.max()))
        self.pool.push(blo, bhi, found.per_disjunct[idx], depth, dims, nodes)


def input_split_bab(bound_fn: BoundFn, lower: np.ndarray, upper: np.ndarray,
                    groups: Sequence[slice], deadline: float, probe: ProbeFn | None = None,
                    config: InputSplitConfig = InputSplitConfig(),
                    device: str | torch.device = "cpu", delegate: Delegate | None = None,
                    progress: ProgressFn | None = None,
                    stop: StopFn | None = None) -> SearchOutcome:
    """Prove the case on ``[lower, upper]`` or find a counterexample.

    ``groups``: the rows of each disjunct in the stacked constraint matrix the bound
    function uses.  ``probe`` checks candidate points (domain centres of the hardest
    domains) on the real model.  ``delegate``: see :class:`Delegate`.  ``deadline``: a
    ``time.monotonic()`` value; ``stop``: asked before every batch.  The status is a
    :class:`~hybridver.bab_core.SearchStatus` (EXHAUSTED: ``config.max_domains`` reached).
    """
    strategy = InputSplitting(bound_fn, lower, upper, groups, config, torch.device(device),
                               delegate)
    return run_search(strategy, SearchLimits(deadline, config.max_domains, stop), probe,
                      progress)
