"""The exact local Lipschitz constant of a ReLU network by MILP (HiGHS).

What it computes, per row ``c``: the max of ``||J_P^T c||_q`` over pairs ``(x, P)`` of a
point ``x`` of the box and an activation pattern ``P`` consistent with it (``P_i = 1`` where
``z_i(x) > 0``, ``0`` where ``z_i(x) < 0``, either where ``z_i(x) = 0``), with ``J_P`` the
product ``W_T D_P ... D_P W_1``.  Every gradient at a differentiable point is such a
``J_P``, and so every limit of them, hence this max is at least the local Lipschitz
constant (the sup of the gradient norms, the box being convex); it equals it when each
maximizing pattern is the pattern of an open set of points, which holds unless the
network is degenerate (e.g. two neurons whose inputs vanish on the same hyperplane with
opposite patterns never realized off it).  ``q = 2`` (a convex maximization, MIQP) is not
encoded: the result is then None.

Encoding: the forward network with one binary per ReLU whose input interval contains 0
(big-M with the engine's sound pre-activation intervals), the backward graph with
``s = delta * r`` linearized exactly by the intervals of ``r`` (the Jacobian bounds'
``inner`` boxes), and ``|g_j|`` (q = 1, a binary per coordinate of unknown sign) or
``max_j |g_j|`` (q = inf, one binary per coordinate and sign).  The solver's answer is
trusted only with status Optimal; its pattern is then re-scored in float64 (the value
reported), and it must agree with the solver's objective up to its tolerances.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from hybridver.ir.ops import OpKind
from hybridver.lipschitz.network import Affine, Chain, dual_norm

__all__ = ["ExactOutcome", "exact_row"]


@dataclasses.dataclass(frozen=True)
class ExactOutcome:
    """``value``: the pattern's re-scored norm (None unless solved to optimality);
    ``x``: a point inside the region of the solver's pattern (:func:`interior_point`), else
    the solver's point, or None; ``status``: HiGHS's model status, as text."""

    value: float | None
    x: np.ndarray | None
    status: str
    time_s: float


class _Model:
    """Columns and sparse rows of a MILP under construction."""

    def __init__(self) -> None:
        self.lo, self.hi, self.integer, self.cost = [], [], [], []
        self.r_idx, self.c_idx, self.vals, self.r_lo, self.r_hi = [], [], [], [], []

    def cols(self, lo, hi, integer: bool = False) -> np.ndarray:
        lo, hi = np.atleast_1d(np.asarray(lo, float)), np.atleast_1d(np.asarray(hi, float))
        start = len(self.lo)
        self.lo.extend(lo.tolist())
        self.hi.extend(hi.tolist())
        self.integer.extend([integer] * len(lo))
        self.cost.extend([0.0] * len(lo))
        return np.arange(start, start + len(lo))

    def row(self, cols, vals, lo: float, hi: float) -> None:
        r = len(self.r_lo)
        self.r_idx.extend([r] * len(cols))
        self.c_idx.extend(int(c) for c in cols)
        self.vals.extend(float(v) for v in vals)
        self.r_lo.append(lo)
        self.r_hi.append(hi)

    def solve(self, time_limit: float):
        import highspy
        import scipy.sparse as sp

        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("time_limit", max(time_limit, 0.01))
        h.setOptionValue("mip_rel_gap", 1e-7)
        h.setOptionValue("threads", 1)
        lp = highspy.HighsLp()
        n, m = len(self.lo), len(self.r_lo)
        lp.num_col_, lp.num_row_ = n, m
        lp.col_cost_ = np.asarray(self.cost)
        lp.col_lower_, lp.col_upper_ = np.asarray(self.lo), np.asarray(self.hi)
        lp.row_lower_, lp.row_upper_ = np.asarray(self.r_lo), np.asarray(self.r_hi)
        lp.sense_ = highspy.ObjSense.kMaximize
        A = sp.csr_matrix((self.vals, (self.r_idx, self.c_idx)), shape=(m, n))
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = A.indptr.astype(np.int32)
        lp.a_matrix_.index_ = A.indices.astype(np.int32)
        lp.a_matrix_.value_ = A.data.astype(np.float64)
        lp.integrality_ = [highspy.HighsVarType.kInteger if v else
                           highspy.HighsVarType.kContinuous for v in self.integer]
        h.passModel(lp)
        h.run()
        status = h.getModelStatus()
        optimal = status == highspy.HighsModelStatus.kOptimal
        info = h.getInfo()
        has_point = optimal or info.primal_solution_status == 2  # a feasible incumbent
        values = np.asarray(h.getSolution().col_value) if has_point else None
        objective = info.objective_function_value if has_point else None
        return optimal, h.modelStatusToString(status), values, objective


def pattern_norm(chain: Chain, patterns: list[np.ndarray], row: np.ndarray, q: float) -> float:
    """``||J_P^T c||_q`` for 0/1 ``patterns`` (one per activation, chain order)."""
    g, k = row.astype(np.float64), len(patterns)
    for step in reversed(chain.steps):
        if isinstance(step, Affine):
            g = g @ step.weight
        else:
            k -= 1
            g = g * patterns[k]
    return float(dual_norm(g, q))


def interior_point(chain: Chain, patterns: list[np.ndarray], lower: np.ndarray,
                   upper: np.ndarray) -> np.ndarray | None:
    """A point of the box deep inside the region of ``patterns`` (every ReLU input at
    least ``s > 0`` away from 0 on the pattern's side, ``s`` maximized by an LP), or None
    when the LP finds none: there the network is differentiable with gradient ``J_P``.
    With the pattern fixed the ReLU inputs are affine in ``x``: ``z = A x + c``."""
    from scipy.optimize import linprog

    n = len(lower)
    A, c = np.eye(n), np.zeros(n)
    rows, rhs, k = [], [], 0
    for step in chain.steps:
        if isinstance(step, Affine):
            A, c = step.weight @ A, step.weight @ c + step.bias
            continue
        sign = 2 * patterns[k] - 1  # (sign z) >= s  <=>  -sign A x + s <= sign c
        rows.append(np.hstack([-sign[:, None] * A, np.ones((len(sign), 1))]))
        rhs.append(sign * c)
        A, c = A * patterns[k][:, None], c * patterns[k]
        k += 1
    if not rows:
        return (lower + upper) / 2
    cost = np.zeros(n + 1)
    cost[-1] = -1.0
    bounds = [*zip(lower, upper), (None, 1.0)]
    res = linprog(cost, A_ub=np.vstack(rows), b_ub=np.concatenate(rhs), bounds=bounds,
                  method="highs")
    if res.status != 0 or res.x[-1] <= 0:
        return None
    return np.clip(res.x[:n], lower, upper)


def exact_row(chain: Chain, lower: np.ndarray, upper: np.ndarray, row: np.ndarray,
              pre: list[tuple[np.ndarray, np.ndarray]], inner: list[tuple[np.ndarray,
              np.ndarray]], q: float, time_limit: float) -> ExactOutcome:
    """Maximize ``||J_P^T c||_q`` for ``c = row`` (module docstring).  ``pre[k]``: the
    ``k``-th ReLU's input interval ``(size,)``; ``inner[t]``: ``r_t``'s interval for this
    row."""
    t0 = time.monotonic()
    if q == 2.0 or any(op is not OpKind.RELU for op in chain.kinds):
        return ExactOutcome(None, None, "not encoded", 0.0)
    mdl = _Model()
    a = mdl.cols(lower, upper)
    x_cols = a
    deltas: list[np.ndarray] = []
    fixed: list[np.ndarray] = []  # per activation: 1 active, 0 inactive, -1 binary
    k = 0
    last_act = max(i for i, s in enumerate(chain.steps) if not isinstance(s, Affine)) \
        if chain.activations else -1
    for i, step in enumerate(chain.steps[:last_act + 1]):
        if isinstance(step, Affine):
            nxt = chain.steps[i + 1] if i + 1 < len(chain.steps) else None
            if nxt is not None and not isinstance(nxt, Affine):
                zl, zu = pre[k]
            else:
                zl = np.full(step.weight.shape[0], -np.inf)
                zu = np.full(step.weight.shape[0], np.inf)
            z = mdl.cols(zl, zu)
            for o in range(step.weight.shape[0]):
                nz = np.nonzero(step.weight[o])[0]
                mdl.row([z[o], *a[nz]], [1.0, *(-step.weight[o, nz])], step.bias[o], step.bias[o])
            a = z
            continue
        zl, zu = pre[k]
        state = np.where(zl > 0, 1, np.where(zu < 0, 0, -1))
        out = mdl.cols(np.where(state == 1, zl, 0.0), np.where(state == 0, 0.0, np.maximum(zu, 0)))
        d = mdl.cols(np.where(state == 1, 1, 0), np.where(state == 0, 0, 1), integer=True)
        for j in np.nonzero(state == 1)[0]:
            mdl.row([out[j], a[j]], [1.0, -1.0], 0.0, 0.0)
        for j in np.nonzero(state == -1)[0]:
            mdl.row([a[j], out[j]], [1.0, -1.0], -math.inf, 0.0)
            mdl.row([out[j], d[j]], [1.0, -zu[j]], -math.inf, 0.0)
            mdl.row([out[j], a[j], d[j]], [1.0, -1.0, -zl[j]], -math.inf, -zl[j])
        deltas.append(d)
        fixed.append(state)
        a = out
        k += 1
    # backward: r_T = c, then r_t for t = T-1 .. 0
    T = len(chain.steps)
    r = mdl.cols(row, row)
    k = len(deltas)
    for t in range(T - 1, -1, -1):
        step = chain.steps[t]
        lo, hi = inner[t]
        if isinstance(step, Affine):
            new = mdl.cols(lo, hi)
            for j in range(step.weight.shape[1]):
                nz = np.nonzero(step.weight[:, j])[0]
                mdl.row([new[j], *r[nz]], [1.0, *(-step.weight[nz, j])], 0.0, 0.0)
            r = new
            continue
        k -= 1
        rl, ru = inner[t + 1]
        state, d = fixed[k], deltas[k]
        s = mdl.cols(np.minimum(lo, 0.0), np.maximum(hi, 0.0))
        for j in range(len(s)):
            if state[j] == 1:
                mdl.row([s[j], r[j]], [1.0, -1.0], 0.0, 0.0)
            elif state[j] == 0:
                mdl.row([s[j]], [1.0], 0.0, 0.0)
            else:
                mdl.row([s[j], d[j]], [1.0, -ru[j]], -math.inf, 0.0)
                mdl.row([s[j], d[j]], [-1.0, rl[j]], -math.inf, 0.0)
                mdl.row([s[j], r[j], d[j]], [1.0, -1.0, -rl[j]], -math.inf, -rl[j])
                mdl.row([s[j], r[j], d[j]], [-1.0, 1.0, ru[j]], -math.inf, ru[j])
        r = s
    g_lo, g_hi = inner[0]
    g_abs = np.maximum(np.abs(g_lo), np.abs(g_hi))
    if q == 1.0:
        for j in range(len(r)):
            if g_lo[j] >= 0:
                mdl.cost[r[j]] += 1.0
            elif g_hi[j] <= 0:
                mdl.cost[r[j]] -= 1.0
            else:
                M = 2 * g_abs[j]
                t_col, sig = mdl.cols(0.0, g_abs[j])[0], mdl.cols(0, 1, integer=True)[0]
                mdl.cost[t_col] = 1.0
                mdl.row([t_col, r[j], sig], [1.0, -1.0, M], -math.inf, M)
                mdl.row([t_col, r[j], sig], [1.0, 1.0, -M], -math.inf, 0.0)
    else:
        top = float(g_abs.max()) if len(g_abs) else 0.0
        t_col = mdl.cols(0.0, top)[0]
        mdl.cost[t_col] = 1.0
        picks = []
        for j in range(len(r)):
            for sign, possible in ((1.0, g_hi[j] > 0), (-1.0, g_lo[j] < 0)):
                if possible:
                    M = top + g_abs[j]
                    p = mdl.cols(0, 1, integer=True)[0]
                    mdl.row([t_col, r[j], p], [1.0, -sign, M], -math.inf, M)
                    picks.append(p)
        if picks:
            mdl.row(picks, [1.0] * len(picks), 1.0, 1.0)
        else:
            mdl.hi[t_col] = 0.0
    optimal, status, values, objective = mdl.solve(time_limit)
    elapsed = time.monotonic() - t0
    if values is None:
        return ExactOutcome(None, None, status, elapsed)
    patterns = [np.where(f == -1, np.round(values[d]), f).astype(np.float64)
                for f, d in zip(fixed, deltas)]
    inside = interior_point(chain, patterns, lower, upper)
    point = values[x_cols] if inside is None else inside
    if not optimal:  # the incumbent's point still serves the lower bound
        return ExactOutcome(None, point, status, time.monotonic() - t0)
    value = pattern_norm(chain, patterns, row, q)
    if abs(value - objective) > 1e-6 * max(1.0, abs(objective)):
        return ExactOutcome(None, point, f"{status} (pattern re-scored to {value:.9g}, "
                            f"solver {objective:.9g})", elapsed)
    return ExactOutcome(value, point, status, time.monotonic() - t0)
