"""The stage interface and the driver that runs a schedule of stages.

A stage runs on the cases a run has not decided yet and returns a :class:`CaseResult` for
each case it decided something about; cases it leaves out stay as they were.  The driver
(:func:`run_stages`) applies the results in order:

- a COUNTEREXAMPLE (confirmed on the real model) ends the run: ``sat``;
- PROVEN removes the case (only sound bounds or exact back ends produce it);
- UNKNOWN and TIMEOUT mark the case as one this run cannot decide; from then on the run
  cannot answer ``unsat``, so only falsifying stages still run (on every case not
  proven: a counterexample would still decide the run);
- after each stage, a passed deadline ends the run: ``timeout`` unless every case is
  decided.

``unsat`` needs every case PROVEN; anything else left is ``unknown`` or ``timeout``.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Protocol

from hybridver.bounds.intervals import UnsupportedBoundError
from hybridver.errors import DeadlineExceeded
from hybridver.pipeline.context import RunContext
from hybridver.result import ConfirmedCounterexample, VerificationResult, Verdict


class CaseStatus(str, enum.Enum):
    OPEN = "open"
    PROVEN = "proven"
    COUNTEREXAMPLE = "counterexample"
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """What a stage decided about one case; ``counterexample`` with COUNTEREXAMPLE,
    ``message`` (why) with UNKNOWN and TIMEOUT."""

    status: CaseStatus
    counterexample: ConfirmedCounterexample | None = None
    message: str = ""


class Stage(Protocol):
    """``name``: the phase name in reports; ``falsifies``: the stage only searches for
    counterexamples, so it also runs on cases marked UNKNOWN.  ``run`` returns results
    keyed by case index, for the cases in ``cases`` it decided something about."""

    name: str
    falsifies: bool

    def run(self, ctx: RunContext, cases: list[int]) -> dict[int, CaseResult]: ...


def run_stages(ctx: RunContext, stages: list[Stage]) -> VerificationResult:
    """Run ``stages`` in order on the spec's cases (see the module docstring); the
    scheduler's workers are stopped before the result is made."""
    try:
        verdict, cex, message = _drive(ctx, stages)
    finally:
        ctx.close()
    return ctx.result(verdict, cex, message)


def _drive(ctx: RunContext, stages: list[Stage]
           ) -> tuple[Verdict, ConfirmedCounterexample | None, str]:
    open_cases = list(range(len(ctx.spec.cases)))
    undecided: dict[int, CaseResult] = {}
    for stage in stages:
        if stage.falsifies:
            targets = sorted(open_cases + list(undecided))
        else:
            targets = [] if undecided else open_cases
        if not targets:
            continue
        if ctx.timed_out():
            return Verdict.TIMEOUT, None, f"time limit reached before {stage.name}"
        try:
            results = stage.run(ctx, targets)
        except UnsupportedBoundError as exc:
            results = {i: CaseResult(CaseStatus.UNKNOWN, message=f"bounds unavailable: {exc}")
                       for i in open_cases}
        except DeadlineExceeded:
            results = {i: CaseResult(CaseStatus.TIMEOUT, message=f"time limit reached "
                                     f"during {stage.name}") for i in open_cases}
        for index, result in sorted(results.items()):
            if result.status is CaseStatus.COUNTEREXAMPLE:
                return Verdict.SAT, result.counterexample, ""
        for index, result in results.items():
            if result.status is CaseStatus.OPEN:
                continue
            if index in open_cases:
                open_cases.remove(index)
            if result.status is CaseStatus.PROVEN:
                undecided.pop(index, None)
            else:
                undecided.setdefault(index, result)
        if ctx.timed_out() and (open_cases or undecided):
            return Verdict.TIMEOUT, None, f"time limit reached during {stage.name}"
    return _final(open_cases, undecided)


def _final(open_cases: list[int], undecided: dict[int, CaseResult]
           ) -> tuple[Verdict, None, str]:
    """The verdict once every stage ran: ``unsat`` needs every case proven."""
    if undecided:
        first = undecided[min(undecided)]
        verdict = Verdict.TIMEOUT if any(r.status is CaseStatus.TIMEOUT
                                         for r in undecided.values()) else Verdict.UNKNOWN
        return verdict, None, first.message
    if open_cases:
        return Verdict.UNKNOWN, None, f"case {open_cases[0]}: no stage of the schedule " \
            "decided it"
    return Verdict.UNSAT, None, ""
