"""HiGHS back end (``highspy``): the MILP of :mod:`hybridver.encode.milp` solved by HiGHS's
branch-and-cut.

Stopping as soon as the margin's sign is decided (MILPs only; a model without binaries is
an LP, solved to optimality, and its lower bound is recomputed from HiGHS's duals by
:func:`~hybridver.backends.lp.model_lower_bound`, which holds whatever the tolerances):

* ``objective_bound = delta``: HiGHS prunes every node whose bound reaches ``delta``; when
  the tree is exhausted without a solution below ``delta`` it reports *Infeasible*, or
  *Optimal* with an incumbent at or above ``delta`` (then its "dual bound" is that
  incumbent's value, which is NOT a bound of ``t*``: only ``t* >= delta`` is proven, and
  that is all this back end reports): INFEASIBLE;
* ``objective_target = 0`` (with ``MilpOptions.stop_at_candidate``): it stops at the first
  solution with ``t <= 0`` (*Objective target reached*): CANDIDATE;
* on a time limit, ``mip_dual_bound >= delta`` still proves INFEASIBLE.

Only the statuses Optimal, Infeasible and Objective target are read as answers; every other
status is UNKNOWN/TIMEOUT (``backends/options.py`` has the rule).  highspy is imported only
in :meth:`HighsBackend.is_available`, :meth:`HighsBackend.solve_model` and
:class:`~hybridver.backends.lp.LpSolver`.  LP bound tightening is
:func:`hybridver.backends.lp.lp_tightened_bounds`.
"""

from __future__ import annotations

import importlib.util
import math
import time

import numpy as np

from hybridver.backends.base import Capabilities, Limits, Outcome, register_backend
from hybridver.backends.lp import LpSolver, model_lower_bound
from hybridver.backends.milp_backend import MilpBackend
from hybridver.backends.options import milp_outcome
from hybridver.encode.milp import MilpModel


@register_backend
class HighsBackend(MilpBackend):
    """MILP with HiGHS.  ``options``: tolerances, ``delta`` and envelope pieces."""

    name = "highs"
    capabilities = Capabilities(exact_piecewise_linear=True, smooth_envelopes=True,
                                exact_arithmetic=False, max_binaries_hint=2000)

    def is_available(self) -> bool:
        return importlib.util.find_spec("highspy") is not None

    def solve_model(self, model: MilpModel, limits: Limits,
                    stop_at_candidate: bool | None = None) -> Outcome:
        """Solve an encoded model; ``stop_at_candidate`` overrides the option."""
        import highspy

        start = time.monotonic()
        opts = self.options
        stop = opts.stop_at_candidate if stop_at_candidate is None else stop_at_candidate
        is_mip = model.n_integer > 0
        solver = LpSolver()
        solver.load_model(model, model.objective, integer=is_mip)
        h = solver.highs
        remaining = max(limits.time_s - (time.monotonic() - start), 0.01)
        settings = {
            "time_limit": float(remaining),
            "primal_feasibility_tolerance": opts.feasibility_tol,
            "dual_feasibility_tolerance": opts.optimality_tol,
            "mip_feasibility_tolerance": min(opts.feasibility_tol, opts.integrality_tol),
            "mip_rel_gap": 0.0,
            "mip_abs_gap": opts.delta / 100,
            "random_seed": 0,
        }
        if is_mip:
            settings["objective_bound"] = opts.delta
            if stop:
                settings["objective_target"] = 0.0
        for key, value in settings.items():
            h.setOptionValue(key, value)
        h.run()
        status = h.getModelStatus()
        info = h.getInfo()
        elapsed = time.monotonic() - start
        name = h.modelStatusToString(status)
        has_point = info.primal_solution_status == 2   # kSolutionStatusFeasible
        values = np.asarray(h.getSolution().col_value, dtype=np.float64) if has_point else None
        objective = float(info.objective_function_value) if has_point else None
        ms = highspy.HighsModelStatus
        if is_mip:
            dual = float(info.mip_dual_bound)
            dual = dual if math.isfinite(dual) else None
            if dual is not None and dual >= opts.delta:
                # under the cutoff HiGHS may end "Optimal" with an incumbent above it and
                # report that incumbent as the bound: only t* >= delta is proven
                dual = opts.delta
        elif status == ms.kOptimal:   # an LP: a rigorous bound from the duals
            safe = model_lower_bound(model, model.objective, solver.row_duals())
            dual = safe if math.isfinite(safe) else objective
        else:
            dual = None
        stats = {"solver": f"HiGHS {h.version()}", "nodes": int(info.mip_node_count) if is_mip
                 else 0}
        return milp_outcome(
            model, opts, solver_status=name, time_s=elapsed, values=values,
            objective=objective if status in (ms.kOptimal, ms.kObjectiveTarget, ms.kTimeLimit,
                                              ms.kInterrupt, ms.kSolutionLimit) else None,
            dual_bound=dual if status in (ms.kOptimal, ms.kTimeLimit, ms.kInterrupt,
                                          ms.kSolutionLimit, ms.kObjectiveTarget) else None,
            optimal=status == ms.kOptimal, infeasible=status == ms.kInfeasible,
            timed_out=status == ms.kTimeLimit, source="highs", stats=stats)
