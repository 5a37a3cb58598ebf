"""One shard of a distributed input-splitting branch-and-bound (plain Python: a Ray actor
wraps :class:`Shard` in :mod:`hybridver.cluster.bab`; tests run it in-process).

A shard holds some open domains of one case (sub-boxes of its input box) in its own
:class:`~hybridver.bab.input_domains.DomainPool` and works on them with the same strategy
as the local search (:class:`~hybridver.bab.input_split.InputSplitting`): pop the
lowest-margin domains, split, bound, drop the proven, push the open children.  Between two
slices of work the coordinator may hand it domains (``work(domains=...)``), take half of
its domains away (:meth:`Shard.give`) or ask for all of them (``snapshot``), always as
plain data (:data:`Domains`: boxes, margins, depths; the parents' node bounds stay behind:
they only tighten, and a box is bounded soundly without them).

What a shard proves is only what its bound function proves: a domain leaves the shard
either proven (every disjunct refuted by a sound bound, or clipped away) or handed out by
:meth:`give`/``snapshot``.  Candidate counterexamples (the centres of the hardest open
domains whose IR margin is at most ``PROBE_MARGIN``) are reported to the coordinator,
which confirms them on the real model: a shard decides no counterexample.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import time
from typing import Any

import numpy as np
import torch

from hybridver.bab.box_bound import box_bound_fn
from hybridver.bab.input_domains import DomainBatch
from hybridver.bab.input_split import InputSplitConfig, InputSplitting
from hybridver.bab_core import PROBE_MARGIN
from hybridver.bounds.options import BoundConfig
from hybridver.errors import DeadlineExceeded
from hybridver.ir.evaluate import evaluate
from hybridver.schedule.transport import unpack_graph

#: open domains as plain data: ``lower``/``upper`` ``(K, n_in)`` float64, ``margin``
#: ``(K, g)`` (per disjunct, the best lower bound proven so far), ``depth`` ``(K,)``
Domains = dict[str, np.ndarray]

_MAX_CACHED_GRAPHS = 4


@dataclasses.dataclass(frozen=True)
class ShardProblem:
    """What every shard of one case needs: the graph (by ``graph_key``; its data travels
    separately, once per shard), the stacked rows ``C (m, n_out)``, ``d (m,)`` with each
    disjunct's rows ``groups[k] = (start, stop)``, the bound and split settings, the run's
    deadline as a wall-clock time (``time.time()``: monotonic clocks differ between
    machines) and the torch device."""

    graph_key: str
    C: np.ndarray
    d: np.ndarray
    groups: tuple[tuple[int, int], ...]
    bound: BoundConfig
    split: InputSplitConfig
    deadline_wall: float
    device: str = "cpu"


def domains_of(batch: DomainBatch) -> Domains:
    """A batch of domains as plain numpy data (node bounds left out)."""
    return {"lower": batch.lower.cpu().numpy(), "upper": batch.upper.cpu().numpy(),
            "margin": batch.margin.cpu().numpy(), "depth": batch.depth.cpu().numpy()}


def domain_count(domains: Domains | None) -> int:
    return 0 if domains is None else int(domains["lower"].shape[0])


def concat_domains(parts: list[Domains]) -> Domains | None:
    parts = [p for p in parts if domain_count(p)]
    if not parts:
        return None
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def domains_nbytes(domains: Domains | None) -> int:
    return 0 if domains is None else sum(int(v.nbytes) for v in domains.values())


class Shard:
    """A shard worker: :meth:`load` a case, then :meth:`work` slices, :meth:`give`."""

    def __init__(self) -> None:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        self._graphs: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._strategy: InputSplitting | None = None
        self._pending: list[DomainBatch] = []
        self._spoiled = False

    def pid(self) -> int:
        return os.getpid()

    def load(self, problem: ShardProblem, graph_data: dict | None) -> int:
        """Start on ``problem`` with an empty pool (any earlier case's domains are
        dropped).  ``graph_data``: the packed graph when this shard may not have it."""
        if graph_data is not None and problem.graph_key not in self._graphs:
            self._graphs[problem.graph_key] = unpack_graph(graph_data)
            while len(self._graphs) > _MAX_CACHED_GRAPHS:
                self._graphs.popitem(last=False)
        self._graph = self._graphs[problem.graph_key]
        self._problem = problem
        deadline = time.monotonic() + (problem.deadline_wall - time.time())
        config = dataclasses.replace(problem.bound, deadline=deadline)
        self._deadline = deadline
        bound_fn = box_bound_fn(self._graph, problem.C, problem.d, config, problem.device)
        groups = [slice(a, b) for a, b in problem.groups]
        n_in = self._graph.input_node.size
        zeros = np.zeros(n_in)
        self._strategy = InputSplitting(bound_fn, zeros, zeros, groups, problem.split,
                                        torch.device(problem.device), None)
        self._pending, self._spoiled = [], False
        return os.getpid()

    # -- the domains -------------------------------------------------------------------
    def _open(self) -> int:
        return len(self._strategy.pool) + sum(len(b) for b in self._pending)

    def _take(self, domains: Domains) -> None:
        """Queue received domains, in batches of the split batch size."""
        device = torch.device(self._problem.device)
        step = max(1, self._problem.split.batch_size)
        for start in range(0, domain_count(domains), step):
            part = {k: torch.as_tensor(v[start:start + step], device=device)
                    for k, v in domains.items()}
            self._pending.append(DomainBatch(part["lower"], part["upper"], part["margin"],
                                             part["depth"], {}))

    def give(self, count: int) -> Domains | None:
        """Remove about ``count`` open domains and return them: every other domain in
        margin order, so that both sides keep a mix of hard and easy ones."""
        if self._pending:  # received and not yet bounded: handed on first
            batch = self._pending.pop()
            return domains_of(batch)
        pool = self._strategy.pool
        count = min(count, len(pool))
        if count <= 0:
            return None
        order = torch.argsort(pool.margin.min(dim=1).values)
        rows = order[1::2][:count] if len(pool) > 1 else order[:count]
        return domains_of(pool.take(rows))

    def snapshot(self) -> Domains | None:
        """Copies of every open domain (the pool and the received ones)."""
        pool = self._strategy.pool
        parts = [domains_of(pool.rows_of(torch.arange(len(pool), device=pool.device)))]
        parts += [domains_of(b) for b in self._pending]
        return concat_domains(parts)

    # -- the work ------------------------------------------------------------------------
    def work(self, seconds: float, domains: Domains | None = None, snapshot: bool = False,
             max_batches: int | None = None) -> dict[str, Any]:
        """Take ``domains``, then bound and split for about ``seconds`` (one batch at
        least, ``max_batches`` at most); the report: ``open``, ``best_margin``, ``bounded``/``batches`` (this
        slice), ``busy_s``, ``candidates (K, n_in)``, ``stuck``, ``timed_out``,
        ``snapshot`` (all open domains, when asked), ``max_depth``, ``pid``."""
        start = time.monotonic()
        strategy = self._strategy
        if domains is not None:
            self._take(domains)
        bounded_before, batches_before = strategy.stats.domains_bounded, strategy.stats.batches
        candidates: list[np.ndarray] = []
        timed_out = False
        end = start + seconds
        try:
            while (self._pending or len(strategy.pool)) and not strategy.stats.stuck:
                if time.monotonic() > self._deadline:
                    timed_out = True
                    break
                batch = self._pending.pop() if self._pending else strategy.select()
                found = strategy.bound(batch)
                if found is not None:
                    points = strategy.candidates(found)
                    if points is not None and len(points):
                        candidates.extend(self._screen(points))
                    strategy.branch(found)
                if time.monotonic() > end or (max_batches is not None and
                                               strategy.stats.batches - batches_before
                                               >= max_batches):
                    break
        except DeadlineExceeded:
            timed_out = True
        self._spoiled |= timed_out   # a batch may have been dropped mid-bound
        return {"open": self._open(), "best_margin": strategy.pool.best_margin(),
                "bounded": strategy.stats.domains_bounded - bounded_before,
                "batches": strategy.stats.batches - batches_before,
                "busy_s": time.monotonic() - start,
                "candidates": np.array(candidates) if candidates
                else np.zeros((0, self._graph.input_node.size)),
                "stuck": bool(strategy.stats.stuck), "timed_out": self._spoiled,
                "snapshot": self.snapshot() if snapshot else None,
                "max_depth": strategy.stats.max_depth, "pid": os.getpid()}

    def _screen(self, points: np.ndarray) -> list[np.ndarray]:
        """The (at most two) points most violating on the IR, if their margin is at most
        ``PROBE_MARGIN``, as the local search's probe screens them."""
        problem = self._problem
        with torch.no_grad():
            y = evaluate(self._graph, points.reshape(-1, *self._graph.input_node.shape))
        rows = y.reshape(len(points), -1).cpu().numpy() @ problem.C.T + problem.d
        margins = np.min(np.stack([rows[:, a:b].max(axis=1) for a, b in problem.groups]),
                         axis=0)
        return [points[k] for k in np.argsort(margins)[:2] if margins[k] <= PROBE_MARGIN]
