"""Falsification stages: uniform sampling and PGD on each case's box.

They only propose candidates; a candidate counts once the real model confirms it
(:meth:`RunContext.confirm`).
"""

from __future__ import annotations

from hybridver.bab.attack import pgd_attack, sample_candidates
from hybridver.pipeline.context import RunContext
from hybridver.pipeline.stage import CaseResult, CaseStatus


class SamplingStage:
    """``attack.samples`` uniform points of every case's box."""

    name = "attack_sampling"
    falsifies = True

    def run(self, ctx: RunContext, cases: list[int]) -> dict[int, CaseResult]:
        attack = ctx.config.attack
        with ctx.phase(self.name):
            for index in cases:
                for candidate in sample_candidates(ctx.model.graph, ctx.spec.cases[index],
                                                   attack.samples, attack.seed,
                                                   ctx.config.device):
                    cex = ctx.confirm(candidate)
                    if cex is not None:
                        return {index: CaseResult(CaseStatus.COUNTEREXAMPLE, cex)}
                if ctx.timed_out():
                    break
        return {}


class PgdStage:
    """Projected gradient descent on the violation margin (``AttackConfig``)."""

    name = "attack_pgd"
    falsifies = True

    def run(self, ctx: RunContext, cases: list[int]) -> dict[int, CaseResult]:
        attack = ctx.config.attack
        with ctx.phase(self.name):
            if attack.rounds <= 0:
                return {}
            for index in cases:
                for candidate in pgd_attack(ctx.model.graph, ctx.spec.cases[index], attack,
                                            ctx.deadline, ctx.config.device):
                    cex = ctx.confirm(candidate)
                    if cex is not None:
                        return {index: CaseResult(CaseStatus.COUNTEREXAMPLE, cex)}
                if ctx.timed_out():
                    break
        return {}
