"""The start of a distributed activation-splitting search, run by the driver.

The root of activation splitting is special: its bound, and the LP/MILP tightening of its
intervals (:mod:`hybridver.bab.root_refine`), are computed once and reused by every
domain.  So the driver runs the local strategy
(:class:`~hybridver.bab.activation_split.ActivationSplitting`) on the root and on the
first few levels, until there are at least two open domains per shard, and only then
hands the open domains out (:func:`neuron_pieces`) with the root's tightened intervals
(sound on the whole case box, so on every domain).  A case decided during this start
(proven, a confirmed counterexample, nothing left to split) never reaches the shards.
"""

from __future__ import annotations

import time

import numpy as np

from hybridver.bab.activation_split import ActivationSplitting
from hybridver.bab_core import ProbeFn, SearchOutcome, SearchStatus, StopFn
from hybridver.cluster.domain_sets import Domains, plain_neurons
from hybridver.errors import DeadlineExceeded


def seed(strategy: ActivationSplitting, shards: int, deadline: float,
         probe: ProbeFn | None, stop: StopFn | None = None) -> SearchOutcome | None:
    """Bound the root and the first levels (at most ``2 * shards`` domains per batch)
    until ``2 * shards`` domains are open; an outcome when the case is decided, the
    deadline passes or ``stop()`` asks (STOPPED) on the way, else None (the open domains
    are in ``strategy.queue``)."""
    stats = strategy.stats
    start = time.monotonic()
    batch = strategy.root()

    def done(status: SearchStatus, point=None) -> SearchOutcome:
        stats.time_s = time.monotonic() - start
        return SearchOutcome(status, point, stats)

    try:
        while True:
            bounded = strategy.bound(batch)
            if bounded is not None:
                points = strategy.candidates(bounded) if probe is not None else None
                if points is not None and len(points):
                    stats.probes += len(points)
                    hit = probe(points)
                    if hit is not None:
                        return done(SearchStatus.COUNTEREXAMPLE, points[hit])
                strategy.branch(bounded)
            if stats.stuck:
                return done(SearchStatus.EXHAUSTED)
            if not strategy.queue:
                return done(SearchStatus.PROVEN)
            if len(strategy.queue) >= 2 * shards:
                return None
            if time.monotonic() > deadline:
                return done(SearchStatus.TIMEOUT)
            if stop is not None and stop():
                return done(SearchStatus.STOPPED)
            batch = strategy.select()
    except DeadlineExceeded:
        return done(SearchStatus.TIMEOUT)


def neuron_pieces(strategy: ActivationSplitting, shards: int) -> list[Domains]:
    """The open domains of ``strategy`` dealt round-robin in margin order into at most
    ``shards`` pieces (each gets hard and easy ones); the queue is emptied."""
    entries = sorted(strategy.queue)
    strategy.queue = []
    parts = [entries[i::shards] for i in range(shards)]
    return [plain_neurons(part) for part in parts if part]


def root_intervals(strategy: ActivationSplitting) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The root's tightened intervals as plain arrays ``(1, *shape)``."""
    return {name: (lo.cpu().numpy(), hi.cpu().numpy())
            for name, (lo, hi) in strategy.root_restr.items()}


def candidate_names(strategy: ActivationSplitting) -> tuple[str, ...]:
    """The split candidates' pre-activation names, in order: a decision names a candidate
    by its position, so a shard checks that its own list is the same."""
    return tuple(c.pre for c in strategy.cands)
