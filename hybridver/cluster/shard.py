"""One shard of a distributed branch-and-bound (plain Python: a Ray actor wraps
:class:`Shard` in :mod:`hybridver.cluster.bab`; tests run it in-process).

A shard holds some open domains of one case (:mod:`hybridver.cluster.domain_sets`:
sub-boxes of input splitting, or split decisions of activation splitting) and works on
them with the same strategy as the local search: pop the lowest-margin domains, bound,
drop the proven, split the open ones back into its pool.  Between two slices of work the
coordinator may hand it domains (``work(domains=...)``), take half of its domains away
(:meth:`Shard.give`) or ask for all of them (``snapshot``), always as plain data.

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

from hybridver.bab.activation_split import ActivationSplitConfig, ActivationSplitting
from hybridver.bab.box_bound import box_bound_fn
from hybridver.bab.input_split import InputSplitConfig, InputSplitting
from hybridver.bab_core import PROBE_MARGIN
from hybridver.bounds.options import BoundConfig
from hybridver.cluster.domain_sets import BoxSet, Domains, NeuronSet
from hybridver.errors import DeadlineExceeded
from hybridver.ir.evaluate import evaluate
from hybridver.schedule.transport import unpack_graph

_MAX_CACHED_GRAPHS = 4


@dataclasses.dataclass(frozen=True)
class ShardProblem:
    """What every shard of one case needs: the graph (by ``graph_key``; its data travels
    separately), the stacked rows ``C (m, n_out)``, ``d (m,)`` with each disjunct's rows
    ``groups[k] = (start, stop)``, the run's deadline as a wall-clock time
    (``time.time()``: monotonic clocks differ between machines), the torch device and
    the search: input splitting (``split``, with the bound settings ``bound``) or, when
    ``activation`` is set, activation splitting on the case's box ``lower``/``upper``
    with the root's tightened intervals ``root_intervals`` (node -> ``(lower, upper)``
    arrays ``(1, *shape)``, sound on the whole box; computed once by the driver) and the
    driver's split candidates (``candidates``: their names in order; a decision names a
    candidate by position, so a shard whose list differs refuses the case)."""

    graph_key: str
    C: np.ndarray
    d: np.ndarray
    groups: tuple[tuple[int, int], ...]
    bound: BoundConfig
    split: InputSplitConfig
    deadline_wall: float
    device: str = "cpu"
    activation: ActivationSplitConfig | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    root_intervals: dict | None = None
    candidates: tuple[str, ...] | None = None


class Shard:
    """A shard worker: :meth:`load` a case, then :meth:`work` slices, :meth:`give`."""

    def __init__(self) -> None:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        self._graphs: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._strategy = None
        self._domains: BoxSet | NeuronSet | None = None
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
        # arrays from Ray's object store are read-only views: own copies for torch
        problem = dataclasses.replace(problem, C=np.array(problem.C), d=np.array(problem.d))
        self._problem = problem
        deadline = time.monotonic() + (problem.deadline_wall - time.time())
        self._deadline = deadline
        groups = [slice(a, b) for a, b in problem.groups]
        device = torch.device(problem.device)
        if problem.activation is None:
            config = dataclasses.replace(problem.bound, deadline=deadline)
            bound_fn = box_bound_fn(self._graph, problem.C, problem.d, config, problem.device)
            zeros = np.zeros(self._graph.input_node.size)
            self._strategy = InputSplitting(bound_fn, zeros, zeros, groups, problem.split,
                                            device, None)
            self._domains = BoxSet(self._strategy, device, problem.split.batch_size)
        else:
            # the root was bounded and refined by the driver: no shard refines again
            config = dataclasses.replace(problem.activation, refine=dataclasses.replace(
                problem.activation.refine, enabled=False))
            self._strategy = ActivationSplitting(self._graph, problem.lower, problem.upper,
                                                 problem.C, problem.d, groups, deadline,
                                                 config, device)
            names = tuple(c.pre for c in self._strategy.cands)
            if problem.candidates is not None and names != problem.candidates:
                raise RuntimeError("the shard's split candidates differ from the driver's")
            self._strategy.root_restr = {
                name: (torch.as_tensor(np.array(lo), device=device),
                       torch.as_tensor(np.array(hi), device=device))
                for name, (lo, hi) in (problem.root_intervals or {}).items()}
            self._domains = NeuronSet(self._strategy)
        self._spoiled = False
        return os.getpid()

    def give(self, count: int) -> Domains | None:
        """Remove about ``count`` open domains and return them: every other domain in
        margin order, so that both sides keep a mix of hard and easy ones."""
        return self._domains.give(count)

    def snapshot(self) -> Domains | None:
        """Copies of every open domain (the pool and the received ones)."""
        return self._domains.snapshot()

    def work(self, seconds: float, domains: Domains | None = None, snapshot: bool = False,
             max_batches: int | None = None) -> dict[str, Any]:
        """Take ``domains``, then bound and split for about ``seconds`` (one batch at
        least, ``max_batches`` at most); the report: ``open``, ``best_margin``, ``bounded``/``batches`` (this
        slice), ``busy_s``, ``candidates (K, n_in)``, ``stuck``, ``timed_out``,
        ``snapshot`` (all open domains, when asked), ``max_depth``, ``pid``."""
        start = time.monotonic()
        strategy, held = self._strategy, self._domains
        if domains is not None:
            held.take(domains)
        bounded_before, batches_before = strategy.stats.domains_bounded, strategy.stats.batches
        candidates: list[np.ndarray] = []
        timed_out = False
        end = start + seconds
        try:
            while len(held) and not strategy.stats.stuck:
                if time.monotonic() > self._deadline:
                    timed_out = True
                    break
                if max_batches is not None and \
                        strategy.stats.batches - batches_before >= max_batches:
                    break
                batch = held.next_batch()
                found = strategy.bound(batch)
                if found is not None:
                    points = strategy.candidates(found)
                    if points is not None and len(points):
                        candidates.extend(self._screen(points))
                    strategy.branch(found)
                if time.monotonic() > end:
                    break
        except DeadlineExceeded:
            timed_out = True
        self._spoiled |= timed_out   # a batch may have been dropped mid-bound
        return {"open": len(held), "best_margin": held.best_margin(),
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
