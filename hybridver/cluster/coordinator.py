"""The coordinator of a distributed input-splitting search: sharded pool, work stealing,
the ledger of open domains, lost shards.

Shards (:class:`~hybridver.cluster.shard.Shard`) are reached through :class:`ShardCalls`
(Ray actors in :mod:`hybridver.cluster.bab`; in-process shards in the tests).  Calls to one
shard run in the order they were made, and the coordinator handles their results in that
order too (it waits only on the oldest call of each shard).

The case's box is cut into one piece per shard.  Each shard works in slices of
``slice_s`` seconds and reports after each (open domains, best margin, candidate
counterexamples).  A shard that reports no open domain becomes idle; when another shard
reports at least ``steal_min`` open domains, half of them are taken from it
(:meth:`Shard.give`) and sent to the idle one: an idle worker steals.

**Why ``unsat`` is sound here (the ledger).**  For each live shard ``s`` the coordinator
keeps ``ledger(s)``: domains that together cover every point of the case that ``s`` is
responsible for and has not proven.  It is ``covered(s)`` (the last snapshot ``s`` sent,
plus every batch sent to ``s`` whose call has since finished) followed by the batches
sent in calls still in flight.  Domains move only in three ways, each kept in the ledger:

* sent to a shard: appended to its ledger when the call is made;
* given by a shard: appended to the receiver's ledger when the ``give`` result arrives; the
  giver's ledger still covers them until its next snapshot, which (calls being ordered)
  comes after the give and so no longer needs to;
* proven by a shard: they simply stop being in its later snapshots.

So the union of the live shards' ledgers and of the orphans (ledgers of lost shards, not
yet resent) covers every unproven point, at any moment.  A shard that dies (its process
killed, its node lost) is dropped and its whole ledger becomes orphans, which are sent to
a live shard: some domains may be bounded twice, none is lost.  The search answers
PROVEN only when every live shard's last report had no open domain, no call is in flight
and there are no orphans: then the cover is empty, every point of the case is proven.
A counterexample is only ever a candidate a shard reported and the coordinator's
``probe`` confirmed on the real model.  Losing every shard, or the cluster, is an error
(:class:`~hybridver.errors.ClusterError`), never a verdict.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from hybridver.bab_core import ProbeFn, SearchOutcome, SearchStats, SearchStatus, StopFn
from hybridver.cluster.domain_sets import (Domains, concat_domains, domain_count,
                                          domains_nbytes)
from hybridver.cluster.shard import ShardProblem
from hybridver.errors import ClusterError


class ShardLost(Exception):
    """A shard's process is gone (its call will never finish)."""


class ShardCalls(Protocol):
    """How the coordinator reaches its shards."""

    def shards(self) -> list[int]:
        """The shards' ids."""

    def call(self, shard: int, method: str, *args: Any) -> Any:
        """Start ``method(*args)`` on ``shard``; a ticket for :meth:`ready`/:meth:`result`."""

    def ready(self, tickets: list[Any], timeout: float) -> list[Any]:
        """The tickets among ``tickets`` whose call has finished (waits up to ``timeout``
        seconds for the first)."""

    def result(self, ticket: Any) -> Any:
        """The finished call's result; :class:`ShardLost` when the shard died,
        :class:`ClusterError` when the cluster is gone."""

    def drop(self, shard: int) -> None:
        """Give a shard up (stop its process if it has one)."""


@dataclasses.dataclass
class ClusterSearchStats:
    """What the scaling model needs: per shard the domains bounded and the seconds spent
    bounding (``busy_s``); the coordinator's round trips (``reports``), steals (count,
    domains moved, bytes, and the seconds from a shard going idle to its stolen domains
    arriving: ``steal_wait_s``), snapshots (count, bytes), lost shards and the domains
    resent from their ledgers; ``wall_s``: the search, ``wait_s``: of it, the
    coordinator's waiting for results (the rest is its own work per report)."""

    shards: int = 0
    reports: int = 0
    steals: int = 0
    stolen_domains: int = 0
    stolen_bytes: int = 0
    steal_wait_s: float = 0.0
    snapshots: int = 0
    snapshot_bytes: int = 0
    lost_shards: int = 0
    lost: list[int] = dataclasses.field(default_factory=list)
    resent_domains: int = 0
    busy_s: dict[int, float] = dataclasses.field(default_factory=dict)
    bounded: dict[int, int] = dataclasses.field(default_factory=dict)
    pids: dict[int, int] = dataclasses.field(default_factory=dict)
    live: int = 0
    wall_s: float = 0.0
    wait_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("busy_s", "bounded", "pids"):
            out[key] = {str(k): v for k, v in out[key].items()}
        return out


#: ``progress(search stats, cluster stats)`` after each round of results
ClusterProgressFn = Callable[[SearchStats, ClusterSearchStats], None]


@dataclasses.dataclass
class _Call:
    kind: str                        # "load", "work" or "give"
    ticket: Any
    sent: Domains | None = None      # domains this call hands to the shard
    snapshot: bool = False
    receiver: int | None = None      # give: who gets the domains


@dataclasses.dataclass
class _ShardState:
    calls: collections.deque = dataclasses.field(default_factory=collections.deque)
    covered: list = dataclasses.field(default_factory=list)
    open: int = 1
    best_margin: float = -math.inf
    idle_since: float | None = None
    awaiting_steal: bool = False
    last_snapshot: float = 0.0

    def ledger(self) -> list[Domains]:
        return self.covered + [c.sent for c in self.calls if c.sent is not None]


def cut_box(lower: np.ndarray, upper: np.ndarray, pieces: int, groups: int) -> list[Domains]:
    """The box cut into ``pieces`` boxes (halving the widest dimension of the largest piece
    each time; neighbours share their cut face, so together they cover the box)."""
    boxes = [(np.asarray(lower, np.float64).copy(), np.asarray(upper, np.float64).copy())]
    while len(boxes) < pieces:
        widths = [float((hi - lo).max()) for lo, hi in boxes]
        lo, hi = boxes.pop(int(np.argmax(widths)))
        dim = int(np.argmax(hi - lo))
        mid = (lo[dim] + hi[dim]) / 2
        left_hi, right_lo = hi.copy(), lo.copy()
        left_hi[dim], right_lo[dim] = mid, mid
        boxes += [(lo, left_hi), (right_lo, hi)]
    return [{"lower": lo[None], "upper": hi[None],
             "margin": np.full((1, groups), -np.inf), "depth": np.zeros(1, np.int64)}
            for lo, hi in boxes]


class Coordinator:
    """Runs one case over the shards of ``calls`` (module docstring)."""

    def __init__(self, calls: ShardCalls, problem: ShardProblem, graph_data: Any,
                 slice_s: float, checkpoint_s: float, steal_min: int, start_s: float = 30.0):
        self.calls, self.problem, self.graph_data = calls, problem, graph_data
        self.slice_s, self.checkpoint_s, self.steal_min = slice_s, checkpoint_s, steal_min
        self.start_s = start_s
        self.state = {s: _ShardState() for s in calls.shards()}
        self.orphans: list[Domains] = []
        self.stats = SearchStats()
        self.cluster = ClusterSearchStats(shards=len(self.state))

    # -- calls ---------------------------------------------------------------------------
    def _call(self, shard: int, kind: str, *args: Any, sent: Domains | None = None,
              snapshot: bool = False, receiver: int | None = None) -> None:
        ticket = self.calls.call(shard, kind, *args)
        self.state[shard].calls.append(_Call(kind, ticket, sent, snapshot, receiver))

    def _work(self, shard: int, sent: Domains | None = None) -> None:
        state = self.state[shard]
        snapshot = time.monotonic() - state.last_snapshot >= self.checkpoint_s \
            or len(state.covered) > 8
        if snapshot:
            state.last_snapshot = time.monotonic()
        state.idle_since = None
        self._call(shard, "work", self.slice_s, sent, snapshot, sent=sent, snapshot=snapshot)

    def _lose(self, shard: int) -> None:
        """A shard died: its ledger becomes orphans; a steal it was to receive is void
        (the giver's ledger entries stay: the giver's own ledger covers them)."""
        state = self.state.pop(shard)
        self.orphans += [d for d in state.ledger() if domain_count(d)]
        self.cluster.lost_shards += 1
        self.cluster.lost.append(shard)
        for call in state.calls:     # steals it was to give will never come
            if call.kind == "give" and call.receiver in self.state:
                self.state[call.receiver].awaiting_steal = False
        if not self.state:
            started = "" if self.cluster.pids else \
                f" (none started within {self.start_s:g} s: does the cluster have a free CPU?)"
            raise ClusterError("every shard worker of the distributed branch-and-bound was "
                               f"lost{started}; no verdict")

    def _resend_orphans(self) -> None:
        """Send the orphans to the live shard with the fewest open domains."""
        if not self.orphans:
            return
        domains = concat_domains(self.orphans)
        self.orphans = []
        if domains is None:
            return
        self.cluster.resent_domains += domain_count(domains)
        target = min(self.state, key=lambda s: (self.state[s].open, s))
        if self.state[target].calls:
            self._call(target, "work", self.slice_s, domains, False, sent=domains)
        else:
            self._work(target, domains)

    # -- the run -------------------------------------------------------------------------
    def run(self, pieces: list[Domains], deadline: float, probe: ProbeFn | None,
            stop: StopFn | None = None, progress: ClusterProgressFn | None = None,
            max_domains: int | None = None) -> SearchOutcome:
        """Search the case, whose open domains are ``pieces`` (together they cover every
        point not yet proven; at most one piece per shard, the other shards start idle
        and steal); ``deadline``: ``time.monotonic()``."""
        start = time.monotonic()
        shards = sorted(self.state)
        for shard in shards:
            self._call(shard, "load", self.problem, self.graph_data)
        for shard, piece in zip(shards, pieces):
            self._work(shard, piece)
        for shard in shards[len(pieces):]:
            self.state[shard].open = 0
            self.state[shard].idle_since = time.monotonic()

        def finish(status: SearchStatus, point: np.ndarray | None = None) -> SearchOutcome:
            self.stats.time_s = self.cluster.wall_s = time.monotonic() - start
            self.stats.open = sum(s.open for s in self.state.values()) + \
                sum(domain_count(d) for d in self.orphans)
            return SearchOutcome(status, point, self.stats)

        while True:
            if time.monotonic() > deadline:
                return finish(SearchStatus.TIMEOUT)
            if stop is not None and stop():
                return finish(SearchStatus.STOPPED)
            if max_domains is not None and self.stats.domains_bounded >= max_domains:
                return finish(SearchStatus.EXHAUSTED)
            self._resend_orphans()
            fronts = {s.calls[0].ticket: shard for shard, s in self.state.items() if s.calls}
            if not fronts:   # every shard idle with nothing open, no orphans
                if any(s.open for s in self.state.values()) or self.orphans:
                    raise RuntimeError("distributed search: open domains with no call")
                return finish(SearchStatus.PROVEN)
            wait = max(0.0, min(0.25, deadline - time.monotonic()))
            waited = time.monotonic()
            finished = self.calls.ready(list(fronts), wait)
            self.cluster.wait_s += time.monotonic() - waited
            for ticket in finished:
                shard = fronts[ticket]
                if shard not in self.state:
                    continue
                outcome = self._handle(shard, probe)
                if outcome is not None:
                    return finish(*outcome)
            if not finished and time.monotonic() - start > self.start_s \
                    and len(self.cluster.pids) < len(self.state):
                for shard in [s for s in self.state if s not in self.cluster.pids]:
                    self.calls.drop(shard)    # never started: no CPU for it
                    self._lose(shard)
            if progress is not None:
                self.stats.open = sum(s.open for s in self.state.values())
                self.stats.best_margin = min((s.best_margin for s in self.state.values()
                                              if s.open), default=math.inf)
                self.cluster.live = len(self.state)
                progress(self.stats, self.cluster)

    def _handle(self, shard: int, probe: ProbeFn | None
                ) -> tuple[SearchStatus, np.ndarray | None] | None:
        """Take the result of ``shard``'s oldest call; an outcome when the search ends."""
        state = self.state[shard]
        call = state.calls[0]
        try:
            result = self.calls.result(call.ticket)
        except ShardLost:
            self._lose(shard)
            return None
        state.calls.popleft()
        if call.kind == "load":
            self.cluster.pids[shard] = result
        elif call.kind == "give":
            self._given(call, result)
        else:
            return self._reported(shard, call, result, probe)
        return None

    def _given(self, call: _Call, domains: Domains | None) -> None:
        receiver = call.receiver
        if receiver not in self.state:       # the thief died meanwhile: the domains are
            if domain_count(domains):        # in no ledger but the giver's old one; keep
                self.orphans.append(domains)  # them as orphans too (a duplicate at worst)
            return
        thief = self.state[receiver]
        thief.awaiting_steal = False
        if not domain_count(domains):
            return
        self.cluster.steals += 1
        self.cluster.stolen_domains += domain_count(domains)
        self.cluster.stolen_bytes += domains_nbytes(domains)
        if thief.idle_since is not None:
            self.cluster.steal_wait_s += time.monotonic() - thief.idle_since
        self._work(receiver, domains)

    def _reported(self, shard: int, call: _Call, report: dict, probe: ProbeFn | None
                  ) -> tuple[SearchStatus, np.ndarray | None] | None:
        state, stats = self.state[shard], self.stats
        self.cluster.reports += 1
        stats.domains_bounded += report["bounded"]
        stats.batches += report["batches"]
        stats.max_depth = max(stats.max_depth, report["max_depth"])
        self.cluster.busy_s[shard] = self.cluster.busy_s.get(shard, 0.0) + report["busy_s"]
        self.cluster.bounded[shard] = self.cluster.bounded.get(shard, 0) + report["bounded"]
        if call.snapshot:
            state.covered = [report["snapshot"]] if report["snapshot"] is not None else []
            self.cluster.snapshots += 1
            self.cluster.snapshot_bytes += domains_nbytes(report["snapshot"])
        elif call.sent is not None:
            state.covered.append(call.sent)
        points = np.array(report["candidates"])   # a writable copy (Ray's is read-only)
        if probe is not None and len(points):
            stats.probes += len(points)
            hit = probe(points)
            if hit is not None:
                return SearchStatus.COUNTEREXAMPLE, points[hit]
        if report["timed_out"]:
            return SearchStatus.TIMEOUT, None
        if report["stuck"]:
            stats.stuck += 1
            return SearchStatus.EXHAUSTED, None
        state.open, state.best_margin = report["open"], report["best_margin"]
        if state.calls:          # orphans were queued behind this call
            return None
        if state.open:
            self._steal_from(shard)
            self._work(shard)
        else:
            state.covered = []   # nothing open and nothing sent since: nothing to cover
            state.idle_since = time.monotonic()
        return None

    def _steal_from(self, victim: int) -> None:
        """Half of ``victim``'s domains to one idle shard, if any waits and it has enough."""
        if self.state[victim].open < self.steal_min:
            return
        idle = [s for s, st in self.state.items()
                if st.idle_since is not None and not st.awaiting_steal and not st.calls]
        if not idle:
            return
        thief = idle[0]
        self.state[thief].awaiting_steal = True
        self._call(victim, "give", self.state[victim].open // 2, receiver=thief)


def run_distributed(calls: ShardCalls, problem: ShardProblem, graph_data: Any,
                    pieces: list[Domains], deadline: float,
                    probe: ProbeFn | None, settings: Any, stop: StopFn | None = None,
                    progress: ClusterProgressFn | None = None,
                    on_stats: Callable[[ClusterSearchStats], None] | None = None
                    ) -> SearchOutcome:
    """One case's distributed search; ``settings``: a :class:`ClusterConfig` (slice_s,
    checkpoint_s, steal_min); ``on_stats`` receives the cluster counters at the end."""
    coordinator = Coordinator(calls, problem, graph_data, settings.slice_s,
                              settings.checkpoint_s, settings.steal_min, settings.start_s)
    try:
        limit = problem.split.max_domains if problem.activation is None \
            else problem.activation.max_domains
        return coordinator.run(pieces, deadline, probe, stop, progress, limit)
    finally:
        coordinator.cluster.live = len(coordinator.state)
        if on_stats is not None:
            on_stats(coordinator.cluster)
