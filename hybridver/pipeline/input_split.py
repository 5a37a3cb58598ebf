"""Input splitting on the open cases of a low-dimensional network, with the escalations
of the schedule: hand-off of hard domains, face sampling, region splitting racing it."""

from __future__ import annotations

import time

import torch

from hybridver.bab.handoff import SchedulerDelegate
from hybridver.bab.box_bound import box_bound_fn
from hybridver.bab.input_split import input_split_bab
from hybridver.bab_core import SearchStatus
from hybridver.bounds.options import BoundConfig, BoundMethod
from hybridver.bounds.plan import get_plan
from hybridver.config import Event
from hybridver.ir.relu_chain import ReluChain
from hybridver.pipeline.cluster_cases import distributed_boxes
from hybridver.pipeline.context import RunContext
from hybridver.pipeline.hooks import make_probe, make_progress
from hybridver.pipeline.races import FaceAttack, RegionRace
from hybridver.pipeline.stage import CaseResult, CaseStatus
from hybridver.pipeline.whole_box import StackedCase
from hybridver.relaxations.base import piecewise_linear_ops
from hybridver.result import ConfirmedCounterexample

_RELU_LIKE = piecewise_linear_ops()


def case_result(status: SearchStatus, found: list[ConfirmedCounterexample]) -> CaseResult:
    """A case's result from its search's final status: a counterexample only with one
    confirmed in ``found``; PROVEN only from PROVEN; otherwise why it is undecided."""
    if status is SearchStatus.COUNTEREXAMPLE and found:
        return CaseResult(CaseStatus.COUNTEREXAMPLE, found[0])
    if status is SearchStatus.PROVEN:
        return CaseResult(CaseStatus.PROVEN)
    if status is SearchStatus.TIMEOUT:
        return CaseResult(CaseStatus.TIMEOUT, message="time limit reached in branch-and-bound")
    return CaseResult(CaseStatus.UNKNOWN, message=f"branch-and-bound stopped: {status.value}")


class InputSplitStage:
    """Branch-and-bound on the input box of each open case with at most
    ``input_split_max_dim`` inputs to split (:meth:`RunContext.input_split_applies`;
    the others are left to activation splitting).  Stops at the first case it cannot
    decide."""

    name = "input_split"
    falsifies = False

    def run(self, ctx: RunContext, cases: list[int]) -> dict[int, CaseResult]:
        graph = ctx.model.graph
        cases = [index for index in cases if ctx.input_split_applies(index)]
        if not cases:
            return {}
        quadratic = ctx.config.input_split.quadratic_forms
        config = BoundConfig(method=BoundMethod.CROWN, deadline=ctx.deadline,
                             quadratic_forms=quadratic)
        plan = get_plan(graph, config.torch_dtype, torch.device(ctx.config.device),
                        quadratic_forms=quadratic)
        # names of the plan's (decomposed) graph: max-pool and softmax become several nodes
        relu_inputs = plan.unary_inputs(_RELU_LIKE)
        smooth = any(kind.nonlinear and plan.graph.node(name).op not in _RELU_LIKE
                     for name, kind in plan.kind.items())
        split_config = ctx.config.input_split.for_network(smooth)
        schedule = ctx.config.schedule
        chain_ok = schedule.after(Event.REGION_RACE) is not None and \
            ReluChain.of(graph) is not None
        results: dict[int, CaseResult] = {}
        stats = ctx.stats.input_split
        distributed = bool(ctx.config.cluster.address and ctx.config.cluster.bab)
        with ctx.phase(self.name):
            for done, index in enumerate(cases):
                case = ctx.spec.cases[index]
                stacked = StackedCase.of(case)
                found: list[ConfirmedCounterexample] = []

                bound_fn = box_bound_fn(graph, stacked.C, stacked.d, config, ctx.config.device)
                stats.cases += 1
                delegate = None
                handoff_after = schedule.after(Event.HANDOFF)
                if handoff_after is not None and not distributed:
                    delegate = SchedulerDelegate(ctx.scheduler, graph, case.disjuncts,
                                                 relu_inputs,
                                                 ctx.solver_confirm(found, "handoff"),
                                                 label=f"case {index}",
                                                 start_at=time.monotonic() + handoff_after)
                race = RegionRace(ctx, case, found) if chain_ok else None
                faces = FaceAttack(ctx, case, found)

                def stop(race=race, faces=faces) -> bool:
                    return faces.decided() or (race is not None and (race.decided()
                                                                      or race.takes_over()))

                if distributed:
                    outcome = distributed_boxes(ctx, case, stacked, config, split_config,
                                                make_probe(ctx, case, found), stop,
                                                make_progress(ctx, done, len(cases)))
                else:
                    outcome = input_split_bab(bound_fn, case.region.lower, case.region.upper,
                                              stacked.groups, ctx.deadline,
                                              make_probe(ctx, case, found), split_config,
                                              ctx.config.device, delegate=delegate,
                                              progress=make_progress(ctx, done, len(cases)),
                                              stop=stop)
                if delegate is not None and delegate.disabled:
                    stats.handoff_error = delegate.disabled
                for key in ("delegated", "delegated_proven", "delegated_returned",
                            "domains_bounded", "probes"):
                    setattr(stats, key, getattr(stats, key) + getattr(outcome.stats, key))
                status = outcome.status
                if faces.found_one:
                    status = SearchStatus.COUNTEREXAMPLE
                if race is not None:
                    status, disagreement = race.finish(status, stats.region_races)
                    stats.region_race_disagreement |= disagreement
                results[index] = case_result(status, found)
                if results[index].status is not CaseStatus.PROVEN:
                    return results
        return results
