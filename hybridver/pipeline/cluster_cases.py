"""One case's branch-and-bound on the shards of a Ray cluster (``--cluster``), for the
input-splitting and activation-splitting stages: the settings of the local search
packed into a :class:`~hybridver.cluster.shard.ShardProblem`, and the cluster's counters
added to the stage's statistics.

The cluster modules are imported inside these functions: a run without a cluster never
imports Ray.
"""

from __future__ import annotations

import dataclasses
import time

from hybridver.bab.input_split import InputSplitConfig
from hybridver.bab_core import SearchOutcome
from hybridver.bounds.options import BoundConfig
from hybridver.config import Event
from hybridver.pipeline.context import RunContext
from hybridver.pipeline.whole_box import StackedCase
from hybridver.schedule.transport import graph_key


def _problem(ctx: RunContext, stacked: StackedCase, config: BoundConfig,
             split: InputSplitConfig, **extra):
    from hybridver.cluster.connect import connect
    from hybridver.cluster.shard import ShardProblem

    connect(ctx.config.cluster.address, ctx.config.cluster.ship_code)
    return ShardProblem(graph_key(ctx.model.graph), stacked.C, stacked.d,
                        tuple((g.start, g.stop) for g in stacked.groups),
                        dataclasses.replace(config, deadline=None), split,
                        time.time() + ctx.remaining(), ctx.config.device, **extra)


def _settings(ctx: RunContext):
    """The run's cluster settings with the shard count fixed: as configured, or one per
    cluster CPU less the CPUs the races beside branch-and-bound take (the region race's
    and case race's workers, when the schedule has them): the same split of CPUs as a
    local run, where the search has one core and the races their workers."""
    from hybridver.cluster.connect import cluster_info

    settings = ctx.config.cluster
    if settings.shards:
        return settings
    schedule = ctx.config.schedule
    races = any(schedule.after(e) is not None
                for e in (Event.REGION_RACE, Event.CASE_RACE, Event.HANDOFF,
                          Event.DOMAIN_HANDOFF))
    reserved = schedule.region_race_workers if races else 0
    return dataclasses.replace(settings, shards=max(1, cluster_info().cpus - reserved))


def start_shards(ctx: RunContext) -> None:
    """When the run may branch on the cluster, connect and start the shard actors at
    once, so that their start-up overlaps sampling and the whole-box bounds."""
    settings = ctx.config.cluster
    if not (settings.address and settings.bab):
        return
    from hybridver.cluster.bab import warm_up
    from hybridver.cluster.connect import connect

    connect(settings.address, settings.ship_code)
    warm_up(_settings(ctx).shards)


def stop_shards(ctx: RunContext) -> None:
    """End the run's shard actors (a no-op when it started none, or with
    ``[cluster] keep_shards``)."""
    settings = ctx.config.cluster
    if not (settings.address and settings.bab) or settings.keep_shards:
        return
    from hybridver.cluster.bab import release
    release()


def _reporter(ctx: RunContext, progress):
    def report(stats, cluster) -> None:
        progress(stats)
        ctx.progress.update(shards=cluster.live, steals=cluster.steals)
    return report


def distributed_boxes(ctx: RunContext, case, stacked: StackedCase, config: BoundConfig,
                      split_config: InputSplitConfig, probe, stop, progress) -> SearchOutcome:
    """Input splitting of one case on the cluster (:mod:`hybridver.cluster.bab`); the
    counters go to ``ctx.stats.input_split.cluster``."""
    from hybridver.cluster.bab import distributed_input_split

    problem = _problem(ctx, stacked, config, split_config)
    outcome, cluster = distributed_input_split(ctx.model.graph, problem, case.region.lower,
                                               case.region.upper, ctx.deadline, probe,
                                               _settings(ctx), stop, _reporter(ctx, progress))
    ctx.stats.input_split.add_cluster(cluster.as_dict())
    return outcome


def distributed_neurons(ctx: RunContext, case, stacked: StackedCase, probe, stop, progress,
                        cluster_stats) -> SearchOutcome:
    """Activation splitting of one case on the cluster: the driver bounds and refines the
    root (:mod:`hybridver.cluster.seeding`), the shards the rest; the counters go to
    ``cluster_stats`` (an ``add_cluster`` owner)."""
    from hybridver.bab.activation_split import ActivationSplitting
    from hybridver.cluster.bab import distributed_activation_split

    graph, settings = ctx.model.graph, ctx.config.activation_split
    strategy = ActivationSplitting(graph, case.region.lower, case.region.upper, stacked.C,
                                   stacked.d, stacked.groups, ctx.deadline, settings,
                                   ctx.config.device)
    problem = _problem(ctx, stacked, BoundConfig(), InputSplitConfig(), activation=settings,
                       lower=case.region.lower, upper=case.region.upper)
    outcome, cluster = distributed_activation_split(graph, strategy, problem, ctx.deadline,
                                                    probe, _settings(ctx), stop,
                                                    _reporter(ctx, progress))
    if cluster is not None:
        cluster_stats.add_cluster(cluster.as_dict())
    return outcome
