"""Activation splitting on the open cases of a network too large for input splitting,
raced by an exact back end on the whole case (the schedule's CASE_RACE), handing its hard
domains to exact back ends (DOMAIN_HANDOFF, :mod:`hybridver.bab.subdomain_handoff`)."""

from __future__ import annotations

import time

from hybridver.bab.activation_split import activation_split_bab
from hybridver.bab.subdomain_handoff import SubdomainHandOff
from hybridver.bab_core import SearchStatus
from hybridver.config import Event
from hybridver.pipeline.cluster_cases import distributed_neurons
from hybridver.pipeline.context import RunContext
from hybridver.pipeline.hooks import make_probe, make_progress
from hybridver.pipeline.input_split import case_result
from hybridver.pipeline.races import start_case_race
from hybridver.pipeline.stage import CaseResult, CaseStatus
from hybridver.pipeline.stats import ActivationSplitStats
from hybridver.pipeline.whole_box import StackedCase
from hybridver.result import ConfirmedCounterexample


class ActivationSplitStage:
    """alpha-beta-CROWN branch-and-bound (ReLU) or splits of general nonlinearities at
    pre-optimized points, per open case, with a counterexample search inside the
    domains.  Stops at the first case it cannot decide."""

    name = "activation_split"
    falsifies = False

    def run(self, ctx: RunContext, cases: list[int]) -> dict[int, CaseResult]:
        cases = [index for index in cases if not ctx.input_split_applies(index)]
        if not cases:
            return {}
        if ctx.stats.activation_split is None:
            ctx.stats.activation_split = ActivationSplitStats()
        stats = ctx.stats.activation_split
        results: dict[int, CaseResult] = {}
        with ctx.phase(self.name):
            for done, index in enumerate(cases):
                case = ctx.spec.cases[index]
                stacked = StackedCase.of(case)
                stats.cases += 1
                found: list[ConfirmedCounterexample] = []
                race = None
                if ctx.config.schedule.after(Event.CASE_RACE) is not None:
                    try:
                        race = start_case_race(ctx, case, stacked, found)
                    except Exception as exc:  # noqa: BLE001 - the race is optional
                        stats.race_error = f"{type(exc).__name__}: {exc}"
                hand_off = None
                handoff_after = ctx.config.schedule.after(Event.DOMAIN_HANDOFF)
                distributed = bool(ctx.config.cluster.address and ctx.config.cluster.bab)
                if handoff_after is not None and not distributed:
                    hand_off = SubdomainHandOff(ctx.scheduler, ctx.model.graph, case.disjuncts,
                                                ctx.solver_confirm(found, "handoff"),
                                                ctx.deadline, ctx.config.domain_handoff,
                                                label=f"case {index}",
                                                start_at=time.monotonic() + handoff_after)
                stop = None if race is None else \
                    lambda race=race: race.poll() in ("proven", "counterexample")
                if distributed:
                    outcome = distributed_neurons(ctx, case, stacked,
                                                  make_probe(ctx, case, found), stop,
                                                  make_progress(ctx, done, len(cases)), stats)
                else:
                    outcome = activation_split_bab(
                        ctx.model.graph, case.region.lower, case.region.upper, stacked.C,
                        stacked.d, stacked.groups, ctx.deadline,
                        probe=make_probe(ctx, case, found), config=ctx.config.activation_split,
                        device=ctx.config.device, progress=make_progress(ctx, done, len(cases)),
                        stop=stop, hand_off=hand_off)
                if hand_off is not None:
                    hand_off.close()
                    stats.handoff_error = hand_off.disabled or stats.handoff_error
                for key in ("domains_bounded", "infeasible", "attacks", "delegated",
                            "delegated_proven", "delegated_returned"):
                    setattr(stats, key, getattr(stats, key) + getattr(outcome.stats, key))
                stats.method = outcome.stats.method
                if outcome.stats.refine:
                    stats.refine.append(dict(outcome.stats.refine, case=index))
                status = outcome.status
                if race is not None:
                    if status is SearchStatus.EXHAUSTED:   # nothing to split: the race may end
                        while race.poll() is None and not ctx.timed_out():
                            time.sleep(0.05)
                    state = race.poll()
                    stats.races[state or "unfinished"] = stats.races.get(state or "unfinished",
                                                                         0) + 1
                    if state == "proven":
                        status = SearchStatus.PROVEN
                    elif state == "counterexample" and found:
                        status = SearchStatus.COUNTEREXAMPLE
                    race.cancel()
                results[index] = case_result(status, found)
                if results[index].status is not CaseStatus.PROVEN:
                    return results
        return results
