"""OR-Tools back end: the MILP of :mod:`hybridver.encode.milp` solved by **SCIP** through
OR-Tools' ``pywraplp`` linear-solver wrapper (SCIP 10 with SoPlex in ortools 9.15).

CP-SAT is deliberately not used: it rounds continuous variables to a grid, which is not
sound for these models.  MathOpt's SCIP interface was tried and rejected: it refuses
``objective_limit``/``best_bound_limit`` for SCIP in ortools 9.15.

Stopping as soon as the margin's sign is decided:

* the margin variable gets the upper bound ``t <= delta`` (a cutoff inside the model, as
  pywraplp exposes no objective limit): SCIP's *infeasible* then proves that no solution
  with ``t <= delta`` exists: INFEASIBLE;
* SCIP's ``limits/primal = 0`` (with ``MilpOptions.stop_at_candidate``) stops at the first
  solution with ``t <= 0``: CANDIDATE;
* on a time limit, ``BestBound() >= delta`` still proves INFEASIBLE.

Only OPTIMAL, FEASIBLE (with a solution) and INFEASIBLE are read as answers; anything else
is UNKNOWN/TIMEOUT.  OR-Tools is imported only in :meth:`OrtoolsBackend.is_available` and
:meth:`OrtoolsBackend.solve_model`.
"""

from __future__ import annotations

import importlib.util
import math
import time

import numpy as np

from hybridver.backends.base import Capabilities, Limits, Outcome, Status, register_backend
from hybridver.backends.milp_backend import MilpBackend
from hybridver.backends.options import milp_outcome
from hybridver.encode.milp import MilpModel

SOLVER_ID = "SCIP"


@register_backend
class OrtoolsBackend(MilpBackend):
    """MILP with SCIP through OR-Tools pywraplp.  ``options``: see :class:`MilpOptions`."""

    name = "ortools"
    capabilities = Capabilities(exact_piecewise_linear=True, smooth_envelopes=True,
                                exact_arithmetic=False, max_binaries_hint=2000)

    def is_available(self) -> bool:
        if importlib.util.find_spec("ortools") is None:
            return False
        from ortools.linear_solver import pywraplp
        return pywraplp.Solver.CreateSolver(SOLVER_ID) is not None

    def solve_model(self, model: MilpModel, limits: Limits,
                    stop_at_candidate: bool | None = None) -> Outcome:
        """Solve an encoded model; ``stop_at_candidate`` overrides the option."""
        from ortools.linear_solver import pywraplp

        start = time.monotonic()
        opts = self.options
        stop = opts.stop_at_candidate if stop_at_candidate is None else stop_at_candidate
        solver = pywraplp.Solver.CreateSolver(SOLVER_ID)
        if solver is None:
            return Outcome(Status.ERROR, 0.0, solver_status="unavailable",
                           message="OR-Tools was built without SCIP")
        inf = solver.infinity()

        def side(v: float) -> float:
            return inf if v == math.inf else (-inf if v == -math.inf else float(v))

        upper = model.var_upper.copy()
        upper[model.margin_var] = min(upper[model.margin_var], opts.delta)   # the cutoff
        variables = [solver.Var(side(lo), side(hi), bool(integer), name)
                     for lo, hi, integer, name in zip(model.var_lower, upper, model.integer,
                                                      model.var_names)]
        A = model.A.tocsr()
        for i in range(model.n_rows):
            row = solver.Constraint(side(model.row_lower[i]), side(model.row_upper[i]),
                                    model.row_names[i])
            for j in range(A.indptr[i], A.indptr[i + 1]):
                row.SetCoefficient(variables[A.indices[j]], float(A.data[j]))
        objective = solver.Objective()
        for j in np.nonzero(model.objective)[0]:
            objective.SetCoefficient(variables[j], float(model.objective[j]))
        objective.SetMinimization()
        remaining = max(limits.time_s - (time.monotonic() - start), 0.01)
        solver.SetTimeLimit(max(1, int(remaining * 1000)))
        solver.SetNumThreads(max(1, int(limits.threads)))
        lines = [f"numerics/feastol = {opts.feasibility_tol!r}",
                 f"numerics/dualfeastol = {opts.optimality_tol!r}",
                 "limits/gap = 0",
                 f"limits/absgap = {opts.delta / 100!r}", "randomization/randomseedshift = 0"]
        if stop:
            lines.append("limits/primal = 0")
        if not solver.SetSolverSpecificParametersAsString("\n".join(lines) + "\n"):
            return Outcome(Status.ERROR, time.monotonic() - start, solver_status="bad parameters",
                           message="SCIP rejected a parameter: " + "; ".join(lines))
        params = pywraplp.MPSolverParameters()
        params.SetDoubleParam(params.RELATIVE_MIP_GAP, 0.0)
        status = solver.Solve(params)
        elapsed = time.monotonic() - start
        names = {pywraplp.Solver.OPTIMAL: "OPTIMAL", pywraplp.Solver.FEASIBLE: "FEASIBLE",
                 pywraplp.Solver.INFEASIBLE: "INFEASIBLE", pywraplp.Solver.UNBOUNDED: "UNBOUNDED",
                 pywraplp.Solver.ABNORMAL: "ABNORMAL", pywraplp.Solver.NOT_SOLVED: "NOT_SOLVED",
                 pywraplp.Solver.MODEL_INVALID: "MODEL_INVALID"}
        name = names.get(status, str(status))
        has_point = status in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE)
        values = (np.array([v.solution_value() for v in variables], dtype=np.float64)
                  if has_point else None)
        obj = float(objective.Value()) if has_point else None
        dual = None
        if status in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE,
                      pywraplp.Solver.NOT_SOLVED):
            bound = float(objective.BestBound())
            dual = bound if math.isfinite(bound) and abs(bound) < 1e19 else None
        timed_out = status in (pywraplp.Solver.FEASIBLE, pywraplp.Solver.NOT_SOLVED) and \
            elapsed >= 0.98 * remaining
        stats = {"solver": solver.SolverVersion(), "nodes": int(solver.nodes())
                 if model.n_integer else 0}
        return milp_outcome(model, opts, solver_status=name, time_s=elapsed, values=values,
                            objective=obj, dual_bound=dual,
                            optimal=status == pywraplp.Solver.OPTIMAL,
                            infeasible=status == pywraplp.Solver.INFEASIBLE,
                            timed_out=timed_out, source="ortools-scip", stats=stats)
