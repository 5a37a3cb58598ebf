"""Whole-box bounds: IBP, CROWN, alpha-CROWN on each open case's box.

A case is PROVEN when, for some method, every disjunct has a row whose sound lower bound
over the box is positive (no point of the box satisfies the disjunct).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hybridver.bab.input_split import disjunct_margins
from hybridver.bounds.engine import compute_bounds
from hybridver.bounds.options import BoundConfig, BoundMethod
from hybridver.pipeline.context import RunContext
from hybridver.pipeline.stage import CaseResult, CaseStatus

TRUE_OUTPUT = ("a case with output condition 'true' has no counterexample found yet")


@dataclasses.dataclass(frozen=True)
class StackedCase:
    """A case's disjuncts stacked: ``C (m, n_out)``, ``d (m,)``, rows of disjunct k in
    ``groups[k]``."""

    C: np.ndarray
    d: np.ndarray
    groups: tuple[slice, ...]

    @classmethod
    def of(cls, case) -> "StackedCase":
        groups, offset = [], 0
        for disjunct in case.disjuncts:
            groups.append(slice(offset, offset + disjunct.C.shape[0]))
            offset += disjunct.C.shape[0]
        return cls(np.concatenate([dj.C for dj in case.disjuncts]),
                   np.concatenate([dj.d for dj in case.disjuncts]), tuple(groups))


class WholeBoxStage:
    """``whole_box.methods`` in order on each open case until one proves it."""

    name = "bounds"
    falsifies = False

    def run(self, ctx: RunContext, cases: list[int]) -> dict[int, CaseResult]:
        stats = ctx.stats.bounds
        settings = ctx.config.whole_box
        # joint alpha-CROWN (optimized intermediate bounds) only where activation splitting
        # follows: on low-dimensional inputs it cost ACAS Xu about 1.5 s per undecided
        # case and proved none that input splitting does not prove in less
        # (docs/benchmarks.md, issue 12)
        joint = (settings.alpha.optimize_intermediate
                 and ctx.model.graph.input_node.size > ctx.config.input_split_max_dim)
        alpha = dataclasses.replace(settings.alpha, deadline=ctx.deadline,
                                    optimize_intermediate=joint)
        results: dict[int, CaseResult] = {}
        with ctx.phase(self.name):
            for index in cases:
                case = ctx.spec.cases[index]
                if not case.disjuncts:
                    results[index] = CaseResult(CaseStatus.UNKNOWN, message=TRUE_OUTPUT)
                    continue
                stacked = StackedCase.of(case)
                stats.disjuncts += len(stacked.groups)
                for method in settings.methods:
                    if ctx.timed_out():
                        return results
                    bounds = compute_bounds(ctx.model.graph, case.region.lower[None],
                                            case.region.upper[None], stacked.C, stacked.d,
                                            config=BoundConfig(method=BoundMethod(method),
                                                               alpha=alpha,
                                                               deadline=ctx.deadline,
                                                               direct_linear_rules=settings
                                                               .direct_linear_rules,
                                                               broadcast_products=settings
                                                               .broadcast_products,
                                                               quadratic_forms=settings
                                                               .quadratic_forms),
                                            bound_upper=False, device=ctx.config.device)
                    stats.count_method(method)
                    if bool(disjunct_margins(bounds.lower, stacked.groups)[0] > 0):
                        stats.cases_proven += 1
                        stats.refuted += len(stacked.groups)
                        results[index] = CaseResult(CaseStatus.PROVEN)
                        break
        return results
