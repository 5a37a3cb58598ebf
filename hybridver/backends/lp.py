"""Linear programs in HiGHS: loading, the one rigorous dual bound, LP bound tightening.

* :class:`LpSolver`: one ``highspy.Highs`` owned by the run that creates it (there is no
  process-wide instance), loaded with a dense system or a :class:`MilpModel`.
* :func:`dual_lower_bounds`: THE rigorous LP bound of this package.  HiGHS works in floating
  point with tolerances, so its optimum is never used as a bound; its duals are only
  multipliers, and any multipliers give a valid bound (good ones a tight one).  Region
  splitting's polytope LPs (:mod:`hybridver.backends.polytope_lp`), LP tightening below and
  the HiGHS back end's LPs all turn multipliers into bounds here.
* :func:`model_lower_bound`: that bound over a :class:`MilpModel`'s LP relaxation.
* :func:`lp_tightened_bounds`: pre-activation bounds tightened by LPs, layer by layer.

highspy is imported only when an :class:`LpSolver` first needs its instance.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import time

import numpy as np
import scipy.sparse as sp

from hybridver.encode.milp import MilpModel, encode_milp, merged_bounds
from hybridver.numerics import TINY, U64, gamma
from hybridver.problem import Subproblem
from hybridver.relaxations.base import is_piecewise_linear, kink_slope

__all__ = ["LpSolver", "LpStatus", "dual_lower_bounds", "model_lower_bound",
           "lp_tightened_bounds"]


class LpStatus(enum.Enum):
    """What an LP solve proved: only OPTIMAL and INFEASIBLE are read as answers."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    OTHER = "other"


class LpSolver:
    """One HiGHS instance, re-loaded for every LP (constructing one costs more than a
    warm-started solve), created on first use.  Owned by one run, never shared between
    threads.  ``presolve=False``: on LPs of a few variables presolve costs more than it
    saves (ACAS Xu 1_1 property 5 by region splitting: 17.8 s -> 14.7 s)."""

    def __init__(self, presolve: bool = True):
        self.presolve = presolve
        self._highs = None

    @property
    def highs(self):
        """The ``highspy.Highs`` instance (for solves beyond plain LPs, e.g. MILPs)."""
        if self._highs is None:
            import highspy

            self._highs = highspy.Highs()
            self._highs.setOptionValue("output_flag", False)
            if not self.presolve:
                self._highs.setOptionValue("presolve", "off")
        return self._highs

    def set_option(self, key: str, value) -> None:
        self.highs.setOptionValue(key, value)

    def load_dense(self, rows: np.ndarray, upper: np.ndarray, col_lower: np.ndarray,
                   col_upper: np.ndarray, cost: np.ndarray) -> None:
        """``min cost . v  s.t.  rows v <= upper,  col_lower <= v <= col_upper`` with dense
        ``rows (K, m)``."""
        import highspy

        K, m = rows.shape
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = m, K
        lp.col_cost_ = np.asarray(cost, dtype=np.float64)
        lp.col_lower_ = np.asarray(col_lower, dtype=np.float64)
        lp.col_upper_ = np.asarray(col_upper, dtype=np.float64)
        lp.row_lower_ = np.full(K, -math.inf)
        lp.row_upper_ = np.asarray(upper, dtype=np.float64)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = np.arange(0, K * m + 1, m, dtype=np.int32)
        lp.a_matrix_.index_ = np.tile(np.arange(m, dtype=np.int32), K)
        lp.a_matrix_.value_ = np.ascontiguousarray(rows, dtype=np.float64).ravel()
        self.highs.passModel(lp)

    def load_model(self, model: MilpModel, objective: np.ndarray | None = None,
                   integer: bool = False) -> None:
        """``model`` with the given objective (default zero); its integrality constraints
        only with ``integer`` (else its LP relaxation)."""
        import highspy

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
        self.highs.passModel(lp)

    def set_costs(self, cols: np.ndarray, values: np.ndarray) -> None:
        """Objective coefficients of the columns ``cols`` (the others are kept)."""
        cols = np.asarray(cols, dtype=np.int32)
        self.highs.changeColsCost(len(cols), cols,
                                  np.ascontiguousarray(values, dtype=np.float64))

    def run(self) -> LpStatus:
        import highspy

        h = self.highs
        h.run()
        status = h.getModelStatus()
        if status == highspy.HighsModelStatus.kOptimal:
            return LpStatus.OPTIMAL
        if status == highspy.HighsModelStatus.kInfeasible:
            return LpStatus.INFEASIBLE
        return LpStatus.OTHER

    def row_duals(self) -> np.ndarray:
        """HiGHS's row duals ``(K,)``: ``> 0`` on a row held at its lower side, ``< 0`` at
        its upper side (the sign :func:`dual_lower_bounds` expects)."""
        return np.asarray(self.highs.getSolution().row_dual, dtype=np.float64)

    def col_values(self) -> np.ndarray:
        return np.asarray(self.highs.getSolution().col_value, dtype=np.float64)

    def dual_ray(self) -> np.ndarray | None:
        """After INFEASIBLE: HiGHS's dual ray on the rows ``(K,)``, or None."""
        _, has_ray, ray = self.highs.getDualRay()
        return np.asarray(ray, dtype=np.float64) if has_ray else None


# ---------------------------------------------------------------------- the dual bound
def _times(Y: np.ndarray, A) -> np.ndarray:
    """``Y (E, K) @ A (K, n)`` for dense or sparse ``A``, as a dense ``(E, n)``."""
    if isinstance(A, np.ndarray):
        return Y @ A
    return np.asarray(A.T @ Y.T).T


def dual_lower_bounds(costs: np.ndarray, consts: np.ndarray, Y: np.ndarray, A,
                      row_lower: np.ndarray, row_upper: np.ndarray, lo: np.ndarray,
                      hi: np.ndarray, costs_err: np.ndarray | float = 0.0,
                      consts_err: np.ndarray | float = 0.0) -> np.ndarray:
    """Rigorous lower bounds ``(E,)`` of ``costs[e] . x + consts[e]`` over ``{lo <= x <= hi,
    row_lower <= A x <= row_upper}`` from ANY multipliers ``Y (E, K)``.

    ``costs (E, n)``, ``consts (E,)``; ``A (K, n)`` dense or scipy sparse; ``lo, hi (n,)``
    (infinite ends allowed); ``costs_err``, ``consts_err``: bounds on errors the inputs
    already carry.  Why sound: multipliers that are not finite, or meet an infinite side
    (``y_i > 0`` pairs with ``row_lower_i``, ``y_i < 0`` with ``row_upper_i``), are set to 0;
    then ``y_i ((A x)_i - b_i) >= 0`` at every feasible ``x`` with ``b_i`` that side, so
    ``costs . x + consts >= g . x + k`` with ``g = costs - A^T y`` and ``k = consts + y . b``,
    and ``g . x >= sum_j min(g_j lo_j, g_j hi_j)`` on the box.  Float64 rounding (unit
    ``numerics.U64``, Higham's ``numerics.gamma``): each ``g_j`` sums at most ``m - 1``
    products (``m = K + 2`` for dense ``A``, the largest column count plus 2 for sparse),
    so it is off by at most ``gamma(m)`` times the sum of their magnitudes, and that error
    reaches the bound multiplied by ``|x_j| <= reach_j``; ``k`` is off by at most
    ``gamma(K + 2) (|consts| + sum |y_i b_i|)``; the box minimum and its sum by
    ``gamma(n + 2) (sum |terms| + |k|)``.  Underflow, outside that relative model, adds at
    most ``numerics.TINY`` per product (``m TINY`` to each ``g_j``, ``K + 2`` and ``n + 2``
    more), and the whole error is subtracted twice over (covering the rounding of the error
    terms and of the last subtraction).  ``-inf`` for an objective that any product or cost
    reaches on a column with an infinite bound.
    """
    costs = np.atleast_2d(np.asarray(costs, dtype=np.float64))
    E, n = costs.shape
    K = A.shape[0]
    dense = isinstance(A, np.ndarray)
    row_lower = np.asarray(row_lower, dtype=np.float64)
    row_upper = np.asarray(row_upper, dtype=np.float64)
    low_ok, up_ok = np.isfinite(row_lower), np.isfinite(row_upper)
    Y = np.asarray(Y, dtype=np.float64).reshape(E, K)
    with np.errstate(invalid="ignore"):
        Y = np.where(np.isfinite(Y) & (((Y > 0) & low_ok) | ((Y < 0) & up_ok)), Y, 0.0)
    b = np.where(Y > 0, np.where(low_ok, row_lower, 0.0), np.where(up_ok, row_upper, 0.0))
    if dense:
        abs_A, m = np.abs(A), K + 2
    else:
        A = sp.csc_array(A)
        abs_A, m = abs(A), int(np.diff(A.indptr).max(initial=0)) + 2
    g = costs - _times(Y, A)
    g_err = (costs_err + gamma(m, U64) * (np.abs(costs) + _times(np.abs(Y), abs_A))
             + m * TINY)
    yb = Y * b
    k = np.asarray(consts, dtype=np.float64) + yb.sum(1)
    k_err = (consts_err + gamma(K + 2, U64) * (np.abs(consts) + np.abs(yb).sum(1))
             + (K + 2) * TINY)
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    reach = np.maximum(np.abs(lo), np.abs(hi))
    finite = np.isfinite(reach)
    loose = np.zeros(E, dtype=bool)
    if not finite.all():
        # an unbounded column ruins the bound unless no product reaches its g_j at all
        # (then g_j is exactly 0); checked on the structure, which no underflow hides
        fed = _times((Y != 0).astype(np.float64), (abs_A > 0).astype(np.float64)) > 0
        loose = np.any(((costs != 0) | fed) & ~finite, axis=1)
        lo, hi, reach = (np.where(finite, v, 0.0) for v in (lo, hi, reach))
    terms = np.minimum(g * lo, g * hi)
    value = terms.sum(1) + k
    err = ((g_err * reach).sum(1) + k_err
           + gamma(n + 2, U64) * (np.abs(terms).sum(1) + np.abs(k)) + (n + 2) * TINY)
    return np.where(loose, -math.inf, value - 2 * err)


def model_lower_bound(model: MilpModel, cost: np.ndarray, row_multipliers: np.ndarray
                      ) -> float:
    """A rigorous lower bound of ``cost . v`` over the LP relaxation of ``model`` (rows and
    variable bounds; integrality dropped) from ANY row multipliers ``(n_rows,)`` (HiGHS's
    row duals give a near-optimal one): :func:`dual_lower_bounds`."""
    return float(dual_lower_bounds(np.asarray(cost, dtype=np.float64)[None], np.zeros(1),
                                   np.asarray(row_multipliers, dtype=np.float64)[None],
                                   model.A, model.row_lower, model.row_upper,
                                   model.var_lower, model.var_upper)[0])


# ---------------------------------------------------------------------- LP tightening
def prefix_model(model: MilpModel, s: int, integer: bool = False
                 ) -> tuple[MilpModel, np.ndarray]:
    """The part of ``model`` that defines nonlinear node ``s``'s operand: inputs, the
    variables of the nodes before it, its ``z``, and the rows over those only (dropping
    rows only enlarges the feasible set, so bounds over it stay sound).  ``integer``: keep
    the binaries integral (False: their LP relaxation).  Returns the restricted model and
    the new index of each kept variable (-1 if dropped)."""
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
        integer=model.integer[cols] if integer else np.zeros(cols.size, dtype=bool),
        var_names=tuple(model.var_names[j] for j in cols), objective=np.zeros(cols.size))
    return sub, new_index


def lp_tightened_bounds(problem: Subproblem, time_s: float, envelope_pieces: int = 4
                        ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:
    """Tighter pre-activation bounds from the LP relaxation, layer by layer (HiGHS).

    For each nonlinear node in topological order, every element whose interval matters
    (ReLU-like: unstable; smooth: all) gets ``min z`` and ``max z`` over the LP relaxation of
    the MILP built with the bounds found so far; the MILP is rebuilt between nodes so later
    big-Ms use the tighter bounds.  Each new bound is :func:`model_lower_bound` of HiGHS's
    duals, a bound that holds in exact arithmetic whatever HiGHS's tolerances were; every
    real execution of the network on the subproblem's region is a feasible point of each
    LP, so the bounds are sound.  Returns ``(node_bounds, stats)``; stops early (keeping
    what it has) at ``time_s``.
    """
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
        sub, index = prefix_model(model, s)
        solver = LpSolver()
        solver.load_model(sub)
        solver.set_option("time_limit", max(deadline - time.monotonic(), 0.01))
        for j in targets:
            col = int(index[z[j]])
            for sense in (-1.0, 1.0):          # the maximum first: z <= 0 settles a ReLU
                if time.monotonic() > deadline:
                    stats["complete"] = False
                    break
                if sense > 0 and piecewise and hi[j] <= 0:
                    continue
                solver.set_costs([col], [sense])
                optimal = solver.run() is LpStatus.OPTIMAL
                duals = solver.row_duals() if optimal else None
                solver.set_costs([col], [0.0])
                stats["lps"] += 1
                if duals is None:
                    continue
                cost = np.zeros(sub.n_vars)
                cost[col] = sense
                bound = model_lower_bound(sub, cost, duals)
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
                bounds[site.node] = (np.maximum(out_lo, np.nextafter(f_lo, -np.inf)),
                                     np.minimum(out_hi, np.nextafter(f_hi, np.inf)))
        if not stats["complete"]:
            break
    stats["time_s"] = time.monotonic() - start
    return bounds, stats
