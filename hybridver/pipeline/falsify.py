"""Falsification stages: uniform sampling and PGD on the cases' boxes, many cases per
batch (:mod:`hybridver.pipeline.batch_attack`, ``attack_case_batch`` cases at most).

They only propose candidates; a candidate counts once the real model confirms it
(:meth:`RunContext.confirm`).
"""

from __future__ import annotations

from hybridver.bab.attack import pgd_attack, sample_candidates
from hybridver.pipeline.batch_attack import pgd_batch, points_per_batch, sample_batch
from hybridver.pipeline.case_batches import case_batches
from hybridver.pipeline.context import RunContext
from hybridver.pipeline.stage import CaseResult, CaseStatus


def _first_confirmed(ctx: RunContext, cases: list[int], size: int, propose,
                     propose_one) -> dict[int, CaseResult]:
    """``propose(batch)`` (a list of candidates per case of the batch) on the cases in
    batches of ``size``, ``propose_one(case)`` on each case with output condition
    ``true`` (no rows to stack); the first candidate the real model confirms decides its
    case (COUNTEREXAMPLE); stops at the deadline."""
    spec_cases = ctx.spec.cases
    for index in cases:
        if not spec_cases[index].disjuncts:
            for candidate in propose_one(spec_cases[index]):
                cex = ctx.confirm(candidate)
                if cex is not None:
                    return {index: CaseResult(CaseStatus.COUNTEREXAMPLE, cex)}
    with_rows = [i for i in cases if spec_cases[i].disjuncts]
    for batch in case_batches(spec_cases, with_rows, size):
        for index, candidates in zip(batch.indices, propose(batch)):
            for candidate in candidates:
                cex = ctx.confirm(candidate)
                if cex is not None:
                    return {index: CaseResult(CaseStatus.COUNTEREXAMPLE, cex)}
        if ctx.timed_out():
            break
    return {}


#: the fewest points sampled in a case when many cases share ``sampling_budget``
MIN_SAMPLES = 16


class SamplingStage:
    """``attack.samples`` uniform points of every case's box, or fewer when the cases
    together would exceed ``sampling_budget`` (at least :data:`MIN_SAMPLES` each)."""

    name = "attack_sampling"
    falsifies = True

    def run(self, ctx: RunContext, cases: list[int]) -> dict[int, CaseResult]:
        attack = ctx.config.attack
        with ctx.phase(self.name):
            if attack.samples <= 0:
                return {}
            graph, device = ctx.model.graph, ctx.config.device
            # many cases share the budget: nn4sys has thousands, 256 points each would
            # cost more than the bounds that decide them
            n = min(attack.samples, max(MIN_SAMPLES, ctx.config.sampling_budget
                                        // max(1, len(cases))))
            return _first_confirmed(
                ctx, cases, ctx.config.attack_case_batch,
                lambda batch: sample_batch(graph, batch, n, attack.seed, device),
                lambda case: sample_candidates(graph, case, attack.samples, attack.seed,
                                               device))


class PgdStage:
    """Projected gradient descent on the violation margin (``AttackConfig``)."""

    name = "attack_pgd"
    falsifies = True

    def run(self, ctx: RunContext, cases: list[int]) -> dict[int, CaseResult]:
        attack = ctx.config.attack
        graph = ctx.model.graph
        with ctx.phase(self.name):
            if attack.rounds <= 0:
                return {}
            restarts = attack.low_dim_restarts if graph.input_node.size <= attack.low_dim \
                else attack.restarts
            size = min(ctx.config.attack_case_batch,
                       max(1, points_per_batch(graph, 4, True) // max(1, restarts)))
            device = ctx.config.device
            return _first_confirmed(
                ctx, cases, size,
                lambda batch: pgd_batch(graph, batch, attack, ctx.deadline, device),
                lambda case: pgd_attack(graph, case, attack, ctx.deadline, device))
