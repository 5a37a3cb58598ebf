"""The distributed input-splitting search with in-process shards (no Ray): verdicts as
the local search gives them, work stealing, snapshots, and lost shards at every moment
of a run, on properties with a known counterexample (never proven) and on properties
that hold (proven despite the faults)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.optimize import minimize

from hybridver.bab.box_bound import box_bound_fn
from hybridver.bab.input_split import InputSplitConfig, input_split_bab
from hybridver.bab_core import SearchStatus
from hybridver.bounds.options import BoundConfig, BoundMethod
from hybridver.cluster.coordinator import Coordinator, ShardLost, cut_box
from hybridver.cluster.shard import Shard, ShardProblem
from hybridver.config import ClusterConfig
from hybridver.schedule.transport import pack_graph
from tests.bab.test_activation_split import mlp, outputs

CROWN = BoundConfig(method=BoundMethod.CROWN)
SPLIT = InputSplitConfig(batch_size=8)
SETTINGS = ClusterConfig(slice_s=0.02, checkpoint_s=0.05, steal_min=4, start_s=1.0)


class LocalShards:
    """In-process shards, each ``work`` call bounding one batch (so that runs do not
    depend on timing); ``die`` maps a shard to the call number (counting from 1 over all
    its calls) at which its process "dies": that call and every later one fail."""

    def __init__(self, count: int, die: dict[int, int] | None = None, never=()):
        self.shards_ = {i: Shard() for i in range(count)}
        self.die = die or {}
        self.never = set(never)   # shards whose calls never finish (no CPU to start on)
        self.counts = {i: 0 for i in range(count)}
        self.results: dict[int, tuple[int, object]] = {}
        self.next = 0

    def shards(self) -> list[int]:
        return list(self.shards_)

    def call(self, shard, method, *args):
        self.counts[shard] += 1
        self.next += 1
        dead = shard in self.die and self.counts[shard] >= self.die[shard]
        extra = {"max_batches": 1} if method == "work" else {}
        result = ShardLost("killed") if dead else \
            getattr(self.shards_[shard], method)(*args, **extra)
        self.results[self.next] = (shard, result)
        return self.next

    def ready(self, tickets, timeout):
        done = [t for t in tickets if self.results[t][0] not in self.never]
        if not done:
            time.sleep(timeout)
        return done

    def drop(self, shard):
        self.die[shard] = 0

    def result(self, ticket):
        _, result = self.results.pop(ticket)
        if isinstance(result, ShardLost):
            raise result
        return result


def _problem(graph, C, d, deadline_s=60.0) -> ShardProblem:
    return ShardProblem("g", np.asarray(C, float), np.asarray(d, float), ((0, len(d)),),
                        CROWN, SPLIT, time.time() + deadline_s)


def _local(graph, lower, upper, C, d):
    return input_split_bab(box_bound_fn(graph, C, d, CROWN, "cpu"), lower, upper,
                           (slice(0, 1),), time.monotonic() + 60, _probe(graph, C, d, []),
                           SPLIT)


def _property(seed: int, holds: bool):
    """A 3-input MLP and the case ``y0 - y1 >= c`` (the violating set: rows ``C y + d <=
    0``), ``c`` 0.05 below the largest value seen on 20,000 samples (violated), or 0.02
    above the largest value a local optimizer finds from the best ten (holds: the local
    search proves it, which the tests check)."""
    graph = mlp([3, 16, 16, 2], seed)
    rng = np.random.default_rng(seed)
    lower, upper = -np.ones(3), np.ones(3)
    points = rng.uniform(lower, upper, size=(20_000, 3))
    y = outputs(graph, points)
    value = y[:, 0] - y[:, 1]
    C = np.array([[-1.0, 1.0]])
    if not holds:
        return graph, lower, upper, C, np.array([value.max() - 0.05])

    def minus(x):
        out = outputs(graph, np.asarray(x)[None])
        return -(out[0, 0] - out[0, 1])
    top = max(-minimize(minus, points[i], bounds=list(zip(lower, upper)), method="Powell").fun
              for i in np.argsort(-value)[:10])
    return graph, lower, upper, C, np.array([top + 0.02])


def _probe(graph, C, d, hits: list):
    def probe(points):
        y = outputs(graph, points)
        margins = (y @ C.T + d).max(axis=1)
        k = int(np.argmin(margins))
        if margins[k] <= 0:
            hits.append(points[k])
            return k
        return None
    return probe


def _run(graph, lower, upper, C, d, shards, settings=SETTINGS):
    hits: list = []
    coordinator = Coordinator(shards, _problem(graph, C, d), pack_graph(graph),
                              settings.slice_s, settings.checkpoint_s, settings.steal_min,
                              settings.start_s)
    pieces = cut_box(lower, upper, len(shards.shards()), 1)
    outcome = coordinator.run(pieces, time.monotonic() + 60, _probe(graph, C, d, hits))
    return outcome, coordinator.cluster, hits


def test_cut_box_covers_the_box():
    pieces = cut_box(np.zeros(3), np.array([4.0, 1.0, 2.0]), 5, 2)
    assert len(pieces) == 5
    points = np.random.default_rng(0).uniform([0, 0, 0], [4, 1, 2], size=(5000, 3))
    inside = np.zeros(len(points), bool)
    for p in pieces:
        inside |= np.all((points >= p["lower"][0]) & (points <= p["upper"][0]), axis=1)
        assert p["margin"].shape == (1, 2) and np.all(p["margin"] == -np.inf)
    assert inside.all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_verdicts_as_the_local_search(seed):
    for holds in (True, False):
        graph, lower, upper, C, d = _property(seed, holds)
        local = _local(graph, lower, upper, C, d)
        outcome, cluster, hits = _run(graph, lower, upper, C, d, LocalShards(3))
        assert local.status is (SearchStatus.PROVEN if holds else SearchStatus.COUNTEREXAMPLE)
        assert outcome.status is local.status
        if not holds:
            y = outputs(graph, outcome.counterexample_point[None])
            assert float(y[0, 0] - y[0, 1]) >= d[0]
        assert cluster.reports >= 3 and set(cluster.pids) == {0, 1, 2}


def test_idle_shards_steal_and_snapshots_are_taken():
    graph, lower, upper, C, d = _property(1, True)
    # most of the work is in a few pieces: the other shards finish and steal
    outcome, cluster, _ = _run(graph, lower, upper, C, d, LocalShards(4))
    assert outcome.status is SearchStatus.PROVEN
    assert cluster.steals >= 1 and cluster.stolen_domains >= 2
    assert cluster.snapshots >= 1
    assert sum(cluster.bounded.values()) == outcome.stats.domains_bounded


@pytest.mark.parametrize("holds", [True, False])
def test_a_lost_shard_at_any_call_changes_no_verdict(holds):
    """Shard 1 dies at its k-th call, for every k up to its last call: a property with
    a counterexample is never proven, one that holds is still proven."""
    graph, lower, upper, C, d = _property(1, holds)
    clean = LocalShards(3)
    _run(graph, lower, upper, C, d, clean)
    calls = clean.counts[1]
    assert calls >= 3
    expected = SearchStatus.PROVEN if holds else SearchStatus.COUNTEREXAMPLE
    resent = 0
    for k in range(1, calls + 1):
        outcome, cluster, _ = _run(graph, lower, upper, C, d, LocalShards(3, {1: k}))
        assert outcome.status is expected, f"shard 1 lost at call {k}"
        # a run that ends with a counterexample may end before the lost call is read
        assert cluster.lost_shards == 1 or (not holds and cluster.lost_shards == 0)
        resent += cluster.resent_domains
    assert resent > 0


def test_losing_every_shard_is_an_error_not_a_verdict():
    from hybridver.errors import ClusterError

    graph, lower, upper, C, d = _property(2, True)
    with pytest.raises(ClusterError, match="every shard worker"):
        _run(graph, lower, upper, C, d, LocalShards(2, {0: 3, 1: 3}))


def test_a_shard_that_never_starts_is_given_up_and_its_piece_searched_by_others():
    graph, lower, upper, C, d = _property(1, True)
    outcome, cluster, _ = _run(graph, lower, upper, C, d, LocalShards(3, never={2}))
    assert outcome.status is SearchStatus.PROVEN
    assert cluster.lost == [2] and cluster.resent_domains >= 1


def test_no_shard_starting_is_an_error_that_says_why():
    from hybridver.errors import ClusterError

    graph, lower, upper, C, d = _property(1, False)
    with pytest.raises(ClusterError, match="none started within 1 s"):
        _run(graph, lower, upper, C, d, LocalShards(2, never={0, 1}))
