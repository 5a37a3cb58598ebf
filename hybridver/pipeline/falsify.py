"""Falsification stages: uniform sampling and PGD on each case's box.

They only propose candidates; a candidate counts once the real model confirms it
(:meth:`RunContext.confirm`).
"""

from __future__ import annotations

from hybridver.bab.attack import pgd_attack, sample_candidates
from hybridver.pipeline.context import RunContext
from hybridver.pipeline.stage import CaseResult, CaseStatus


def _first_confirmed(ctx: RunContext, cases: list[int], propose) -> dict[int, CaseResult]:
    """``propose(case)`` on each case in turn; the first candidate the real model confirms
    decides its case (COUNTEREXAMPLE); stops at the deadline."""
    for index in cases:
        for candidate in propose(ctx.spec.cases[index]):
            cex = ctx.confirm(candidate)
            if cex is not None:
                return {index: CaseResult(CaseStatus.COUNTEREXAMPLE, cex)}
        if ctx.timed_out():
            break
    return {}


class SamplingStage:
    """``attack.samples`` uniform points of every case's box."""

    name = "attack_sampling"
    falsifies = True

    def run(self, ctx: RunContext, cases: list[int]) -> dict[int, CaseResult]:
        attack = ctx.config.attack
        with ctx.phase(self.name):
            return _first_confirmed(ctx, cases, lambda case: sample_candidates(
                ctx.model.graph, case, attack.samples, attack.seed, ctx.config.device))


class PgdStage:
    """Projected gradient descent on the violation margin (``AttackConfig``)."""

    name = "attack_pgd"
    falsifies = True

    def run(self, ctx: RunContext, cases: list[int]) -> dict[int, CaseResult]:
        attack = ctx.config.attack
        with ctx.phase(self.name):
            if attack.rounds <= 0:
                return {}
            return _first_confirmed(ctx, cases, lambda case: pgd_attack(
                ctx.model.graph, case, attack, ctx.deadline, ctx.config.device))
