"""HiGHS back end (``highspy``): the MILP of :mod:`hybridver.encode.milp` solved by HiGHS's
branch-and-cut.

Stopping as soon as the margin's sign is decided (MILPs only; a model without binaries is
an LP, solved to optimality, and its lower bound is recomputed from HiGHS's duals by
:func:`~hybridver.encode.milp.safe_lp_lower_bound`, which holds whatever the tolerances):

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
in :meth:`HighsBackend.is_available` and :meth:`HighsBackend.solve_model`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import time

import numpy as np
import scipy.sparse as sp

from hybridver.backends.base import Capabilities, Limits, Outcome, register_backend
from hybridver.backends.milp_backend import MilpBackend
from hybridver.backends.options import milp_outcome
from hybridver.encode.milp import MilpModel, encode_milp, safe_lp_lower_bound
from hybridver.problem import Subproblem
from hybridver.relaxations.base import is_piecewise_linear, kink_slope


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
        h = _load_lp(highspy, model, model.objective, integer=is_mip)
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
            safe = safe_lp_lower_bound(model, model.objective,
                                       np.asarray(h.getSolution().row_dual))
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


# ---------------------------------------------------------------------- LP bound tightening
def _load_lp(highspy, model: MilpModel, objective=None, integer: bool = False):
    """A Highs object holding ``model`` with the given objective (default zero); the
    integrality constraints only with ``integer`` (else its LP relaxation)."""
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    lp = highspy.HighsLp()
    lp.num_col_ = model.n_vars
    lp.num_row_ = model.n_rows
    lp.col_cost_ = np.zeros(model.n_vars) if objective is None else objective
    lp.col_lower_ = model.var_lower
    lp.col_upper_ = model.var_upper
    lp.row_lower_ = model.row_lower
    lp.row_upper_ = model.row_upper
    A = model.A.tocsr()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data.astype(np.float64)
    if integer:
        lp.integrality_ = [highspy.HighsVarType.kInteger if v else
                           highspy.HighsVarType.kContinuous for v in model.integer]
    h.passModel(lp)
    return h


def _prefix_lp(model: MilpModel, s: int) -> tuple[MilpModel, np.ndarray]:
    """The part of ``model`` that defines nonlinear node ``s``'s operand: inputs, the
    variables of the nodes before it, its ``z``, and the rows over those only (dropping
    rows only enlarges the feasible set, so bounds over it stay sound).  Returns the
    restricted model and the new index of each kept variable (-1 if dropped)."""
    keep = np.zeros(model.n_vars, dtype=bool)
    keep[model.input_vars] = True
    for site in model.sites[:s]:
        keep[site.y_vars] = True
        keep[site.aux[0]:site.aux[1]] = True
    keep[model.sites[s].z_vars.reshape(-1)] = True
    A = model.A.tocsr()
    outside = np.asarray(abs(A) @ (~keep).astype(np.float64)).reshape(-1) > 0
    rows = np.nonzero(~outside)[0]
    cols = np.nonzero(keep)[0]
    new_index = np.full(model.n_vars, -1)
    new_index[cols] = np.arange(cols.size)
    sub = dataclasses.replace(
        model, A=sp.csr_array(A[rows][:, cols]), row_lower=model.row_lower[rows],
        row_upper=model.row_upper[rows], row_names=tuple(model.row_names[i] for i in rows),
        var_lower=model.var_lower[cols], var_upper=model.var_upper[cols],
        integer=np.zeros(cols.size, dtype=bool),
        var_names=tuple(model.var_names[j] for j in cols), objective=np.zeros(cols.size))
    return sub, new_index


def lp_tightened_bounds(problem: Subproblem, time_s: float, envelope_pieces: int = 4
                        ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:
    """Tighter pre-activation bounds from the LP relaxation, layer by layer (HiGHS).

    For each nonlinear node in topological order, every element whose interval matters
    (ReLU-like: unstable; smooth: all) gets ``min z`` and ``max z`` over the LP relaxation of
    the MILP built with the bounds found so far; the MILP is rebuilt between nodes so later
    big-Ms use the tighter bounds.  Each new bound is
    :func:`~hybridver.encode.milp.safe_lp_lower_bound` of HiGHS's duals, a bound that holds
    in exact arithmetic whatever HiGHS's tolerances were; every real execution of the
    network on the subproblem's region is a feasible point of each LP, so the bounds are
    sound.  Returns ``(node_bounds, stats)``; stops early (keeping what it has) at
    ``time_s``.
    """
    import highspy

    from hybridver.encode.milp import merged_bounds, safe_lp_lower_bound

    start = time.monotonic()
    deadline = start + time_s
    bounds = merged_bounds(problem)
    stats = {"lps": 0, "tightened": 0, "stabilized": 0, "time_s": 0.0, "complete": True}
    model = encode_milp(dataclasses.replace(problem, node_bounds=bounds), envelope_pieces)
    for s in range(len(model.sites)):
        site = model.sites[s]
        if site.z_vars.ndim != 1 or site.operand not in bounds:
            continue
        if s > 0:
            model = encode_milp(dataclasses.replace(problem, node_bounds=bounds),
                                envelope_pieces)
            site = model.sites[s]
        z = site.z_vars
        lo, hi = model.var_lower[z].copy(), model.var_upper[z].copy()
        piecewise = is_piecewise_linear(site.op)
        targets = np.nonzero((lo < 0) & (hi > 0) if piecewise else (hi - lo > 1e-9))[0]
        if not targets.size:
            continue
        sub, index = _prefix_lp(model, s)
        h = _load_lp(highspy, sub)
        h.setOptionValue("time_limit", max(deadline - time.monotonic(), 0.01))
        for j in targets:
            col = int(index[z[j]])
            for sense in (-1.0, 1.0):          # the maximum first: z <= 0 settles a ReLU
                if time.monotonic() > deadline:
                    stats["complete"] = False
                    break
                if sense > 0 and piecewise and hi[j] <= 0:
                    continue
                h.changeColCost(col, sense)
                h.run()
                optimal = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
                duals = np.asarray(h.getSolution().row_dual) if optimal else None
                h.changeColCost(col, 0.0)
                stats["lps"] += 1
                if duals is None:
                    continue
                cost = np.zeros(sub.n_vars)
                cost[col] = sense
                bound = safe_lp_lower_bound(sub, cost, duals)
                if sense > 0 and bound > lo[j]:
                    lo[j] = bound
                    stats["tightened"] += 1
                elif sense < 0 and -bound < hi[j]:
                    hi[j] = -bound
                    stats["tightened"] += 1
        op_lo, op_hi = bounds[site.operand]
        new_lo, new_hi = np.maximum(op_lo, lo), np.minimum(op_hi, hi)
        bounds[site.operand] = (new_lo, new_hi)
        if piecewise:
            stats["stabilized"] += int(np.sum((new_lo[targets] >= 0) | (new_hi[targets] <= 0)))
        alpha = kink_slope(site.op, problem.graph.node(site.node).attrs)
        if alpha is not None and site.node in bounds:
            if 0.0 <= alpha <= 1.0:   # monotone: the output interval is f of the ends
                f_lo = np.where(new_lo >= 0, new_lo, alpha * new_lo)
                f_hi = np.where(new_hi >= 0, new_hi, alpha * new_hi)
                out_lo, out_hi = bounds[site.node]
                bounds[site.node] = (np.maximum(out_lo, _down(f_lo)), np.minimum(out_hi, _up(f_hi)))
        if not stats["complete"]:
            break
    stats["time_s"] = time.monotonic() - start
    return bounds, stats


def _up(x: np.ndarray) -> np.ndarray:
    return np.nextafter(x, np.inf)


def _down(x: np.ndarray) -> np.ndarray:
    return np.nextafter(x, -np.inf)
