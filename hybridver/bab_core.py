"""The branch-and-bound skeleton shared by every splitting search.

Three searches split a case into domains until each is proven or one yields a
counterexample: input splitting (:mod:`hybridver.bab.input_split`: sub-boxes), activation
splitting (:mod:`hybridver.bab.activation_split`: restrictions on neurons) and region
splitting (:mod:`hybridver.backends.region_split`: input polytopes).  They differ in what a
domain is and how it is bounded, split and probed (a :class:`Strategy`); the loop around
them is this module's :func:`run_search`:

1. bound the strategy's root batch (if it has one), probe, branch;
2. while domains are open (in the pool or taken over by a hand-off): stop at the deadline
   (TIMEOUT), when the caller's ``stop`` asks (STOPPED), or at the domain limit
   (EXHAUSTED); collect what the hand-off reports; select a batch, bound it (dropping the
   proven and the empty domains), probe the candidate points of the open ones, branch
   (split them back into the pool); offer the hand-off more domains; report progress;
   stop (EXHAUSTED) once a domain is left open with nothing to split;
3. nothing open: PROVEN (EXHAUSTED if a domain was left with nothing to split).

Soundness: the skeleton proves nothing by itself.  PROVEN is returned only when the pool is
empty, no handed-off domain is outstanding and no domain was left unsplittable; whether an
empty pool means the case holds rests on the strategy (its bounds are sound and a split's
children cover the parent).  COUNTEREXAMPLE is returned only for a point the caller's
``probe`` confirmed.

This module sits low (numpy, the standard library and `errors`) so that back ends can use it.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from hybridver.errors import DeadlineExceeded


class SearchStatus(str, enum.Enum):
    """How a search ended.

    PROVEN: no domain is left open (every one proven or empty), none is handed off and
    none was left unsplittable: the case holds (given sound bounds and covering splits).
    COUNTEREXAMPLE: the caller's probe confirmed a point (``SearchOutcome.counterexample_point``).
    TIMEOUT: the deadline passed.
    STOPPED: the caller's ``stop`` callback asked to end (e.g. the case was decided
    elsewhere).
    EXHAUSTED: the domain limit was reached, or a domain is open with nothing left to
    split (a tie the bounds cannot break): the search cannot prove the case.
    """

    PROVEN = "proven"
    COUNTEREXAMPLE = "counterexample"
    TIMEOUT = "timeout"
    STOPPED = "stopped"
    EXHAUSTED = "exhausted"


@dataclasses.dataclass
class SearchStats:
    """Counters of one search (a strategy counts what applies to it; the rest stay 0).

    ``domains_bounded``/``batches``: domains and bound calls; ``max_queue``: largest pool;
    ``max_depth``: deepest domain (splits from the root); ``probes``: points handed to the
    probe; ``proven_domains``: domains dropped as proven (activation splitting);
    ``infeasible``: domains dropped as empty (contradictory restrictions, empty polytope or
    box); ``stuck``: domains left open with nothing to split; ``input_splits``: neuron
    domains whose input box was split instead; ``attacks``/``attack_s``: PGD runs inside
    domains and their time; ``delegated``/``delegated_proven``/``delegated_returned``:
    domains the hand-off took, proved and gave back; ``lps``/``lp_proven``: LPs over
    regions and the disjuncts they refuted; ``linear_regions``: regions with every ReLU
    stable; ``max_cuts``: most cuts of a region; ``method``: the bound method;
    ``open``/``best_margin``: open domains (pool plus hand-off) and the lowest margin
    bound among them, as of the last progress report or the end; ``time_s``: the search;
    ``refine``: the LP/MILP tightening of root intervals (activation splitting), empty
    when it did not run.
    """

    domains_bounded: int = 0
    batches: int = 0
    max_queue: int = 0
    max_depth: int = 0
    probes: int = 0
    proven_domains: int = 0
    infeasible: int = 0
    stuck: int = 0
    input_splits: int = 0
    attacks: int = 0
    attack_s: float = 0.0
    delegated: int = 0
    delegated_proven: int = 0
    delegated_returned: int = 0
    lps: int = 0
    lp_proven: int = 0
    linear_regions: int = 0
    max_cuts: int = 0
    method: str | None = None
    open: int = 0
    best_margin: float = math.inf
    time_s: float = 0.0
    refine: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def domains_per_s(self) -> float:
        return self.domains_bounded / max(self.time_s, 1e-9)

    def as_dict(self) -> dict[str, Any]:
        """Every counter as a plain dict (JSON-ready but for infinities)."""
        return {**dataclasses.asdict(self), "domains_per_s": self.domains_per_s}


@dataclasses.dataclass
class SearchOutcome:
    """``status``; ``counterexample_point (n_in,)``: the confirmed point when the status is
    COUNTEREXAMPLE, else None; ``stats``: the search's counters."""

    status: SearchStatus
    counterexample_point: np.ndarray | None = None
    stats: SearchStats = dataclasses.field(default_factory=SearchStats)


#: points whose margin on the IR is at most this are confirmed on the real model (a
#: screen, not a soundness constant: confirmation alone decides a counterexample)
PROBE_MARGIN = 1e-6
#: ``probe(points (K, n_in)) -> index of a confirmed counterexample among them, or None``:
#: the caller checks candidates on the real model.
ProbeFn = Callable[[np.ndarray], "int | None"]
#: ``progress(stats)`` after each batch (``stats.open`` and ``stats.best_margin`` current).
ProgressFn = Callable[[SearchStats], None]
#: ``stop() -> True`` to end the search (asked before every batch): STOPPED.
StopFn = Callable[[], bool]


@dataclasses.dataclass(frozen=True)
class SearchLimits:
    """``deadline``: a ``time.monotonic()`` value; ``max_domains``: domains bounded before
    giving up (None: no limit); ``stop``: see :data:`StopFn`."""

    deadline: float
    max_domains: int | None = None
    stop: StopFn | None = None


class HandOff(Protocol):
    """Takes open domains out of the pool (e.g. to exact back ends) and reports on them
    later; a domain taken counts as open until reported proven."""

    def offer(self, deadline: float) -> int:
        """Take over some domains of the pool; how many."""

    def collect(self) -> tuple[Sequence[Any], np.ndarray | None, int]:
        """``(returned batches, confirmed counterexample point or None, proven count)``
        since the last call; returned batches are bounded again (``len()`` of each: its
        domains)."""

    def outstanding(self) -> int:
        """Domains taken over and not yet reported."""

    def wait(self, deadline: float) -> None:
        """Block until something may be collected (or ``deadline``)."""


class Strategy(Protocol):
    """What a search does with its domains; :func:`run_search` calls the hooks.

    A *batch* is whatever :meth:`select`/:meth:`root` return (and the hand-off gives
    back); :meth:`bound` turns it into the strategy's bounded, pruned form, which
    :meth:`candidates` and :meth:`branch` read.  ``stats`` is counted by the strategy
    (``domains_bounded`` drives the domain limit, ``stuck`` ends the search);
    ``hand_off`` is None when the strategy has none.
    """

    stats: SearchStats
    hand_off: HandOff | None

    def root(self) -> Any | None:
        """The first batch, bounded before the loop (None: the root is in the pool)."""

    def open_count(self) -> int:
        """Domains in the pool."""

    def best_margin(self) -> float:
        """The lowest margin bound in the pool (+inf when empty)."""

    def select(self) -> Any:
        """Remove the next batch from the (non-empty) pool."""

    def bound(self, batch: Any) -> Any | None:
        """Bound ``batch`` and drop its proven and empty domains; None when nothing of it
        is left (nothing to probe or branch)."""

    def candidates(self, bounded: Any) -> np.ndarray | None:
        """Points ``(K, n_in)`` worth probing (asked only when there is a probe)."""

    def branch(self, bounded: Any) -> None:
        """Split the open domains and put the children in the pool (count ``stuck`` for
        those with nothing left to split)."""


def run_search(strategy: Strategy, limits: SearchLimits, probe: ProbeFn | None = None,
               progress: ProgressFn | None = None) -> SearchOutcome:
    """Run ``strategy`` to an outcome (module docstring).  A bound pass that passes the
    deadline (``DeadlineExceeded``) ends the search as TIMEOUT, like the loop's own check."""
    start = time.monotonic()
    try:
        return _search(strategy, limits, probe, progress, start)
    except DeadlineExceeded:
        strategy.stats.time_s = time.monotonic() - start
        return SearchOutcome(SearchStatus.TIMEOUT, None, strategy.stats)


def _search(strategy: Strategy, limits: SearchLimits, probe: ProbeFn | None,
            progress: ProgressFn | None, start: float) -> SearchOutcome:
    stats = strategy.stats
    hand_off = strategy.hand_off

    def open_total() -> int:
        return strategy.open_count() + (hand_off.outstanding() if hand_off is not None else 0)

    def finish(status: SearchStatus, point: np.ndarray | None = None) -> SearchOutcome:
        stats.time_s = time.monotonic() - start
        stats.open = open_total()
        return SearchOutcome(status, point, stats)

    def step(batch: Any) -> np.ndarray | None:
        """Bound, probe and branch one batch: a confirmed counterexample point or None."""
        bounded = strategy.bound(batch)
        if bounded is None:
            return None
        if probe is not None:
            points = strategy.candidates(bounded)
            if points is not None and len(points):
                stats.probes += len(points)
                hit = probe(points)
                if hit is not None:
                    return points[hit]
        strategy.branch(bounded)
        return None

    def offer() -> None:
        """After a split, so that every round branches on something even if the hand-off
        returns what it takes at once (called with an empty pool too: a hand-off that
        takes domains while they are split counts them here)."""
        if hand_off is not None:
            stats.delegated += hand_off.offer(limits.deadline)

    root = strategy.root()
    if root is not None:
        point = step(root)
        if point is not None:
            return finish(SearchStatus.COUNTEREXAMPLE, point)
    offer()
    while strategy.open_count() or (hand_off is not None and hand_off.outstanding()):
        stats.max_queue = max(stats.max_queue, strategy.open_count())
        if time.monotonic() > limits.deadline:
            return finish(SearchStatus.TIMEOUT)
        if limits.stop is not None and limits.stop():
            return finish(SearchStatus.STOPPED)
        if limits.max_domains is not None and stats.domains_bounded >= limits.max_domains:
            return finish(SearchStatus.EXHAUSTED)
        if hand_off is not None:
            returned, point, proven = hand_off.collect()
            stats.delegated_proven += proven
            if point is not None:
                return finish(SearchStatus.COUNTEREXAMPLE, point)
            for batch in returned:
                stats.delegated_returned += len(batch)
                point = step(batch)
                if point is not None:
                    return finish(SearchStatus.COUNTEREXAMPLE, point)
            if not strategy.open_count():
                if hand_off.outstanding():
                    hand_off.wait(limits.deadline)
                continue
        point = step(strategy.select())
        if point is not None:
            return finish(SearchStatus.COUNTEREXAMPLE, point)
        offer()
        if progress is not None:
            stats.open = open_total()
            stats.best_margin = strategy.best_margin()
            progress(stats)
        if stats.stuck:   # an open domain with nothing left to split: cannot prove the case
            return finish(SearchStatus.EXHAUSTED)
    return finish(SearchStatus.EXHAUSTED if stats.stuck else SearchStatus.PROVEN)
