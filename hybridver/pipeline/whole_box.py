"""Whole-box bounds: IBP, CROWN, alpha-CROWN on the open cases' boxes, many cases per
batch (:mod:`hybridver.pipeline.case_batches`).

A case is PROVEN when, for some method, every disjunct of THAT case has a row whose sound
lower bound over the case's box is positive (no point of the box satisfies the disjunct).
Each method runs on every case still open before the next method starts, so cheap methods
remove what they can before the expensive ones run.
"""

from __future__ import annotations

import dataclasses

from hybridver.bab.input_split import disjunct_margins
from hybridver.bounds.engine import compute_bounds
from hybridver.bounds.options import BoundConfig, BoundMethod, IntermediateMethod
from hybridver.errors import DeadlineExceeded
from hybridver.pipeline.case_batches import StackedCase, case_batches
from hybridver.pipeline.context import RunContext
from hybridver.pipeline.stage import CaseResult, CaseStatus

__all__ = ["StackedCase", "WholeBoxStage", "TRUE_OUTPUT"]

TRUE_OUTPUT = ("a case with output condition 'true' has no counterexample found yet")
#: a method name of ``whole_box.methods``: CROWN on the output rows over IBP intervals of
#: every intermediate node (no intermediate back-substitution: about 1/100 of CROWN's time
#: on nn4sys's mscn, and a third of the cases CROWN proves there)
CROWN_IBP = "crown-ibp"


class WholeBoxStage:
    """``whole_box.methods`` in order, each on every case still open, in batches of
    ``whole_box.case_batch`` cases (``ibp_case_batch`` for IBP)."""

    name = "bounds"
    falsifies = False

    def run(self, ctx: RunContext, cases: list[int]) -> dict[int, CaseResult]:
        stats = ctx.stats.bounds
        settings = ctx.config.whole_box
        spec_cases = ctx.spec.cases
        results: dict[int, CaseResult] = {}
        open_cases = []
        for index in cases:
            if spec_cases[index].disjuncts:
                open_cases.append(index)
                stats.disjuncts += len(spec_cases[index].disjuncts)
            else:
                results[index] = CaseResult(CaseStatus.UNKNOWN, message=TRUE_OUTPUT)
        with ctx.phase(self.name):
            for method in settings.methods:
                size = settings.ibp_case_batch if method == BoundMethod.IBP.value \
                    else settings.case_batch
                for batch in case_batches(spec_cases, open_cases, size):
                    if ctx.timed_out():
                        return results
                    try:
                        bounds = compute_bounds(ctx.model.graph, batch.lower, batch.upper,
                                                batch.C, batch.d,
                                                config=_bound_config(ctx, method, batch),
                                                bound_upper=False, device=ctx.config.device)
                    except DeadlineExceeded:
                        return results
                    stats.count_method(method)
                    proven = (disjunct_margins(bounds.lower, batch.groups) > 0).tolist()
                    for index, ok in zip(batch.indices, proven):
                        if ok:
                            stats.cases_proven += 1
                            stats.refuted += len(batch.groups)
                            results[index] = CaseResult(CaseStatus.PROVEN)
                open_cases = [i for i in open_cases if i not in results]
                if not open_cases:
                    break
        return results


def _bound_config(ctx: RunContext, method: str, batch) -> BoundConfig:
    """The bound settings of ``method`` on ``batch``.  Joint alpha-CROWN (optimized
    intermediate bounds) only where activation splitting follows: on low-dimensional
    inputs it cost ACAS Xu about 1.5 s per undecided case and proved none that input
    splitting does not prove in less (docs/benchmarks.md, issue 12)."""
    settings = ctx.config.whole_box
    joint = settings.alpha.optimize_intermediate and not all(
        ctx.input_split_applies(spec_index) for spec_index in batch.indices)
    alpha = dataclasses.replace(settings.alpha, deadline=ctx.deadline,
                                optimize_intermediate=joint)
    if method == CROWN_IBP:
        method, intermediate = BoundMethod.CROWN.value, IntermediateMethod.IBP
    else:
        intermediate = IntermediateMethod.CROWN
    return BoundConfig(method=BoundMethod(method), intermediate=intermediate, alpha=alpha,
                       deadline=ctx.deadline,
                       direct_linear_rules=settings.direct_linear_rules,
                       broadcast_products=settings.broadcast_products)
