"""Exact mode: every case and disjunct of a spec goes to one exact back end.

``unsat`` only when every subproblem is INFEASIBLE (or refuted by sound interval bounds);
``sat`` only with a counterexample the real model confirmed; otherwise ``unknown`` or
``timeout``.  Node bounds come from interval bound propagation for now (flattened per node);
a tighter bound engine can replace :func:`subproblem_bounds` without other changes.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import numpy as np
import torch

from hybridver.backends.base import Limits, Status
from hybridver.backends.options import ExactConfig, configured_backend
from hybridver.backends.refine import solve_with_refinement
from hybridver.bounds.intervals import Interval, UnsupportedBoundError, spec_row_lower_bounds
from hybridver.encode.affine_form import interval_node_bounds
from hybridver.problem import Subproblem
from hybridver.result import (CandidateCounterexample, ConfirmedCounterexample,
                              VerificationResult, Verdict, confirm_counterexample,
                              record_backend_call)
from hybridver.specs import InputBox, Spec

__all__ = ["verify_exact", "subproblem_bounds", "exact_subproblems"]


def subproblem_bounds(graph, box: InputBox) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Sound flattened bounds of every node on ``box`` ({} when intervals cannot bound it)."""
    try:
        return interval_node_bounds(graph, box.lower, box.upper)
    except UnsupportedBoundError:
        return {}


def exact_subproblems(graph, spec: Spec, case_bounds=None):
    """``(case, disjunct, Subproblem)`` for every disjunct of every case (cases whose output
    condition is ``true`` have none).  ``case_bounds(case_index, case) -> node bounds``
    replaces the interval bounds when given."""
    for ci, case in enumerate(spec.cases):
        if not case.disjuncts:
            continue
        bounds = (case_bounds(ci, case) if case_bounds is not None
                  else subproblem_bounds(graph, case.region))
        for di, disjunct in enumerate(case.disjuncts):
            yield ci, di, Subproblem(graph, case.region, disjunct, bounds, case=ci, disjunct=di,
                                     label=f"{spec.name or 'spec'} case {ci} disjunct {di}")


def _tightened(graph, case, deadline: float, config: ExactConfig, info: dict):
    """Interval bounds, then LP-tightened when configured and highspy is available."""
    bounds = subproblem_bounds(graph, case.region)
    if not config.lp_tightening or importlib.util.find_spec("highspy") is None:
        return bounds
    from hybridver.backends.lp import lp_tightened_bounds
    from hybridver.encode.milp import NotEncodableError

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


def verify_exact(model, spec: Spec, config: ExactConfig = ExactConfig(),
                 timeout_s: float = 300.0) -> VerificationResult:
    """Decide ``spec`` on ``model`` (a :class:`hybridver.api.LoadedModel`) with the exact
    back end ``config.backend``.  Raises ``SolverUnavailableError`` for an unknown or
    unavailable back end."""
    start = time.monotonic()
    deadline = start + timeout_s
    spec.check_dimensions(model.n_inputs, model.n_outputs)
    backend = configured_backend(config)
    graph = model.graph
    info: dict[str, Any] = {"backend": backend.name, "subproblems": 0, "infeasible": 0,
                            "refuted_by_intervals": 0, "candidates": 0, "spurious": 0,
                            "refinement_rounds": 0, "solver_time_s": 0.0, "outcomes": []}
    stats: dict[str, Any] = {"exact": info, "backends": {}}  # backends: per-call counts
    best_candidate: CandidateCounterexample | None = None
    timed_out = False
    undecided: list[str] = []

    def confirm(candidate: CandidateCounterexample) -> ConfirmedCounterexample | None:
        return confirm_counterexample(candidate, spec, model.real_model,
                                      graph.input_node.shape, model.checked_by,
                                      model.input_dtype)

    def result(verdict: Verdict, cex: ConfirmedCounterexample | None = None,
               message: str = "") -> VerificationResult:
        elapsed = time.monotonic() - start
        return VerificationResult(verdict, elapsed, cex, best_candidate, {"exact": elapsed},
                                  stats, message)

    for ci, case in enumerate(spec.cases):
        if case.output_is_true:   # every point of the region is a counterexample
            cex = confirm(CandidateCounterexample(case.region.center,
                                                  np.full(model.n_outputs, np.nan), "region"))
            if cex is not None:
                return result(Verdict.SAT, cex)
            undecided.append(f"case {ci}: the region's centre did not evaluate")
    def case_bounds(ci, case):
        return _tightened(graph, case, deadline, config, info)

    for ci, di, problem in exact_subproblems(graph, spec, case_bounds):
        info["subproblems"] += 1
        if config.interval_precheck and _refuted_by_bounds(problem):
            info["refuted_by_intervals"] += 1
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            undecided.append(f"case {ci} disjunct {di}: not started")
            continue
        outcome, cex = solve_with_refinement(backend, problem, confirm,
                                             Limits(time_s=remaining, threads=config.threads),
                                             config)
        refinement = outcome.stats.get("refinement", {})
        info["candidates"] += refinement.get("candidates", 0)
        info["spurious"] += refinement.get("spurious", 0)
        info["refinement_rounds"] += refinement.get("rounds", 0)
        info["solver_time_s"] += outcome.time_s
        record_backend_call(stats, backend.name, outcome.status.value, outcome.time_s)
        info["outcomes"].append({"case": ci, "disjunct": di, "status": outcome.status.value,
                                 "solver_status": outcome.solver_status,
                                 "margin_lower_bound": outcome.margin_lower_bound,
                                 "time_s": outcome.time_s, "message": outcome.message})
        if cex is not None:
            return result(Verdict.SAT, cex)
        if outcome.status is Status.INFEASIBLE:
            info["infeasible"] += 1
            continue
        if outcome.candidate is not None and best_candidate is None:
            best_candidate = outcome.candidate
        timed_out |= outcome.status is Status.TIMEOUT
        undecided.append(f"case {ci} disjunct {di}: {outcome.status.value}"
                         + (f" ({outcome.message})" if outcome.message else ""))
    if not undecided:
        return result(Verdict.UNSAT)
    verdict = Verdict.TIMEOUT if timed_out else Verdict.UNKNOWN
    return result(verdict, message="; ".join(undecided[:3])
                  + (f"; ... {len(undecided) - 3} more" if len(undecided) > 3 else ""))
