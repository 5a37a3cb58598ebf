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
                                               ctx.config.cluster, stop,
                                               _reporter(ctx, progress))
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
                                                    probe, ctx.config.cluster, stop,
                                                    _reporter(ctx, progress))
    if cluster is not None:
        cluster_stats.add_cluster(cluster.as_dict())
    return outcome
