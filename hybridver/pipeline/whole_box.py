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
from hybridver.pipeline.box_split import bisect_prove
from hybridver.pipeline.case_batches import StackedCase, case_batches
from hybridver.pipeline.context import RunContext
from hybridver.pipeline.stage import CaseResult, CaseStatus

__all__ = ["StackedCase", "WholeBoxStage", "TRUE_OUTPUT"]

TRUE_OUTPUT = ("a case with output condition 'true' has no counterexample found yet")
#: a method name of ``whole_box.methods``: CROWN on the output rows over IBP intervals of
#: every intermediate node (no intermediate back-substitution: about 1/100 of CROWN's time
#: on nn4sys's mscn, and a third of the cases CROWN proves there)
CROWN_IBP = "crown-ibp"
#: a method name of ``whole_box.methods``: the boxes of many open cases with few varying
#: inputs bisected ``whole_box.split_rounds`` times, the pieces bounded by CROWN-IBP
CROWN_IBP_SPLIT = "crown-ibp-split"


class WholeBoxStage:
    """``whole_box.methods`` in order, each on every case still open, in batches of
    ``whole_box.case_batch`` cases (``ibp_case_batch`` for IBP and CROWN-IBP)."""

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
                if method == CROWN_IBP_SPLIT:
                    self._bisect(ctx, open_cases, results)
                    open_cases = [i for i in open_cases if i not in results]
                    continue
                # no intermediate back-substitution: nothing grows with the batch
                size = settings.ibp_case_batch if method in (BoundMethod.IBP.value, CROWN_IBP) \
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

    @staticmethod
    def _bisect(ctx: RunContext, open_cases: list[int], results: dict[int, CaseResult]
                ) -> None:
        """``crown-ibp-split`` (:mod:`hybridver.pipeline.box_split`) on the open cases
        that input splitting would take (few inputs vary), when at least
        ``whole_box.split_min_cases`` of them are open."""
        settings = ctx.config.whole_box
        eligible = [i for i in open_cases if ctx.input_split_applies(i)]
        if len(eligible) < settings.split_min_cases:
            return
        config = _bound_config(ctx, CROWN_IBP, None)
        methods = settings.methods
        bounded = CROWN_IBP in methods[:methods.index(CROWN_IBP_SPLIT)]
        for batch in case_batches(ctx.spec.cases, eligible, settings.ibp_case_batch):
            if ctx.timed_out():
                return
            try:
                proven = bisect_prove(ctx.model.graph, batch, config, settings.split_rounds,
                                      settings.split_max_domains, settings.ibp_case_batch,
                                      ctx.timed_out, ctx.config.device, bounded)
            except DeadlineExceeded:
                return
            ctx.stats.bounds.count_method(CROWN_IBP_SPLIT)
            for index in proven:
                ctx.stats.bounds.cases_proven += 1
                ctx.stats.bounds.refuted += len(batch.groups)
                results[index] = CaseResult(CaseStatus.PROVEN)


def _bound_config(ctx: RunContext, method: str, batch) -> BoundConfig:
    """The bound settings of ``method`` on ``batch``.  Joint alpha-CROWN (optimized
    intermediate bounds) only where activation splitting follows: on low-dimensional
    inputs it cost ACAS Xu about 1.5 s per undecided case and proved none that input
    splitting does not prove in less (docs/benchmarks.md, issue 12)."""
    settings = ctx.config.whole_box
    joint = settings.alpha.optimize_intermediate and batch is not None and not all(
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
                       broadcast_products=settings.broadcast_products,
                       quadratic_forms=settings.quadratic_forms)
