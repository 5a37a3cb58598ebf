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

Soundness rests on the bound function and on the split covering the parent box: children
``[l, m]`` and ``[m, u]`` share the midpoint, so no point is lost; "proven" needs an empty
pool and no delegated domain outstanding.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np
import torch

Tensor = torch.Tensor
NodeBounds = dict[str, tuple[Tensor, Tensor]]


@dataclasses.dataclass
class Bounded:
    """What a bound function returns for ``N`` domains.

    ``row_lower``: ``(N, m)`` sound lower bounds of the stacked rows; ``coef``:
    ``(N, m, n_in)`` input sensitivities of the rows (steers the split dimension; no
    soundness role) or None; ``node_bounds``: node name -> ``(lower, upper)`` of shape
    ``(N, *node.shape)``, sound on each domain, passed to its children as restrictions.
    """

    row_lower: Tensor
    coef: Tensor | None = None
    node_bounds: NodeBounds | None = None


#: ``bound_fn(lower (N, n_in), upper (N, n_in), restrictions NodeBounds | None) -> Bounded``
BoundFn = Callable[[Tensor, Tensor, NodeBounds | None], Bounded]
#: ``probe(points (K, n_in)) -> index of a confirmed counterexample among them, or None``.
ProbeFn = Callable[[np.ndarray], int | None]
#: ``progress(stats)`` after each batch (stats include "open" and "best_margin").
ProgressFn = Callable[[Mapping], None]


@dataclasses.dataclass(frozen=True)
class InputSplitConfig:
    batch_size: int = 512          # children bounded per call (parents = half)
    max_domains: int = 20_000_000  # domains bounded before giving up ("exhausted")
    probes_per_batch: int = 8      # hardest domain centres checked on the model per batch
    lookahead: int = 0             # >0: bound the children of the top-k dimensions, keep the best
    width_weight: float = 1.0      # see rank_split_dims


@dataclasses.dataclass
class InputSplitOutcome:
    """``status``: "proven", "counterexample", "timeout", "exhausted" (domain limit) or
    "stopped" (by the caller's ``stop``)."""

    status: str
    counterexample_index: int | None = None
    counterexample_point: np.ndarray | None = None
    stats: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class DomainBatch:
    """Open domains taken out of the pool: boxes ``(K, n_in)``, ``margin (K, g)`` (per
    disjunct, the best proven lower bound of its rows over the domain so far; the domain
    is open because some entry is <= 0), ``depth (K,)`` (splits from the case's box),
    ``node_bounds`` as in :class:`Bounded`."""

    lower: Tensor
    upper: Tensor
    margin: Tensor
    depth: Tensor
    node_bounds: NodeBounds

    def __len__(self) -> int:
        return self.lower.shape[0]

    @property
    def worst(self) -> Tensor:
        """``(K,)``: the case's margin bound (the smallest disjunct margin)."""
        return self.margin.min(dim=1).values

    def rows(self, rows) -> "DomainBatch":
        """The domains at ``rows`` (an index tensor or a slice)."""
        return DomainBatch(self.lower[rows], self.upper[rows], self.margin[rows],
                           self.depth[rows],
                           {n: (lo[rows], hi[rows]) for n, (lo, hi) in self.node_bounds.items()})


class Delegate(Protocol):
    """Takes hard domains out of the branch-and-bound and reports on them later."""

    def select(self, pool: "DomainPool", deadline: float) -> DomainBatch | None:
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


def rank_split_dims(lower: Tensor, upper: Tensor, coef: Tensor | None,
                    row_lower: Tensor | None, k: int, width_weight: float = 0.0) -> Tensor:
    """The ``k`` best dimensions per domain, ``(N, k)``, by the score
    ``sum_rows w_r |coef_r| * width`` (how much the dimension's width costs the linear
    bound), normalized to a maximum of 1 and plus ``width_weight * width / max width``
    when ``width_weight`` > 0 (wide dimensions also loosen the intermediate bounds, which
    the slopes do not show); the widest where ``coef`` is absent or zero.  With
    ``row_lower``, rows that are already positive get no weight (they no longer decide
    the margin)."""
    width = upper - lower
    if coef is None:
        score = width
    else:
        weight = coef.abs()
        if row_lower is not None:
            open_rows = (row_lower <= 0).to(coef.dtype)[:, :, None]
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


class DomainPool:
    """Open domains in growable buffers (capacity doubles; removal moves the last rows
    into the holes, so a batch costs O(batch) copies, not O(pool)): boxes, per-disjunct
    margins, depths, ranked split dimensions and the parent node bounds, popped lowest
    (worst-disjunct) margin first.  The attributes are views of the live rows."""

    def __init__(self, n_in: int, device: torch.device):
        self.device = device
        self.size = 0
        self._buffers: dict[str, Tensor] = {}
        self._nodes: list[str] = []
        self._n_in = n_in

    def __len__(self) -> int:
        return self.size

    def _view(self, key: str) -> Tensor:
        return self._buffers[key][:self.size]

    @property
    def lower(self) -> Tensor:
        return self._view("lower") if self._buffers else \
            torch.empty((0, self._n_in), dtype=torch.float64, device=self.device)

    @property
    def upper(self) -> Tensor:
        return self._view("upper") if self._buffers else self.lower

    @property
    def margin(self) -> Tensor:
        return self._view("margin") if self._buffers else \
            torch.empty((0, 1), dtype=torch.float64, device=self.device)

    @property
    def depth(self) -> Tensor:
        return self._view("depth") if self._buffers else \
            torch.empty((0,), dtype=torch.long, device=self.device)

    @property
    def dims(self) -> Tensor:
        return self._view("dims") if self._buffers else \
            torch.empty((0, 1), dtype=torch.long, device=self.device)

    @property
    def node_bounds(self) -> NodeBounds:
        return {n: (self._view(f"lo:{n}"), self._view(f"hi:{n}")) for n in self._nodes}

    def best_margin(self) -> float:
        """The lowest case margin bound of the open domains (+inf when none)."""
        return float(self.margin.min()) if len(self) else float("inf")

    def push(self, lower, upper, margin, depth, dims, node_bounds: NodeBounds) -> None:
        k = lower.shape[0]
        if k == 0:
            return
        rows = {"lower": lower, "upper": upper, "margin": margin, "depth": depth,
                "dims": dims}
        if not self._buffers:
            self._nodes = sorted(node_bounds)
        for n in self._nodes:
            rows[f"lo:{n}"], rows[f"hi:{n}"] = node_bounds[n]
        if not self._buffers or self.size + k > next(iter(self._buffers.values())).shape[0]:
            capacity = max(2 * (self.size + k), 1024)
            grown = {}
            for key, value in rows.items():
                buffer = torch.empty((capacity, *value.shape[1:]), dtype=value.dtype,
                                     device=self.device)
                if key in self._buffers:
                    buffer[:self.size] = self._buffers[key][:self.size]
                grown[key] = buffer
            self._buffers = grown
        for key, value in rows.items():
            self._buffers[key][self.size:self.size + k] = value
        self.size += k

    def pop(self, k: int, lowest: bool = True) -> tuple[DomainBatch, Tensor]:
        """Remove the ``k`` domains of lowest (or highest) margin: the batch and their
        ranked split dimensions ``(k, n_dims)``."""
        k = min(k, len(self))
        if k == len(self):
            rows = torch.arange(k, device=self.device)
        else:
            rows = torch.topk(self.margin.min(dim=1).values, k, largest=not lowest).indices
        dims = self.dims[rows].clone()
        return self.take(rows), dims

    def take(self, rows: Tensor) -> DomainBatch:
        """Remove the domains at ``rows`` (distinct indices) and return them."""
        rows = rows.to(device=self.device, dtype=torch.long)
        batch = self.rows_of(rows)
        k, n = rows.numel(), self.size
        if k:
            tail_start = n - k
            taken = torch.zeros(n, dtype=torch.bool, device=self.device)
            taken[rows] = True
            holes = rows[rows < tail_start]                  # taken rows outside the tail
            movers = torch.nonzero(~taken[tail_start:]).reshape(-1) + tail_start
            for buffer in self._buffers.values():            # same count: k - |tail taken|
                buffer[holes] = buffer[movers]
            self.size = tail_start
        return batch

    def rows_of(self, rows: Tensor) -> DomainBatch:
        """Copies of the domains at ``rows`` (the pool is unchanged)."""
        return DomainBatch(self.lower[rows], self.upper[rows], self.margin[rows],
                           self.depth[rows],
                           {n: (lo[rows], hi[rows]) for n, (lo, hi) in self.node_bounds.items()})


def split_domains(batch: DomainBatch, dims: Tensor) -> DomainBatch:
    """Both halves of every domain along ``dims``: ``2K`` domains (left halves first);
    the children inherit the parent's node bounds (sound on any sub-box)."""
    rows = torch.arange(len(batch), device=batch.lower.device)
    mid = (batch.lower[rows, dims] + batch.upper[rows, dims]) / 2
    left_hi, right_lo = batch.upper.clone(), batch.lower.clone()
    left_hi[rows, dims] = mid
    right_lo[rows, dims] = mid
    twice = {n: (torch.cat([lo, lo]), torch.cat([hi, hi]))
             for n, (lo, hi) in batch.node_bounds.items()}
    return DomainBatch(torch.cat([batch.lower, right_lo]), torch.cat([left_hi, batch.upper]),
                       torch.cat([batch.margin, batch.margin]),
                       torch.cat([batch.depth, batch.depth]) + 1, twice)


def _concat(batches: Sequence[DomainBatch]) -> DomainBatch:
    return DomainBatch(torch.cat([b.lower for b in batches]), torch.cat([b.upper for b in batches]),
                       torch.cat([b.margin for b in batches]), torch.cat([b.depth for b in batches]),
                       {n: (torch.cat([b.node_bounds[n][0] for b in batches]),
                            torch.cat([b.node_bounds[n][1] for b in batches]))
                        for n in batches[0].node_bounds})


def input_split_bab(bound_fn: BoundFn, lower: np.ndarray, upper: np.ndarray,
                    groups: Sequence[slice], deadline: float, probe: ProbeFn | None = None,
                    config: InputSplitConfig = InputSplitConfig(),
                    device: str | torch.device = "cpu", delegate: Delegate | None = None,
                    progress: ProgressFn | None = None,
                    stop: Callable[[], bool] | None = None) -> InputSplitOutcome:
    """Prove the case on ``[lower, upper]`` or find a counterexample.

    ``groups``: the rows of each disjunct in the stacked constraint matrix the bound
    function uses.  ``probe`` checks candidate points (domain centres of the hardest
    domains) on the real model.  ``delegate``: see :class:`Delegate`.
    """
    start = time.monotonic()
    device = torch.device(device)
    stats = {"domains_bounded": 0, "batches": 0, "max_queue": 0, "probes": 0,
             "max_depth": 0, "delegated": 0, "delegated_proven": 0, "delegated_returned": 0}
    lo = torch.as_tensor(np.array(lower, dtype=np.float64).reshape(1, -1), device=device)
    hi = torch.as_tensor(np.array(upper, dtype=np.float64).reshape(1, -1), device=device)
    pool = DomainPool(lo.shape[1], device)

    def finish(status: str, point: np.ndarray | None = None) -> InputSplitOutcome:
        stats["time_s"] = time.monotonic() - start
        return InputSplitOutcome(status, counterexample_point=point, stats=stats)

    n_dims = max(1, config.lookahead)

    def bound(batch: DomainBatch) -> Bounded:
        bounded = bound_fn(batch.lower, batch.upper, batch.node_bounds or None)
        stats["domains_bounded"] += len(batch)
        stats["batches"] += 1
        return bounded

    def push(batch: DomainBatch, bounded: Bounded) -> np.ndarray | None:
        """Probe the hardest centres of a bounded batch and push its open domains; a
        confirmed counterexample point or None."""
        per_disjunct = torch.maximum(per_disjunct_margins(bounded.row_lower, groups),
                                     batch.margin)  # the parent's bounds hold on a child
        margin = per_disjunct.min(dim=1).values
        open_mask = ~(margin > 0)
        if not bool(open_mask.any()):
            return None
        idx = torch.nonzero(open_mask).reshape(-1)
        blo, bhi = batch.lower[idx], batch.upper[idx]
        coef = None if bounded.coef is None else bounded.coef[idx]
        dims = rank_split_dims(blo, bhi, coef, bounded.row_lower[idx], n_dims,
                               config.width_weight)
        if probe is not None and config.probes_per_batch > 0:
            centres = ((blo + bhi) / 2).cpu().numpy()
            order = torch.argsort(margin[idx])[: config.probes_per_batch].cpu().numpy()
            stats["probes"] += len(order)
            hit = probe(centres[order])
            if hit is not None:
                return centres[order][hit]
        nodes = bounded.node_bounds if bounded.node_bounds is not None else batch.node_bounds
        nodes = {n: (lo_n[idx], hi_n[idx]) for n, (lo_n, hi_n) in nodes.items()}
        depth = batch.depth[idx]
        stats["max_depth"] = max(stats["max_depth"], int(depth.max()))
        pool.push(blo, bhi, per_disjunct[idx], depth, dims, nodes)
        return None

    def bound_and_push(batch: DomainBatch) -> np.ndarray | None:
        return push(batch, bound(batch))

    def split_and_push(parents: DomainBatch, dims: Tensor) -> np.ndarray | None:
        """Split every parent along its best dimension; with lookahead, bound the
        children of each candidate dimension and keep those whose worse child is best."""
        k = dims.shape[1]
        if k == 1 or len(parents) == 0:
            return bound_and_push(split_domains(parents, dims[:, 0]))
        options = [split_domains(parents, dims[:, j]) for j in range(k)]
        both = _concat(options)
        bounded = bound(both)
        n = len(parents)
        margin = disjunct_margins(bounded.row_lower, groups).reshape(k, 2, n)
        best = margin.min(dim=1).values.argmax(dim=0)                      # (n,)
        rows = torch.arange(n, device=device)
        pick = torch.cat([best * 2 * n + rows, best * 2 * n + n + rows])   # left, right
        chosen = both.rows(pick)
        picked = Bounded(bounded.row_lower[pick],
                         None if bounded.coef is None else bounded.coef[pick],
                         None if bounded.node_bounds is None else
                         {nm: (lo_n[pick], hi_n[pick]) for nm, (lo_n, hi_n)
                          in bounded.node_bounds.items()})
        return push(chosen, picked)

    root = DomainBatch(lo, hi, torch.full((1, len(groups)), -np.inf, dtype=torch.float64,
                                          device=device),
                       torch.zeros(1, dtype=torch.long, device=device), {})
    point = bound_and_push(root)
    if point is not None:
        return finish("counterexample", point)

    def delegate_some() -> None:
        """Offer the delegate the pool; after a split, so that every round of the loop
        branches on something even if the delegate returns what it takes at once."""
        if delegate is not None and len(pool):
            taken = delegate.select(pool, deadline)
            if taken is not None:
                stats["delegated"] += len(taken)

    delegate_some()
    while len(pool) or (delegate is not None and delegate.outstanding()):
        stats["max_queue"] = max(stats["max_queue"], len(pool))
        if time.monotonic() > deadline:
            return finish("timeout")
        if stop is not None and stop():
            return finish("stopped")
        if stats["domains_bounded"] > config.max_domains:
            return finish("exhausted")
        if delegate is not None:
            returned, point, proven = delegate.collect()
            stats["delegated_proven"] += proven
            if point is not None:
                return finish("counterexample", point)
            for batch in returned:
                stats["delegated_returned"] += len(batch)
                found = bound_and_push(batch)  # re-bound: their split dims were not kept
                if found is not None:
                    return finish("counterexample", found)
            if not len(pool):
                if delegate.outstanding():
                    delegate.wait(deadline)
                continue
        parents, dims = pool.pop(max(1, config.batch_size // (2 * n_dims)))
        point = split_and_push(parents, dims)
        if point is not None:
            return finish("counterexample", point)
        delegate_some()
        if progress is not None:
            progress({**stats, "open": len(pool) + (delegate.outstanding() if delegate else 0),
                      "best_margin": pool.best_margin()})
    return finish("proven")
