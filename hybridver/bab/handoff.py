"""Hand-off of hard input-splitting domains to exact back ends through the scheduler.

:class:`SchedulerDelegate` implements :class:`hybridver.bab.input_split.Delegate`.  When
the scheduler has a free slot, it looks at the open domains of the pool that are at least
``min_depth`` splits deep (among the ``scan`` deepest), takes the ones with the fewest
unstable ReLUs (the cheapest
MILPs), builds a :class:`~hybridver.problem.Subproblem` per disjunct the bounds have not
refuted on the domain (the domain's box, its CROWN pre-activation bounds, the disjunct's
rows) and asks the scheduler's policy; a domain the policy runs leaves the pool.  Later, ``collect`` reports:

* proven: every disjunct of the domain came back INFEASIBLE (a back end's proof);
* counterexample: a CANDIDATE that ``confirm`` (the real model) accepted;
* returned: anything else (timeout, unknown, an unconfirmed candidate): the domain goes
  back to branch-and-bound, and is not handed off again.

Soundness: nothing here proves anything by itself; INFEASIBLE comes from the back ends
(status checked there) on a subproblem that contains every input of the domain (the box is
the domain's box and the node bounds are sound on it), and counterexamples are confirmed
on the real model by ``confirm``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from hybridver.backends.base import Status
from hybridver.bab.input_domains import DomainBatch, DomainPool
from hybridver.ir.evaluate import evaluate
from hybridver.problem import Subproblem
from hybridver.schedule import Action, Scheduler, SubproblemFeatures
from hybridver.specs import InputBox, OutputConstraints

#: ``confirm(point (n_in,), predicted_y or None) -> True when the real model confirms it``
ConfirmFn = Callable[[np.ndarray, np.ndarray | None], bool]


def drain_finished(scheduler: Scheduler, domain_of: dict, entries: dict, confirm: ConfirmFn,
                   on_failure: Callable[[int, Any, Any], None]) -> np.ndarray | None:
    """Collect a hand-off's own finished tickets; each lowers its domain's ``waiting``.

    ``domain_of``: ticket id -> domain id (finished tickets are removed); ``entries``:
    domain id -> an entry with ``waiting`` and ``failed``.  Returns the first candidate
    that ``confirm`` (the real model) accepts, ``(n_in,)`` float64, and stops there (the
    run is over); else None.  ``on_failure(domain_id, entry, outcome)`` hears every other
    outcome that is not INFEASIBLE: the domain must go back to branching.  Only the
    hand-off's own tickets are collected (other users of the scheduler may reuse tags).
    """
    for done in scheduler.collect(list(domain_of)):
        domain_id = domain_of.pop(done.ticket.ticket_id, None)
        entry = entries.get(domain_id) if domain_id is not None else None
        if entry is None:
            continue
        entry.waiting -= 1
        outcome = done.outcome
        if outcome.status is Status.CANDIDATE and outcome.candidate is not None and \
                confirm(outcome.candidate.x, outcome.candidate.predicted_y):
            return np.asarray(outcome.candidate.x, dtype=np.float64)
        if outcome.status is not Status.INFEASIBLE:
            on_failure(domain_id, entry, outcome)
    return None


@dataclasses.dataclass(frozen=True)
class HandoffConfig:
    """``min_depth``: domains shallower than this stay in BaB; ``candidates``: how many
    of the pool's cheapest domains the policy is asked about per free slot."""

    min_depth: int = 8
    candidates: int = 4
    scan: int = 4096


@dataclasses.dataclass
class _Delegated:
    batch: DomainBatch           # one domain
    waiting: int                 # disjunct tickets not yet finished
    failed: bool = False


class SchedulerDelegate:
    """Delegate of :func:`~hybridver.bab.input_split.input_split_bab` backed by a
    :class:`Scheduler` (see the module docstring).

    ``relu_inputs``: pre-activation node names read by ReLU-like nodes (their
    ``lo < 0 < hi`` entries are the unstable neurons); ``disjuncts``: the case's
    :class:`OutputConstraints`; ``scheduler``: makes the scheduler on first use, which is
    not before ``start_at`` (a ``time.monotonic()`` value).
    """

    def __init__(self, scheduler: Callable[[], Scheduler], graph,
                 disjuncts: Sequence[OutputConstraints], relu_inputs: Sequence[str],
                 confirm: ConfirmFn, config: HandoffConfig = HandoffConfig(),
                 label: str = "", start_at: float = 0.0):
        self._make_scheduler, self.graph, self.disjuncts = scheduler, graph, tuple(disjuncts)
        self._scheduler: Scheduler | None = None
        self.start_at = start_at
        self.relu_inputs, self.confirm, self.config = tuple(relu_inputs), confirm, config
        self.label = label
        self._open: dict[int, _Delegated] = {}
        self._next_id = 0
        self._returned_keys: set[bytes] = set()
        self._tickets: dict[int, list] = {}   # domain id -> its tickets
        self._domain_of: dict[int, int] = {}  # ticket id -> domain id
        self.disabled = ""                    # why the hand-off stopped, if it did

    @property
    def scheduler(self) -> Scheduler:
        """The scheduler, made on first use (starting worker processes costs seconds, so
        short runs never make one)."""
        if self._scheduler is None:
            self._scheduler = self._make_scheduler()
        return self._scheduler

    # ------------------------------------------------------------------ Delegate protocol
    def select(self, pool: DomainPool, deadline: float) -> DomainBatch | None:
        if self.disabled or time.monotonic() < self.start_at or not len(pool):
            return None
        try:
            return self._select(pool, deadline)
        except Exception as exc:  # noqa: BLE001 - e.g. a worker that cannot start
            # no domain has left the pool (take() comes last), so branching goes on alone
            self.disabled = f"hand-off stopped: {type(exc).__name__}: {exc}"
            return None

    def _select(self, pool: DomainPool, deadline: float) -> DomainBatch | None:
        if self.scheduler.free_slots <= 0:
            return None
        # look at the deepest few thousand domains only: the scan stays cheap in big pools
        depth = pool.depth
        top = torch.topk(depth, min(len(pool), self.config.scan)).indices
        deep = top[depth[top] >= self.config.min_depth]
        if deep.numel() == 0:
            return None
        unstable = self._unstable_counts(pool, deep)
        order = deep[torch.argsort(unstable)][: self.config.candidates * self.scheduler.free_slots]
        chosen: list[tuple[int, int]] = []   # (pool row, domain id)
        for i in order.tolist():
            if self.scheduler.free_slots <= 0:
                break
            if _key(pool.lower[i], pool.upper[i]) in self._returned_keys:
                continue
            domain_id = self._submit(pool, i, deadline)
            if domain_id is not None:
                chosen.append((i, domain_id))
        if not chosen:
            return None
        batch = pool.take(torch.tensor([i for i, _ in chosen], device=pool.device))
        for j, (_, domain_id) in enumerate(chosen):
            self._open[domain_id] = _Delegated(batch.rows(slice(j, j + 1)),
                                             len(self._tickets[domain_id]))
        return batch

    def collect(self) -> tuple[list[DomainBatch], np.ndarray | None, int]:
        returned: list[DomainBatch] = []
        proven = 0
        if self._scheduler is None:
            return returned, None, proven
        found = drain_finished(self.scheduler, self._domain_of, self._open, self.confirm,
                               self._fail)
        if found is not None:
            return [], found, proven
        for domain_id, entry in list(self._open.items()):
            if entry.waiting == 0:
                del self._open[domain_id]
                del self._tickets[domain_id]
                if entry.failed:
                    self._returned_keys.add(_key(entry.batch.lower[0], entry.batch.upper[0]))
                    returned.append(entry.batch)
                else:
                    proven += 1
        return returned, None, proven

    def _fail(self, domain_id: int, entry: _Delegated, outcome) -> None:
        """The domain goes back: stop its other disjuncts (each still reports)."""
        if not entry.failed:
            entry.failed = True
            for ticket in self._tickets[domain_id]:
                self.scheduler.cancel(ticket)

    def outstanding(self) -> int:
        return len(self._open)

    def wait(self, deadline: float) -> None:
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    # ------------------------------------------------------------------ helpers
    def _unstable_counts(self, pool: DomainPool, rows: torch.Tensor) -> torch.Tensor:
        count = torch.zeros(rows.numel(), dtype=torch.long, device=pool.device)
        for name in self.relu_inputs:
            if name in pool.node_bounds:
                lo, hi = pool.node_bounds[name]
                lo, hi = lo[rows].reshape(rows.numel(), -1), hi[rows].reshape(rows.numel(), -1)
                count += ((lo < 0) & (hi > 0)).sum(dim=1)
        return count

    def _submit(self, pool: DomainPool, i: int, deadline: float) -> int | None:
        """Ask the policy about domain ``i`` (one subproblem per disjunct); submit all of
        them (returns the new domain id) or none (None)."""
        box = InputBox(pool.lower[i].cpu().numpy(), pool.upper[i].cpu().numpy())
        # the pool's bounds are keyed by the bound plan's (decomposed) graph: a subproblem
        # keeps only those of its own graph's nodes (the encoders bound the others)
        bounds = {name: (lo[i].reshape(-1).cpu().numpy(), hi[i].reshape(-1).cpu().numpy())
                  for name, (lo, hi) in pool.node_bounds.items() if name in self.graph}
        margins = pool.margin[i].tolist()   # per disjunct; > 0: already refuted there
        with torch.no_grad():   # the margin at the centre: an upper bound of the true one
            centre = (pool.lower[i] + pool.upper[i]) / 2
            y = evaluate(self.graph, centre.reshape(1, *self.graph.input_node.shape))
            y = y.reshape(-1).cpu().numpy()
        depth = int(pool.depth[i])
        domain_id = self._next_id
        self._next_id += 1   # never reused, even when nothing is submitted
        plans = []
        for k, disjunct in enumerate(self.disjuncts):
            if margins[k] > 0:
                continue
            problem = Subproblem(self.graph, box, disjunct, bounds, disjunct=k,
                                 label=f"{self.label} domain {domain_id} disjunct {k}")
            upper = float(np.max(disjunct.C @ y + disjunct.d))
            features = SubproblemFeatures.of(problem, gap=margins[k], upper=upper, depth=depth,
                                             time_left_s=deadline - time.monotonic())
            decision = self.scheduler.consider(problem, features)
            if decision.action is not Action.RUN:
                return None
            plans.append((problem, decision))
        if not plans or len(plans) > self.scheduler.free_slots:
            return None
        tickets = []
        for problem, decision in plans:
            ticket = self.scheduler.submit(problem, decision, tag=domain_id)
            if ticket is None:
                for t in tickets:
                    self.scheduler.cancel(t)
                return None
            tickets.append(ticket)
        self._tickets[domain_id] = tickets
        for ticket in tickets:
            self._domain_of[ticket.ticket_id] = domain_id
        return domain_id


def _key(lower: torch.Tensor, upper: torch.Tensor) -> bytes:
    return lower.cpu().numpy().tobytes() + upper.cpu().numpy().tobytes()
