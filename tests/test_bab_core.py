"""The branch-and-bound skeleton (hybridver/bab_core.py) on a toy strategy: every way a
search ends, and that PROVEN needs an empty pool, no outstanding hand-off and no stuck
domain.

The toy: a domain is an interval ``[a, b]`` of the real line; its "bound" is proven when
the interval is narrower than ``prove_width`` and does not contain ``bad`` (a point where
the property fails); the probe confirms a point within ``1e-9`` of ``bad``.
"""

from __future__ import annotations

import time

import numpy as np

from hybridver.bab_core import (SearchLimits, SearchOutcome, SearchStats, SearchStatus,
                                run_search)


class Toy:
    hand_off = None

    def __init__(self, bad: float | None = None, prove_width: float = 0.1,
                 stuck_width: float = 0.0, root: bool = True):
        self.bad, self.prove_width, self.stuck_width = bad, prove_width, stuck_width
        self.stats = SearchStats()
        self.pool: list[tuple[float, float]] = [] if root else [(0.0, 1.0)]
        self.has_root = root

    def root(self):
        return [(0.0, 1.0)] if self.has_root else None

    def open_count(self) -> int:
        return len(self.pool)

    def best_margin(self) -> float:
        return -max((b - a for a, b in self.pool), default=-np.inf)

    def select(self):
        batch, self.pool = self.pool[:4], self.pool[4:]
        return batch

    def bound(self, batch):
        self.stats.domains_bounded += len(batch)
        self.stats.batches += 1
        open_ = [(a, b) for a, b in batch
                 if b - a >= self.prove_width or (self.bad is not None and a <= self.bad <= b)]
        return open_ or None

    def candidates(self, open_):
        return np.array([[self.bad if self.bad is not None and a <= self.bad <= b
                          else (a + b) / 2] for a, b in open_])

    def branch(self, open_):
        for a, b in open_:
            if b - a <= self.stuck_width:
                self.stats.stuck += 1
                continue
            m = (a + b) / 2
            self.pool += [(a, m), (m, b)]


def _probe_for(bad):
    def probe(points):
        hits = np.flatnonzero(np.abs(points[:, 0] - bad) <= 1e-9)
        return int(hits[0]) if len(hits) else None
    return probe


def _limits(seconds: float = 10.0, **kw) -> SearchLimits:
    return SearchLimits(time.monotonic() + seconds, **kw)


def test_all_pruned_is_proven():
    out = run_search(Toy(), _limits())
    assert out.status is SearchStatus.PROVEN
    assert out.counterexample_point is None
    assert out.stats.domains_bounded > 1 and out.stats.open == 0


def test_probe_hit_is_a_counterexample_and_never_proven():
    out = run_search(Toy(bad=0.3), _limits(), probe=_probe_for(0.3))
    assert out.status is SearchStatus.COUNTEREXAMPLE
    assert out.counterexample_point[0] == 0.3 and out.stats.probes >= 1


def test_without_a_probe_a_bad_point_is_never_proven():
    out = run_search(Toy(bad=0.3, stuck_width=1e-3), _limits())
    assert out.status is SearchStatus.EXHAUSTED and out.stats.stuck > 0


def test_deadline_is_timeout():
    out = run_search(Toy(bad=0.3, root=False), SearchLimits(time.monotonic() - 1.0))
    assert out.status is SearchStatus.TIMEOUT and out.stats.domains_bounded == 0


def test_stop_is_stopped():
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) >= 3

    out = run_search(Toy(bad=0.3), _limits(stop=stop))
    assert out.status is SearchStatus.STOPPED and len(asked) == 3


def test_domain_limit_is_exhausted():
    out = run_search(Toy(bad=0.3), _limits(max_domains=10))
    assert out.status is SearchStatus.EXHAUSTED
    assert 10 <= out.stats.domains_bounded < 10 + 4


def test_progress_sees_open_domains_and_best_margin():
    seen: list[tuple[int, float]] = []
    run_search(Toy(), _limits(), progress=lambda s: seen.append((s.open, s.best_margin)))
    assert seen and seen[-1][0] == 0 and any(n > 0 for n, _ in seen)


class _HandOff:
    """Takes the whole pool; ``verdict``: "proven" reports all proven on the next
    collect, "returned" gives them back once, "silent" never reports."""

    def __init__(self, toy: Toy, verdict: str):
        self.toy, self.verdict, self.taken, self.gave_back = toy, verdict, [], False

    def offer(self, deadline):
        if self.verdict == "returned" and self.gave_back:
            return 0
        self.taken += self.toy.pool
        n, self.toy.pool = len(self.toy.pool), []
        return n

    def collect(self):
        taken, self.taken = self.taken, []
        if self.verdict == "proven":
            return [], None, len(taken)
        if self.verdict == "returned":
            self.gave_back = True
            return ([taken] if taken else []), None, 0
        self.taken = taken
        return [], None, 0

    def outstanding(self):
        return len(self.taken)

    def wait(self, deadline):
        time.sleep(0.01)


def test_a_silent_hand_off_keeps_the_search_open():
    toy = Toy(prove_width=1e-6)
    toy.hand_off = _HandOff(toy, "silent")
    out = run_search(toy, _limits(0.3))
    assert out.status is SearchStatus.TIMEOUT and out.stats.open > 0


def test_hand_off_proven_and_returned_domains():
    toy = Toy(prove_width=1e-6)
    toy.hand_off = _HandOff(toy, "proven")
    out = run_search(toy, _limits())
    assert out.status is SearchStatus.PROVEN and out.stats.delegated_proven > 0
    toy = Toy()
    toy.hand_off = _HandOff(toy, "returned")
    out = run_search(toy, _limits())
    assert out.status is SearchStatus.PROVEN and out.stats.delegated_returned > 0


def test_outcome_defaults_and_stats_dict():
    out = SearchOutcome(SearchStatus.STOPPED)
    assert out.counterexample_point is None and out.stats.domains_bounded == 0
    assert out.status.value == "stopped"
    assert {"domains_bounded", "probes", "domains_per_s"} <= set(out.stats.as_dict())
