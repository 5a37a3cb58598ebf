"""Settings of exact mode and of the MILP back ends, and the one place where a MILP solver's
answer is read into an :class:`~hybridver.backends.base.Outcome`.

The decision rule (``docs/soundness.md``, "MILP tolerances"), for the model
``min t  s.t.  C o + d <= t`` of :mod:`hybridver.encode.milp`:

* a proven lower bound ``t* >= delta`` (status infeasible under the cutoff ``t < delta``,
  or a dual bound ``>= delta``, or an optimum ``>= delta``) is INFEASIBLE: no
  counterexample.  ``delta`` must exceed the solver's tolerances by a wide factor
  (enforced: ``delta >= 100 * max(tolerances)``), so the tolerances cannot hide a point
  with ``t <= 0``;
* a solution with ``t <= 0`` is a CANDIDATE, to be confirmed on the real model;
* ``0 < t* < delta`` is ambiguous: UNKNOWN, with the point attached as a candidate so the
  caller can still try to confirm it;
* any other solver status is UNKNOWN (or TIMEOUT when the time limit stopped it).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from hybridver import defaults
from hybridver.backends.base import Outcome, Status
from hybridver.encode.milp import MilpModel


@dataclasses.dataclass(frozen=True)
class MilpOptions:
    """Tolerances and stopping rules shared by the MILP back ends.

    ``delta``: the margin ``t*`` must reach for INFEASIBLE; ``feasibility_tol``: primal
    feasibility of rows and bounds (HiGHS ``primal_feasibility_tolerance`` and
    ``mip_feasibility_tolerance``, SCIP ``numerics/feastol``); ``optimality_tol``: dual
    feasibility (HiGHS ``dual_feasibility_tolerance``, SCIP ``numerics/dualfeastol``);
    ``integrality_tol``: how far from 0/1 a binary may be (HiGHS uses
    ``mip_feasibility_tolerance`` for both, so the smaller of the two is used there);
    ``stop_at_candidate``: stop as soon as a solution with ``t <= 0`` is found (objective
    target), instead of minimizing the margin fully; ``envelope_pieces``: see
    :func:`hybridver.encode.milp.encode_milp`.
    """

    delta: float = 1e-4
    feasibility_tol: float = 1e-7
    optimality_tol: float = 1e-7
    integrality_tol: float = 1e-6
    stop_at_candidate: bool = True
    envelope_pieces: int = 4

    def __post_init__(self) -> None:
        tol = max(self.feasibility_tol, self.optimality_tol, self.integrality_tol)
        if not (self.delta > 0 and self.delta >= 100 * tol):
            raise ValueError(f"delta={self.delta} must be at least 100x the largest solver "
                             f"tolerance ({tol}) for unsat claims to be sound")
        if self.envelope_pieces < 1:
            raise ValueError("envelope_pieces must be >= 1")


@dataclasses.dataclass(frozen=True)
class ExactConfig:
    """Exact mode (``hybridver verify --mode exact``).

    ``backend``: a name from :func:`hybridver.backends.backend_names`; ``delta``,
    ``envelope_pieces`` and the tolerances: see :class:`MilpOptions`;
    ``refinement_rounds``: re-solves after spurious candidates (per subproblem);
    ``splits_per_round``: new envelope split points per refinement;
    ``threads``: solver threads; ``interval_precheck``: skip a disjunct that interval
    bounds already refute (sound, and cheap); ``lp_tightening``: tighten the pre-activation
    bounds of each case with LPs before any back end runs
    (:func:`hybridver.backends.lp.lp_tightened_bounds`, needs highspy), spending at most
    ``lp_tightening_share`` of the remaining time.
    """

    backend: str = defaults.EXACT_BACKEND
    delta: float = 1e-4
    envelope_pieces: int = 4
    refinement_rounds: int = 20
    splits_per_round: int = 16
    feasibility_tol: float = 1e-7
    optimality_tol: float = 1e-7
    integrality_tol: float = 1e-6
    threads: int = 1
    interval_precheck: bool = True
    lp_tightening: bool = True
    lp_tightening_share: float = 0.5

    def __post_init__(self) -> None:
        self.milp_options()   # validates delta against the tolerances
        if self.refinement_rounds < 0 or self.splits_per_round < 1 or self.threads < 1:
            raise ValueError("refinement_rounds >= 0, splits_per_round >= 1, threads >= 1")

    def milp_options(self) -> MilpOptions:
        return MilpOptions(delta=self.delta, feasibility_tol=self.feasibility_tol,
                           optimality_tol=self.optimality_tol,
                           integrality_tol=self.integrality_tol,
                           envelope_pieces=self.envelope_pieces)


def configured_backend(config: ExactConfig):
    """The back end named by ``config``, given the MILP options when it takes them."""
    from hybridver.backends.base import get_backend

    backend = get_backend(config.backend)
    configure = getattr(backend, "configure", None)
    return configure(config.milp_options()) if callable(configure) else backend


def milp_outcome(model: MilpModel, options: MilpOptions, *, solver_status: str, time_s: float,
                 values: np.ndarray | None = None, objective: float | None = None,
                 dual_bound: float | None = None, optimal: bool = False,
                 infeasible: bool = False, timed_out: bool = False, source: str = "milp",
                 stats: dict[str, Any] | None = None) -> Outcome:
    """Read a solver's answer (see the module docstring).

    ``values``: the solution ``(n_vars,)`` if the solver has one; ``objective``: its ``t``;
    ``dual_bound``: the solver's proven lower bound of ``t``; ``optimal``: status optimal
    (then ``objective`` is the optimum up to the gap); ``infeasible``: status infeasible
    (with the cutoff ``t < delta`` in place, or without it).
    """
    stats = dict(stats or {})
    stats.update(n_vars=model.n_vars, n_rows=model.n_rows, n_binaries=model.n_integer,
                 objective=objective, dual_bound=dual_bound, exact_encoding=model.exact)
    delta = options.delta

    def outcome(status: Status, message: str, bound: float | None = None,
                with_candidate: bool = False) -> Outcome:
        candidate = None
        if with_candidate and values is not None:
            candidate = model.to_candidate(values, source)
            stats["solution"] = np.asarray(values, dtype=np.float64)
        return Outcome(status, time_s, candidate, bound, solver_status, message, stats)

    if infeasible:
        return outcome(Status.INFEASIBLE, f"no point with margin below delta={delta:g}", delta)
    if values is not None and objective is not None and math.isfinite(objective):
        if objective <= 0.0:
            return outcome(Status.CANDIDATE, f"solution with margin {objective:.6g} <= 0",
                           dual_bound, with_candidate=True)
    if dual_bound is not None and math.isfinite(dual_bound) and dual_bound >= delta:
        return outcome(Status.INFEASIBLE, f"dual bound {dual_bound:.6g} >= delta={delta:g}",
                       dual_bound)
    if optimal and objective is not None and math.isfinite(objective):
        proven = objective if dual_bound is None or not math.isfinite(dual_bound) else dual_bound
        if proven >= delta:
            return outcome(Status.INFEASIBLE, f"proven margin {proven:.6g} >= delta={delta:g}",
                           proven)
        return outcome(Status.UNKNOWN, f"optimal margin {objective:.6g} is within the "
                       f"tolerance band (0, delta={delta:g})", dual_bound, with_candidate=True)
    if timed_out:
        return outcome(Status.TIMEOUT, "time limit reached before the margin's sign was "
                       "decided", dual_bound)
    return outcome(Status.UNKNOWN, f"solver status {solver_status}", dual_bound)
