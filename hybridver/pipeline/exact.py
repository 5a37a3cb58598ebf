"""Exact mode as a one-stage pipeline: every case and disjunct goes to one exact back end.

A case is PROVEN only when each of its disjuncts is INFEASIBLE for the back end (or
refuted by sound interval bounds); a counterexample counts only once the real model
confirmed it.  Node bounds come from interval bound propagation, tightened by LPs
(``ExactConfig.lp_tightening``) with a share of the remaining time.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import torch

from hybridver.backends.base import Limits, Status
from hybridver.backends.lp import lp_tightened_bounds
from hybridver.backends.options import ExactConfig, configured_backend
from hybridver.backends.refine import solve_with_refinement
from hybridver.bounds.intervals import Interval, spec_row_lower_bounds
from hybridver.config import Mode, VerifyConfig
from hybridver.encode.milp import NotEncodableError
from hybridver.encode.subproblems import exact_subproblems, subproblem_bounds
from hybridver.pipeline.context import RunContext
from hybridver.pipeline.stage import CaseResult, CaseStatus, run_stages
from hybridver.problem import Subproblem
from hybridver.result import CandidateCounterexample, VerificationResult
from hybridver.specs import Spec

__all__ = ["ExactStage", "verify_exact"]


def _tightened(graph, case, deadline: float, config: ExactConfig, info: dict):
    """Interval bounds, then LP-tightened when configured and highspy is available."""
    bounds = subproblem_bounds(graph, case.region)
    if not config.lp_tightening or importlib.util.find_spec("highspy") is None:
        return bounds
    if not case.disjuncts:
        return bounds
    budget = max(0.0, (deadline - time.monotonic()) * config.lp_tightening_share)
    problem = Subproblem(graph, case.region, case.disjuncts[0], bounds)
    try:
        bounds, stats = lp_tightened_bounds(problem, budget, config.envelope_pieces)
    except NotEncodableError:
        return bounds
    tight = info.setdefault("lp_tightening", {"lps": 0, "tightened": 0, "stabilized": 0,
                                              "time_s": 0.0, "complete": True})
    for key in ("lps", "tightened", "stabilized", "time_s"):
        tight[key] += stats[key]
    tight["complete"] &= stats["complete"]
    return bounds


def _refuted_by_bounds(problem: Subproblem) -> bool:
    out = problem.graph.output_node.name
    if out not in problem.node_bounds:
        return False
    lo, hi = problem.node_bounds[out]
    y = Interval(torch.as_tensor(np.asarray(lo, dtype=np.float64))[None],
                 torch.as_tensor(np.asarray(hi, dtype=np.float64))[None])
    rows = spec_row_lower_bounds(y, problem.constraints.C, problem.constraints.d)
    return bool((rows > 0).any())


class ExactStage:
    """Every disjunct of the given cases to the back end ``config.exact.backend``
    (raises ``SolverUnavailableError`` for an unknown or unavailable one)."""

    name = "exact"
    falsifies = False

    def run(self, ctx: RunContext, cases: list[int]) -> dict[int, CaseResult]:
        config = ctx.config.exact
        with ctx.phase(self.name, show=False):
            return self._run(ctx, cases, config)

    def _run(self, ctx: RunContext, cases: list[int], config: ExactConfig):
        backend = configured_backend(config)
        graph, spec = ctx.model.graph, ctx.spec
        info = {"backend": backend.name, "subproblems": 0, "infeasible": 0,
                "refuted_by_intervals": 0, "candidates": 0, "spurious": 0,
                "refinement_rounds": 0, "solver_time_s": 0.0, "outcomes": []}
        ctx.stats.exact = info
        results: dict[int, CaseResult] = {}
        for ci in cases:
            case = spec.cases[ci]
            if case.output_is_true:   # every point of the region is a counterexample
                cex = ctx.confirm(CandidateCounterexample(
                    case.region.center, np.full(ctx.model.n_outputs, np.nan), "region"))
                results[ci] = (CaseResult(CaseStatus.COUNTEREXAMPLE, cex) if cex is not None
                               else CaseResult(CaseStatus.UNKNOWN, message=f"case {ci}: the "
                                               "region's centre did not evaluate"))
                if cex is not None:
                    return results
        undecided: dict[int, list[tuple[bool, str]]] = {}
        wanted = set(cases)
        for ci, di, problem in exact_subproblems(
                graph, spec,
                lambda ci, case: _tightened(graph, case, ctx.deadline, config, info)
                if ci in wanted else {}):
            if ci not in wanted:
                continue
            info["subproblems"] += 1
            if config.interval_precheck and _refuted_by_bounds(problem):
                info["refuted_by_intervals"] += 1
                continue
            remaining = ctx.deadline - time.monotonic()
            if remaining <= 0:
                undecided.setdefault(ci, []).append(
                    (True, f"case {ci} disjunct {di}: not started"))
                continue
            outcome, cex = solve_with_refinement(
                backend, problem, ctx.confirm, Limits(time_s=remaining, threads=config.threads),
                config)
            refinement = outcome.stats.get("refinement", {})
            info["candidates"] += refinement.get("candidates", 0)
            info["spurious"] += refinement.get("spurious", 0)
            info["refinement_rounds"] += refinement.get("rounds", 0)
            info["solver_time_s"] += outcome.time_s
            ctx.stats.add_backend_rows({backend.name: {
                "calls": 1, "time_s": float(outcome.time_s),
                "outcomes": {outcome.status.value: 1}}})
            info["outcomes"].append({"case": ci, "disjunct": di, "status": outcome.status.value,
                                     "solver_status": outcome.solver_status,
                                     "margin_lower_bound": outcome.margin_lower_bound,
                                     "time_s": outcome.time_s, "message": outcome.message})
            if cex is not None:
                results[ci] = CaseResult(CaseStatus.COUNTEREXAMPLE, cex)
                return results
            if outcome.status is Status.INFEASIBLE:
                info["infeasible"] += 1
                continue
            if outcome.candidate is not None and ctx.unconfirmed is None:
                ctx.unconfirmed = outcome.candidate
            undecided.setdefault(ci, []).append(
                (outcome.status is Status.TIMEOUT, f"case {ci} disjunct {di}: "
                 f"{outcome.status.value}" + (f" ({outcome.message})" if outcome.message
                                              else "")))
        for ci in cases:
            if ci in results:
                continue
            if ci not in undecided:
                results[ci] = CaseResult(CaseStatus.PROVEN)
                continue
            notes = undecided[ci]
            message = "; ".join(m for _, m in notes[:3]) + (
                f"; ... {len(notes) - 3} more" if len(notes) > 3 else "")
            status = CaseStatus.TIMEOUT if any(t for t, _ in notes) else CaseStatus.UNKNOWN
            results[ci] = CaseResult(status, message=message)
        return results


def verify_exact(model, spec: Spec, config: ExactConfig = ExactConfig(),
                 timeout_s: float = 300.0) -> VerificationResult:
    """Decide ``spec`` on ``model`` (a :class:`hybridver.api.LoadedModel`) with the exact
    back end ``config.backend``: the one-stage pipeline of exact mode."""
    spec.check_dimensions(model.n_inputs, model.n_outputs)
    ctx = RunContext(model, spec, VerifyConfig(timeout_s=timeout_s, mode=Mode.EXACT,
                                               exact=config))
    return run_stages(ctx, [ExactStage()])
