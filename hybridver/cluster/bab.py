"""Distributed input splitting on a Ray cluster: the shards are Ray actors.

:func:`distributed_input_split` runs one case: it makes (or reuses) one shard actor per
cluster CPU (``ClusterConfig.shards``), ships the graph once per actor, and lets the
:class:`~hybridver.cluster.coordinator.Coordinator` drive them.  The actors live as long
as this driver process and are reused by the next case and the next instance (a torch
import costs seconds); a case's leftover calls finish within a slice, before the next
case's ``load``, which Ray runs after them (an actor runs its calls in order).

An actor whose process dies raises ``RayActorError`` on its calls: the coordinator drops
it and resends its ledger (:class:`ShardLost`), and the pool makes a fresh actor for the
next case.  Any other failure to reach the cluster is a
:class:`~hybridver.errors.ClusterError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import ray
import ray.exceptions

from hybridver.bab_core import ProbeFn, SearchOutcome, StopFn
from hybridver.cluster.connect import cluster_info, lost_head
from hybridver.cluster.coordinator import (ClusterProgressFn, ClusterSearchStats, ShardLost,
                                           run_distributed)
from hybridver.cluster.shard import Shard, ShardProblem
from hybridver.ir.graph import NetworkGraph
from hybridver.schedule.transport import pack_graph

_ShardActor = ray.remote(Shard)
_actors: list[Any] = []
_graph_refs: dict[str, Any] = {}
_MAX_GRAPHS = 8


def shard_actors(count: int) -> list[Any]:
    """``count`` live shard actors (one CPU each), made on demand and kept."""
    while len(_actors) < count:
        actor = _ShardActor.options(num_cpus=1, max_restarts=0, max_task_retries=0).remote()
        _actors.append(actor)
    return _actors[:count]


def forget_actor(actor: Any) -> None:
    """Drop a dead actor from the pool (a fresh one replaces it next time)."""
    if actor in _actors:
        _actors.remove(actor)


class RayShardCalls:
    """:class:`~hybridver.cluster.coordinator.ShardCalls` over Ray actors."""

    def __init__(self, actors: list[Any]):
        self.actors = dict(enumerate(actors))

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
            return done
        except ray.exceptions.RaySystemError as exc:
            raise lost_head(exc) from exc

    def result(self, ticket: Any) -> Any:
        try:
            return ray.get(ticket)
        except ray.exceptions.RayActorError as exc:
            raise ShardLost(str(exc).splitlines()[0] if str(exc) else "actor died") from exc
        except (ray.exceptions.RaySystemError, ray.exceptions.ObjectLostError,
                ConnectionError) as exc:
            raise lost_head(exc) from exc


def distributed_input_split(graph: NetworkGraph, problem: ShardProblem,
                            lower: np.ndarray, upper: np.ndarray, deadline: float,
                            probe: ProbeFn | None, settings: Any,
                            stop: StopFn | None = None,
                            progress: ClusterProgressFn | None = None
                            ) -> tuple[SearchOutcome, ClusterSearchStats]:
    """One case on the cluster's shards; ``settings``: the run's ``ClusterConfig``.  The
    graph is put in the object store once per process (``problem.graph_key``); each actor
    rebuilds it once."""
    count = settings.shards or max(1, cluster_info().cpus)
    actors = shard_actors(count)
    ref = _graph_refs.get(problem.graph_key)
    if ref is None:
        while len(_graph_refs) >= _MAX_GRAPHS:
            _graph_refs.pop(next(iter(_graph_refs)))
        ref = _graph_refs[problem.graph_key] = ray.put(pack_graph(graph))
    collected: list[ClusterSearchStats] = []
    try:
        outcome = run_distributed(RayShardCalls(actors), problem, ref, lower, upper, deadline,
                                  probe, settings, stop, progress, collected.append)
    finally:
        for shard in (collected[0].lost if collected else ()):
            forget_actor(actors[shard])
    return outcome, collected[0]
