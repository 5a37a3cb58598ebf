"""Distributed activation splitting with in-process shards (no Ray): the driver's start
(root bound, first levels), the domains as plain data, and lost shards at every call, on
a property that needs branching to be proven and on one with a known counterexample
(never proven)."""

from __future__ import annotations

import time

import pytest

from hybridver.bab.activation_split import (ActivationSplitConfig, ActivationSplitting,
                                            activation_split_bab)
from hybridver.bab_core import SearchStatus
from hybridver.bounds.options import BoundConfig
from hybridver.bab.input_split import InputSplitConfig
from hybridver.cluster.coordinator import Coordinator
from hybridver.cluster.domain_sets import concat_domains, domain_count
from hybridver.cluster.seeding import candidate_names, neuron_pieces, root_intervals, seed
from hybridver.cluster.shard import Shard, ShardProblem
from hybridver.schedule.transport import pack_graph
from tests.bab.test_activation_split import mlp, violated_property
from tests.cluster.test_coordinator import SETTINGS, LocalShards, _probe

GROUPS = [slice(0, 1)]


def _case(shift: float):
    """A 10-input ReLU MLP around a known counterexample of ``y0 - y1 < t``
    (:func:`violated_property`); ``shift`` lowers the threshold: 0.0 keeps the
    counterexample, 0.5 makes the property hold, proven only after branching."""
    graph = mlp([10, 24, 24, 3], 1)
    lower, upper, C, d = violated_property(graph, 10, 1)
    return graph, lower, upper, C, d + shift


def _distributed(graph, lower, upper, C, d, shards, config, probe):
    deadline = time.monotonic() + 120
    strategy = ActivationSplitting(graph, lower, upper, C, d, GROUPS, deadline, config, "cpu")
    early = seed(strategy, len(shards.shards()), deadline, probe)
    if early is not None:
        return early, None
    problem = ShardProblem("g", C, d, ((0, 1),), BoundConfig(), InputSplitConfig(),
                           time.time() + 120, activation=config, lower=lower, upper=upper,
                           root_intervals=root_intervals(strategy),
                           candidates=candidate_names(strategy))
    pieces = neuron_pieces(strategy, len(shards.shards()))
    coordinator = Coordinator(shards, problem, pack_graph(graph), SETTINGS.slice_s,
                              SETTINGS.checkpoint_s, 2, SETTINGS.start_s)
    outcome = coordinator.run(pieces, deadline, probe, max_domains=config.max_domains)
    return outcome, coordinator.cluster


CONFIG = ActivationSplitConfig(batch_size=4)


def test_a_property_that_needs_branching_is_proven_as_locally():
    graph, lower, upper, C, d = _case(0.5)
    local = activation_split_bab(graph, lower, upper, C, d, GROUPS, time.monotonic() + 120,
                                 _probe(graph, C, d, []), CONFIG)
    assert local.status is SearchStatus.PROVEN and local.stats.domains_bounded > 4
    outcome, cluster = _distributed(graph, lower, upper, C, d, LocalShards(2), CONFIG,
                                    _probe(graph, C, d, []))
    assert outcome.status is SearchStatus.PROVEN
    assert cluster is not None and cluster.reports >= 2


def test_plain_neuron_domains_round_trip():
    graph, lower, upper, C, d = _case(0.5)
    deadline = time.monotonic() + 60
    strategy = ActivationSplitting(graph, lower, upper, C, d, GROUPS, deadline, CONFIG, "cpu")
    assert seed(strategy, 2, deadline, None) is None
    open_before = sorted((e[0], e[2]) for e in strategy.queue)
    pieces = neuron_pieces(strategy, 2)
    assert not strategy.queue and len(pieces) == 2
    together = concat_domains(pieces)
    assert sorted(zip(together["margin"].tolist(), together["decisions"])) == open_before
    shard = Shard()
    shard.load(ShardProblem("g", C, d, ((0, 1),), BoundConfig(), InputSplitConfig(),
                            time.time() + 60, activation=CONFIG, lower=lower, upper=upper,
                            candidates=candidate_names(strategy)), pack_graph(graph))
    shard.work(0.0, together, max_batches=0)
    given = shard.give(2)
    assert domain_count(given) == 2
    assert domain_count(shard.snapshot()) + 2 == domain_count(together)


def test_a_shard_refuses_other_split_candidates():
    graph, lower, upper, C, d = _case(0.5)
    with pytest.raises(RuntimeError, match="split candidates differ"):
        Shard().load(ShardProblem("g", C, d, ((0, 1),), BoundConfig(), InputSplitConfig(),
                                  time.time() + 60, activation=CONFIG, lower=lower,
                                  upper=upper, candidates=("nope",)), pack_graph(graph))


@pytest.mark.slow
def test_a_lost_shard_at_any_call_changes_no_verdict():
    """Shard 1 dies at its k-th call, every k: the property that holds is still proven;
    the one with a counterexample (searched without a probe, up to a domain limit) is
    never proven."""
    held = _case(0.5)
    clean = LocalShards(2)
    _distributed(*held, clean, CONFIG, _probe(held[0], held[3], held[4], []))
    assert clean.counts[1] >= 2
    lost = 0
    for k in range(1, clean.counts[1] + 1):
        outcome, cluster = _distributed(*held, LocalShards(2, {1: k}), CONFIG,
                                        _probe(held[0], held[3], held[4], []))
        assert outcome.status is SearchStatus.PROVEN, f"lost at call {k}"
        lost += cluster.lost_shards   # alpha's time budget may change a run's length
    assert lost >= clean.counts[1] - 1
    bad = _case(0.0)
    limited = ActivationSplitConfig(batch_size=4, max_domains=40)
    for k in (1, 2, 3, 5):
        outcome, _ = _distributed(*bad, LocalShards(2, {1: k}), limited, None)
        assert outcome.status in (SearchStatus.EXHAUSTED, SearchStatus.TIMEOUT)


def test_the_start_stops_when_asked():
    """The case race may decide the case during the driver's start: STOPPED, never a
    verdict of the start's own."""
    graph, lower, upper, C, d = _case(0.5)
    deadline = time.monotonic() + 60
    strategy = ActivationSplitting(graph, lower, upper, C, d, GROUPS, deadline, CONFIG, "cpu")
    outcome = seed(strategy, 8, deadline, None, stop=lambda: True)
    assert outcome is not None and outcome.status is SearchStatus.STOPPED
