"""Distributed input splitting on a Ray cluster: the shards are Ray actors.

:func:`distributed_input_split` runs one case: it makes (or reuses) one shard actor per
cluster CPU (``ClusterConfig.shards``), ships the graph once per actor, and lets the
:class:`~hybridver.cluster.coordinator.Coordinator` drive them.  The actors are started
with the run (:func:`warm_up`, so that their torch import overlaps the first stages) and
reused by every case of the run; a case's leftover calls finish within a slice, before the
next case's ``load``, which Ray runs after them (an actor runs its calls in order).

The actors end with the run (:func:`release`), giving their CPUs back.  An actor whose
process dies raises ``RayActorError`` on its calls: the coordinator drops
it and resends its ledger (:class:`ShardLost`), and the pool makes a fresh actor for the
next case.  Any other failure to reach the cluster is a
:class:`~hybridver.errors.ClusterError`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from hybridver.bab_core import ProbeFn, SearchOutcome, StopFn
from hybridver.cluster.connect import cluster_info, head_trouble, require_ray
from hybridver.cluster.tasks import lost_cluster
from hybridver.cluster.coordinator import (ClusterProgressFn, ClusterSearchStats, ShardLost,
                                           cut_box, run_distributed)
from hybridver.cluster.seeding import candidate_names, neuron_pieces, root_intervals, seed
from hybridver.cluster.shard import Shard, ShardProblem
from hybridver.ir.graph import NetworkGraph
from hybridver.schedule.transport import pack_graph

ray = require_ray()   # a clear error, not an ImportError, without the [ray] extra
_ShardActor = ray.remote(Shard)
_actors: list[Any] = []
_graph_refs: dict[str, Any] = {}
_MAX_GRAPHS = 8


def shard_actors(count: int) -> list[Any]:
    """Up to ``count`` live shard actors (one CPU each), made on demand and kept: no more
    new ones than the cluster has free CPUs now (at least one shard in all)."""
    free = int(ray.available_resources().get("CPU", 0))
    count = max(1, min(count, len(_actors) + free))
    while len(_actors) < count:
        actor = _ShardActor.options(num_cpus=1, max_restarts=0, max_task_retries=0).remote()
        _actors.append(actor)
    return _actors[:count]


def warm_up(count: int) -> None:
    """Start ``count`` shard actors now, without waiting: a new actor imports torch
    (seconds), which then overlaps the run's first stages."""
    for actor in shard_actors(count):
        actor.pid.remote()


def release() -> None:
    """End every shard actor of this process and drop the graphs put in the object
    store: a run gives its CPUs back when it ends (an actor holds one CPU for as long
    as it lives, and other drivers' tasks would wait for it)."""
    for actor in _actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already dead, or the cluster is gone
            pass
    _actors.clear()
    _graph_refs.clear()


def forget_actor(actor: Any) -> None:
    """Drop a dead actor from the pool (a fresh one replaces it next time)."""
    if actor in _actors:
        _actors.remove(actor)


class RayShardCalls:
    """:class:`~hybridver.cluster.coordinator.ShardCalls` over Ray actors."""

    #: seconds without any finished call after which the head is checked
    STALL_CHECK_S = 2.0

    def __init__(self, actors: list[Any]):
        self.actors = dict(enumerate(actors))
        self._last_answer = time.monotonic()

    def shards(self) -> list[int]:
        return list(self.actors)

    def call(self, shard: int, method: str, *args: Any) -> Any:
        return getattr(self.actors[shard], method).remote(*args)

    def ready(self, tickets: list[Any], timeout: float) -> list[Any]:
        try:
            done, _ = ray.wait(tickets, num_returns=1, timeout=timeout)
            if done:   # everything else already finished too
                more, _ = ray.wait(tickets, num_returns=len(tickets), timeout=0)
                done = list({*done, *more})
        except ray.exceptions.RaySystemError as exc:
            raise lost_cluster(exc) from exc
        now = time.monotonic()
        if done:
            self._last_answer = now
        elif now - self._last_answer > self.STALL_CHECK_S:
            trouble = head_trouble()
            if trouble:
                raise lost_cluster(ConnectionError(trouble))
            self._last_answer = now
        return done

    def result(self, ticket: Any) -> Any:
        try:
            return ray.get(ticket)
        except ray.exceptions.RayActorError as exc:
            if head_trouble():
                raise lost_cluster(exc) from exc
            raise ShardLost(str(exc).splitlines()[0] if str(exc) else "actor died") from exc
        except (ray.exceptions.RaySystemError, ray.exceptions.ObjectLostError,
                ConnectionError) as exc:
            raise lost_cluster(exc) from exc

    def drop(self, shard: int) -> None:
        actor = self.actors[shard]
        ray.kill(actor, no_restart=True)
        forget_actor(actor)


def distributed_input_split(graph: NetworkGraph, problem: ShardProblem,
                            lower: np.ndarray, upper: np.ndarray, deadline: float,
                            probe: ProbeFn | None, settings: Any,
                            stop: StopFn | None = None,
                            progress: ClusterProgressFn | None = None
                            ) -> tuple[SearchOutcome, ClusterSearchStats]:
    """One case on the cluster's shards; ``settings``: the run's ``ClusterConfig``.  The
    graph is put in the object store once per process (``problem.graph_key``); each actor
    rebuilds it once."""
    actors = shard_actors(settings.shards or max(1, cluster_info().cpus))
    pieces = cut_box(lower, upper, len(actors), len(problem.groups))
    return _run(graph, problem, actors, pieces, deadline, probe, settings, stop, progress)


def distributed_activation_split(graph: NetworkGraph, strategy, problem: ShardProblem,
                                 deadline: float, probe: ProbeFn | None, settings: Any,
                                 stop: StopFn | None = None,
                                 progress: ClusterProgressFn | None = None
                                 ) -> tuple[SearchOutcome, ClusterSearchStats | None]:
    """One case of activation splitting on the cluster's shards: ``strategy`` (the local
    :class:`~hybridver.bab.activation_split.ActivationSplitting` of the case) bounds and
    refines the root and the first levels here (:func:`~hybridver.cluster.seeding.seed`),
    then the open domains go to the shards with the root's intervals.  The outcome's
    counters include the driver's start; no cluster counters when the start decided."""
    actors = shard_actors(settings.shards or max(1, cluster_info().cpus))
    early = seed(strategy, len(actors), deadline, probe, stop)
    if early is not None:
        return early, None
    problem = dataclasses.replace(problem, root_intervals=root_intervals(strategy),
                                  candidates=candidate_names(strategy))
    pieces = neuron_pieces(strategy, len(actors))
    outcome, cluster = _run(graph, problem, actors, pieces, deadline, probe, settings, stop,
                            progress)
    first = strategy.stats
    for key in ("domains_bounded", "batches", "probes", "infeasible", "proven_domains",
                "attacks"):
        setattr(outcome.stats, key, getattr(outcome.stats, key) + getattr(first, key))
    outcome.stats.method, outcome.stats.refine = first.method, first.refine
    return outcome, cluster


def _run(graph, problem, actors, pieces, deadline, probe, settings, stop, progress
         ) -> tuple[SearchOutcome, ClusterSearchStats]:
    ref = _graph_refs.get(problem.graph_key)
    if ref is None:
        while len(_graph_refs) >= _MAX_GRAPHS:
            _graph_refs.pop(next(iter(_graph_refs)))
        ref = _graph_refs[problem.graph_key] = ray.put(pack_graph(graph))
    collected: list[ClusterSearchStats] = []
    try:
        outcome = run_distributed(RayShardCalls(actors), problem, ref, pieces, deadline,
                                  probe, settings, stop, progress, collected.append)
    finally:
        for shard in (collected[0].lost if collected else ()):
            forget_actor(actors[shard])     # dead or dropped: a fresh one next time
    return outcome, collected[0]
