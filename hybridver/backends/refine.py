"""Counterexample-guided solving of one subproblem with any back end.

``solve_with_refinement`` solves; a CANDIDATE (or an ambiguous point) is confirmed on the
real model through the given callable; a spurious candidate leads to

* with smooth envelopes (``MilpModel.exact`` False): new envelope split points around the
  candidate (``hybridver.encode.envelopes.refine_breakpoints``) and a re-solve;
* with an exact piecewise-linear encoding: one re-solve that minimizes the margin fully
  instead of stopping at the first point with ``t <= 0`` (the first point may sit at the
  solver's tolerance), then UNKNOWN with the candidate kept for the report;
* with a back end that cannot refine (z3): re-solves of the problem with every row
  tightened by ``eps`` (``C y + d + eps <= 0``, eps = 1e-9, 1e-6, 1e-3 times
  ``1 + max |d|``), so the point lies strictly inside the unsafe set and survives rounding
  to the model's input dtype; an INFEASIBLE answer of such a re-solve proves nothing about
  the original problem and is reported as UNKNOWN;

all within the time limit.  Refinement needs a back end that exposes
``encode(problem, breakpoints)`` and ``solve_model(model, limits, stop_at_candidate)``
(the MILP back ends); any other back end (z3) is solved once and its candidate confirmed.
INFEASIBLE is never produced here: it is passed through from the back end, whose encoding
is a sound over-approximation at every round.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from hybridver.backends.base import Backend, Limits, Outcome, Status
from hybridver.backends.options import ExactConfig
from hybridver.encode.affine_form import NotEncodableError
from hybridver.problem import Subproblem
from hybridver.result import CandidateCounterexample, ConfirmedCounterexample

Confirm = Callable[[CandidateCounterexample], "ConfirmedCounterexample | None"]


def _refinable(backend: Backend) -> bool:
    return callable(getattr(backend, "encode", None)) and \
        callable(getattr(backend, "solve_model", None))


def solve_with_refinement(backend: Backend, problem: Subproblem, confirm: Confirm,
                          limits: Limits, config: ExactConfig = ExactConfig()
                          ) -> tuple[Outcome, ConfirmedCounterexample | None]:
    """Decide ``problem`` with ``backend``; returns the last outcome and a confirmed
    counterexample or None.  ``outcome.stats["refinement"]`` counts rounds, spurious
    candidates and split points."""
    from hybridver.encode.envelopes import refine_breakpoints

    start = time.monotonic()
    deadline = start + limits.time_s
    info = {"rounds": 0, "candidates": 0, "spurious": 0, "splits": 0, "full_minimize": False}

    def finish(outcome: Outcome, cex: ConfirmedCounterexample | None = None, **changes
               ) -> tuple[Outcome, ConfirmedCounterexample | None]:
        stats = {**outcome.stats, "refinement": dict(info)}
        return dataclasses.replace(outcome, time_s=time.monotonic() - start, stats=stats,
                                   **changes), cex

    def check(outcome: Outcome) -> ConfirmedCounterexample | None:
        if outcome.candidate is None:
            return None
        info["candidates"] += 1
        cex = confirm(outcome.candidate)
        if cex is None:
            info["spurious"] += 1
        return cex

    if not _refinable(backend):
        outcome = backend.solve(problem, limits)
        cex = check(outcome)
        if cex is not None or outcome.status is not Status.CANDIDATE:
            return finish(outcome, cex)
        return _push_inside(backend, problem, limits, deadline, outcome, check, finish, info)

    try:
        model = backend.encode(problem, None)
    except NotEncodableError as exc:
        return finish(Outcome(Status.UNKNOWN, 0.0, solver_status="not encodable",
                              message=str(exc)))
    stop_first = True
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return finish(Outcome(Status.TIMEOUT, 0.0, message="time limit reached during "
                                  "refinement"))
        outcome = backend.solve_model(model, dataclasses.replace(limits, time_s=remaining),
                                      stop_at_candidate=stop_first)
        cex = check(outcome)
        if cex is not None:
            return finish(outcome, cex)
        if outcome.status is not Status.CANDIDATE:
            return finish(outcome)          # INFEASIBLE, UNKNOWN (ambiguous), TIMEOUT, ERROR
        # a spurious candidate
        if model.exact:
            if stop_first:
                stop_first = False
                info["full_minimize"] = True
                continue
            return finish(outcome, status=Status.UNKNOWN,
                          message="the solver's most violating point does not violate on the "
                                  "real model (margin within float/solver tolerance)")
        if info["rounds"] >= config.refinement_rounds:
            return finish(outcome, status=Status.UNKNOWN,
                          message=f"candidate still spurious after {info['rounds']} "
                                  "refinement rounds")
        values = outcome.stats.get("solution")
        new = None if values is None else refine_breakpoints(model, values,
                                                             config.splits_per_round)
        if new is None:
            return finish(outcome, status=Status.UNKNOWN,
                          message="spurious candidate and no envelope left to refine")
        info["rounds"] += 1
        info["splits"] = sum(len(p) for points in new.values() for p in points.values())
        try:
            model = backend.encode(problem, new)
        except NotEncodableError as exc:
            return finish(outcome, status=Status.UNKNOWN, message=str(exc))


_PUSH = (1e-9, 1e-6, 1e-3)


def _push_inside(backend, problem: Subproblem, limits: Limits, deadline: float,
                 outcome: Outcome, check, finish, info: dict):
    """Retry a spurious candidate of a non-refinable back end on tightened rows."""
    from hybridver.specs import OutputConstraints

    C, d = problem.constraints.C, problem.constraints.d
    scale = 1.0 + (float(abs(d).max()) if d.size else 0.0)
    for eps in _PUSH:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        info["pushed"] = eps * scale
        pushed = dataclasses.replace(problem, constraints=OutputConstraints(C, d + eps * scale))
        retry = backend.solve(pushed, dataclasses.replace(limits, time_s=remaining))
        cex = check(retry)
        if cex is not None:
            return finish(retry, cex)
        if retry.status is not Status.CANDIDATE:
            break
    return finish(outcome, status=Status.UNKNOWN,
                  message="candidate does not violate on the real model, also when "
                          "pushed inside the unsafe set")
