"""Rigorous lower bounds of a max of affine functions over a polytope, by LP (HiGHS).

``min over x in P of max_r (lam_r . x + c_r)`` with ``P = {lo <= x <= hi, G x <= h}`` is
the LP ``min t  s.t.  lam_r . x - t <= -c_r,  G x <= h``.  HiGHS solves it in floating
point with tolerances, so its optimum is not used as a bound.  Instead its duals give
weights ``w >= 0`` (``sum w = 1``) on the rows and ``y >= 0`` on the cuts, and for every
``x`` of ``P``

    max_r L_r(x) >= sum_r w_r L_r(x) >= sum_r w_r L_r(x) + y . (G x - h) = g . x + k

with ``g = sum_r w_r lam_r + G^T y`` and ``k = sum_r w_r c_r - y . h``; its minimum over
the box is closed-form, and the float64 rounding of ``g``, ``k`` and the sum is bounded
(Higham's ``gamma``) and subtracted.  Any ``w, y`` give a valid bound; good duals give a
tight one.  When HiGHS reports the LP infeasible, its dual ray ``y`` on the cuts is checked
the same way: ``min over the box of (G^T y) . x - y . h > 0`` proves ``P`` empty.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from hybridver.bounds.linear_ops import gamma

_U = 2.0 ** -53
#: Products that underflow lose up to 2**-1075 each, outside Higham's relative bound: every
#: error term below adds ``_TINY`` per term it sums (far above that, far below anything).
_TINY = 2.0 ** -1000


def _gamma(k: int) -> float:
    return gamma(k, _U)


def _clean(v: np.ndarray) -> np.ndarray:
    """Multipliers made usable: NaN and infinities to 0, negatives clipped to 0."""
    return np.clip(np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)


def _lagrangian_minima(costs: np.ndarray, consts: np.ndarray, Y: np.ndarray, G: np.ndarray,
                       h: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                       costs_err: np.ndarray | float = 0.0,
                       consts_err: np.ndarray | float = 0.0) -> np.ndarray:
    """Rigorous lower bounds ``(E,)`` of ``costs[e] . x + consts[e]`` over ``{lo <= x <= hi,
    G x <= h}``, from multipliers ``Y (E, K) >= 0``: for every such ``x`` the value is at
    least ``(costs[e] + G^T y) . x + consts[e] - y . h``, whose minimum over the box is
    closed form.  ``costs_err``, ``consts_err``: bounds on errors the inputs already carry.
    Float64 rounding of every step is bounded (Higham's ``gamma``, underflow ``_TINY``) and
    subtracted twice over.  This is the one place the module turns numbers into bounds."""
    K, n = G.shape
    g = costs + Y @ G
    g_err = costs_err + _gamma(K + 2) * (np.abs(costs) + Y @ np.abs(G))
    k = consts - Y @ h
    k_err = consts_err + _gamma(K + 2) * (np.abs(consts) + Y @ np.abs(h))
    reach = np.maximum(np.abs(lo), np.abs(hi))
    terms = np.minimum(g * lo, g * hi)
    value = terms.sum(1) + k
    err = (g_err @ reach + k_err + _gamma(n + 2) * (np.abs(terms).sum(1) + np.abs(k))
           + (K + 2) * (n + 2) * _TINY)
    return value - 2 * err


@dataclasses.dataclass(frozen=True)
class PolytopeBound:
    """``lower``: a rigorous lower bound of ``min_P max_r L_r`` (``+inf``: ``P`` is proven
    empty); ``point``: the LP's minimiser ``(n,)`` (a candidate to test), or None."""

    lower: float
    point: np.ndarray | None


def dual_bound(lam: np.ndarray, c: np.ndarray, G: np.ndarray, h: np.ndarray,
               lo: np.ndarray, hi: np.ndarray, w: np.ndarray, y: np.ndarray) -> float:
    """The bound ``min over the box of g . x + k`` of the module docstring, rounding
    subtracted.  ``lam (R, n)``, ``c (R,)``, ``G (K, n)``, ``h (K,)``, ``w (R,)``,
    ``y (K,)``; negative entries of ``w, y`` are clipped to 0 and ``w`` is normalised
    (all-zero ``w`` becomes uniform)."""
    w, y = _clean(w), _clean(y)
    R = lam.shape[0]
    total = float(w.sum())
    w = w / total if total > 0 else np.full(R, 1.0 / R)
    # Scaled so that the exact sum s of the stored weights is below 1; the missing
    # (1 - s) max_r L_r(x) is bounded below by (1 - s) M with M <= max_r L_r on the box.
    w = w * (1 - 4 * (R + 2) * _U)
    s_computed = float(w.sum())
    s_low, s_high = s_computed * (1 - 2 * R * _U), s_computed * (1 + 2 * R * _U)
    combined, constant = w @ lam, float(w @ c)     # sum_r w_r L_r, rounded
    bound = float(_lagrangian_minima(combined[None], np.array([constant]), y[None], G, h,
                                     lo, hi, _gamma(R + 1) * (w @ np.abs(lam)),
                                     _gamma(R + 1) * float(w @ np.abs(c)))[0])
    reach = np.maximum(np.abs(lo), np.abs(hi))
    reach_rows = np.abs(lam) @ reach + np.abs(c)
    box_rows = np.minimum(lam * lo, lam * hi).sum(1) + c
    M = float(np.max(box_rows - 2 * _gamma(lam.shape[1] + 2) * reach_rows
                     - 2 * (lam.shape[1] + 2) * _TINY))
    missing = (1 - s_low) if M < 0 else max(0.0, 1 - s_high)
    bound += missing * M - 4 * _U * abs(missing * M)
    return bound


def min_max_over_polytope(lam: np.ndarray, c: np.ndarray, G: np.ndarray, h: np.ndarray,
                          lo: np.ndarray, hi: np.ndarray) -> PolytopeBound:
    """A rigorous lower bound of ``min over P of max_r (lam_r . x + c_r)`` (module doc).

    ``lam (R, n)``, ``c (R,)`` the affine functions; ``G (K, n)``, ``h (K,)`` the cuts
    (``K`` may be 0); ``lo, hi (n,)`` the box.  Needs ``highspy``.
    """
    import highspy

    R, n = lam.shape
    K = G.shape[0]
    rows = np.zeros((R + K, n + 1))
    rows[:R, :n], rows[:R, n] = lam, -1.0
    if K:
        rows[R:, :n] = G
    h_lp = _load(rows, np.concatenate([-c, h]), np.concatenate([lo, [-math.inf]]),
                 np.concatenate([hi, [math.inf]]), np.concatenate([np.zeros(n), [1.0]]))
    h_lp.run()
    status = h_lp.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        sol = h_lp.getSolution()
        duals = -np.asarray(sol.row_dual, dtype=np.float64)
        point = np.asarray(sol.col_value, dtype=np.float64)[:n]
        return PolytopeBound(dual_bound(lam, c, G, h, lo, hi, duals[:R], duals[R:]),
                             np.clip(point, lo, hi))
    if status == highspy.HighsModelStatus.kInfeasible and K:
        _, has_ray, ray = h_lp.getDualRay()
        if has_ray:
            ray = np.asarray(ray, dtype=np.float64)[R:]
            for y in (ray, -ray):
                if _proves_empty(G, h, lo, hi, np.clip(y, 0.0, None)):
                    return PolytopeBound(math.inf, None)
    return PolytopeBound(-math.inf, None)


def _proves_empty(G: np.ndarray, h: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                  y: np.ndarray) -> bool:
    """True when ``y >= 0`` certifies ``{lo <= x <= hi, G x <= h}`` empty: for every box
    point ``y . (G x - h) > 0`` (rounding subtracted), while the cuts need it ``<= 0``."""
    if not np.any(y > 0):
        return False
    zero = np.zeros((1, G.shape[1]))
    return bool(_lagrangian_minima(zero, np.zeros(1), y[None], G, h, lo, hi)[0] > 0)


@dataclasses.dataclass(frozen=True)
class BoxBounds:
    """``lower, upper (n,)``: a box containing the polytope; ``points (2 n, n)``: the LP
    minimiser of each end solved (``x_j`` up, then down, for ``j = 0..n-1``), NaN rows
    for ends not solved."""

    lower: np.ndarray
    upper: np.ndarray
    points: np.ndarray


def bounding_box(G: np.ndarray, h: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 solve: np.ndarray | None = None) -> BoxBounds | None:
    """A box containing ``{lo <= x <= hi, G x <= h}``, or None when that polytope is proven
    empty.  ``G (K, n)`` with ``K >= 1``; ``solve (2 n,)`` bool: the ends to compute by LP
    (default all; the others stay at ``lo``/``hi``), each a :func:`linear_minima` row
    ``+x_j`` or ``-x_j``: the box never cuts a point of the polytope."""
    n = G.shape[1]
    solve = np.ones(2 * n, dtype=bool) if solve is None else np.asarray(solve, dtype=bool)
    lo, hi = lo.astype(np.float64), hi.astype(np.float64)
    points = np.full((2 * n, n), np.nan)
    if not solve.any():
        return BoxBounds(lo.copy(), hi.copy(), points)
    ends = np.flatnonzero(solve)
    costs = np.zeros((len(ends), n))
    costs[np.arange(len(ends)), ends // 2] = np.where(ends % 2 == 0, 1.0, -1.0)
    result = linear_minima(costs, G, h, lo, hi)
    if result is None:
        return None
    bounds, points[ends] = result
    new_lo, new_hi = lo.copy(), hi.copy()
    for e, bound in zip(ends, bounds):
        j = e // 2
        if e % 2 == 0:
            new_lo[j] = max(new_lo[j], bound)
        else:
            new_hi[j] = min(new_hi[j], -bound)
    if np.any(new_lo > new_hi):
        return None
    return BoxBounds(new_lo, new_hi, points)


_SOLVER = None


def _solver():
    """One HiGHS instance per process, re-loaded for every polytope (constructing one
    costs more than a warm-started solve); presolve off: on LPs of a few variables it
    costs more than it saves (1_1 property 5 by region splitting: 17.8 s -> 14.7 s)."""
    global _SOLVER
    if _SOLVER is None:
        import highspy

        _SOLVER = highspy.Highs()
        _SOLVER.setOptionValue("output_flag", False)
        _SOLVER.setOptionValue("presolve", "off")
    return _SOLVER


def _load(rows: np.ndarray, upper: np.ndarray, col_lower: np.ndarray,
          col_upper: np.ndarray, cost: np.ndarray):
    """The process's HiGHS instance holding ``min cost . v  s.t.  rows v <= upper,
    col_lower <= v <= col_upper`` (dense ``rows (K, m)``)."""
    import highspy

    K, m = rows.shape
    h_lp = _solver()
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
    h_lp.passModel(lp)
    return h_lp


def linear_minima(costs: np.ndarray, G: np.ndarray, h: np.ndarray, lo: np.ndarray,
                  hi: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Rigorous lower bounds of ``costs[e] . x`` over ``P = {lo <= x <= hi, G x <= h}``.

    ``costs (E, n)``, ``G (K, n)`` with ``K >= 1``.  Returns ``(bounds (E,), points (E,
    n))`` (the LP minimisers, NaN where not solved), or None when ``P`` is proven empty.
    One HiGHS model is re-solved, warm-started, for each objective; its duals ``y >= 0``
    give ``c . x >= c . x + y . (G x - h)`` on ``P``, minimised over the box in closed form
    with float64 rounding subtracted (:func:`_lagrangian_minima`), so each bound holds whatever
    the solver's tolerances.  An objective HiGHS does not solve keeps the box minimum."""
    import highspy

    K, n = G.shape
    h_lp = _load(G, h, lo, hi, np.zeros(n))
    idx = np.arange(n, dtype=np.int32)
    duals = np.zeros((len(costs), K))
    points = np.full((len(costs), n), np.nan)
    for row in range(len(costs)):
        h_lp.changeColsCost(n, idx, np.ascontiguousarray(costs[row], dtype=np.float64))
        h_lp.run()
        status = h_lp.getModelStatus()
        if status == highspy.HighsModelStatus.kInfeasible:
            _, has_ray, ray = h_lp.getDualRay()
            if has_ray:
                ray = np.asarray(ray, dtype=np.float64)
                for y in (ray, -ray):
                    if _proves_empty(G, h, lo, hi, np.clip(y, 0.0, None)):
                        return None
            break
        if status != highspy.HighsModelStatus.kOptimal:
            continue
        sol = h_lp.getSolution()
        duals[row] = -np.asarray(sol.row_dual, dtype=np.float64)
        points[row] = np.asarray(sol.col_value, dtype=np.float64)
    bounds = _lagrangian_minima(costs, np.zeros(len(costs)), _clean(duals), G, h, lo, hi)
    return bounds, points


def propagate_cut(g: np.ndarray, h: float, lo: np.ndarray, hi: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """The box ``[lo, hi]`` shrunk by one cut ``g . x <= h`` (interval propagation, no
    LP): ``g_j x_j <= h - sum_{i != j} min(g_i lo_i, g_i hi_i)``, with the float64 rounding
    of the sums and the division pushed outward.  None when the cut misses the box."""
    terms = np.minimum(g * lo, g * hi)
    total = float(terms.sum())
    err = 2 * _gamma(len(terms) + 2) * (float(np.abs(terms).sum()) + abs(h)) + \
        (len(terms) + 2) * _TINY
    if total - err > h:
        return None
    new_lo, new_hi = lo.copy(), hi.copy()
    room = h - (total - terms) + err            # >= h - sum_{i != j} (rounding covered)
    room = room + 4 * _U * (abs(h) + np.abs(total - terms) + err)
    with np.errstate(divide="ignore", invalid="ignore"):
        limit = room / g
    slack = 4 * _U * np.abs(limit) + 1e-300
    pos, neg = g > 0, g < 0
    new_hi[pos] = np.minimum(hi[pos], limit[pos] + slack[pos])
    new_lo[neg] = np.maximum(lo[neg], limit[neg] - slack[neg])
    if np.any(new_lo > new_hi):
        return None
    return new_lo, new_hi
