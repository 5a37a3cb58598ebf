"""Jobs: one subproblem, one back end, one time limit; and what running one returns.

:func:`run_job` is what every executor runs, in the caller's process or in a worker: it
looks the back end up by name (so a job never carries a solver object), configures it,
calls ``solve`` with the job's :class:`~hybridver.backends.base.Limits` and turns any
exception into an ERROR outcome.  Outcomes are passed through unchanged: the back end
checked its solver's status, and nothing here turns an answer into INFEASIBLE.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from typing import Any

from hybridver.backends.base import Limits, Outcome, Status
from hybridver.problem import Subproblem


@dataclasses.dataclass(frozen=True, eq=False)
class Job:
    """``backend``: a registered back-end name; ``options``: passed to the back end's
    ``configure`` when it has one (e.g. :class:`~hybridver.backends.options.MilpOptions`),
    ignored otherwise; ``label``: for logs (default the subproblem's label)."""

    subproblem: Subproblem
    backend: str
    limits: Limits = Limits()
    options: Any = None
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.subproblem.label


@dataclasses.dataclass(frozen=True)
class JobHandle:
    """What ``Executor.submit`` returns; ``job_id`` is unique within its executor."""

    job_id: int
    backend: str
    label: str = ""


@dataclasses.dataclass(frozen=True)
class JobResult:
    """A finished job.  ``wall_s``: from submission to the result (queueing included);
    ``cancelled``: ended by ``cancel`` or by the executor's hard deadline (the outcome is
    then TIMEOUT or UNKNOWN, never an answer)."""

    handle: JobHandle
    outcome: Outcome
    wall_s: float
    cancelled: bool = False


def cancelled_outcome(message: str, elapsed: float, timeout: bool = False) -> Outcome:
    return Outcome(Status.TIMEOUT if timeout else Status.UNKNOWN, elapsed,
                   solver_status="cancelled", message=message)


def cancelled_before_start(handle: JobHandle, submitted: float) -> JobResult:
    """The result of a job cancelled while it still waited for a worker."""
    return JobResult(handle, cancelled_outcome("cancelled before it ran", 0.0),
                     time.monotonic() - submitted, cancelled=True)


def run_job(problem: Subproblem, backend_name: str, limits: Limits, options: Any = None
            ) -> Outcome:
    """Solve ``problem`` with the named back end; never raises."""
    start = time.monotonic()
    try:
        from hybridver.backends.base import get_backend

        backend = get_backend(backend_name)
        configure = getattr(backend, "configure", None)
        if options is not None and callable(configure):
            backend = configure(options)
        return backend.solve(problem, limits)
    except Exception as exc:  # noqa: BLE001 - a job failure is an ERROR outcome, not a crash
        return Outcome(Status.ERROR, time.monotonic() - start, solver_status="exception",
                       message=f"{type(exc).__name__}: {exc}",
                       stats={"traceback": traceback.format_exc(limit=8)})
