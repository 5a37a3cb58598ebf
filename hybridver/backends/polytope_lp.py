"""Rigorous lower bounds of a max of affine functions over a polytope, by LP (HiGHS).

``min over x in P of max_r (lam_r . x + c_r)`` with ``P = {lo <= x <= hi, G x <= h}`` is
the LP ``min t  s.t.  lam_r . x - t <= -c_r,  G x <= h``.  HiGHS solves it in floating
point with tolerances, so its optimum is not used as a bound.  Instead its duals give
weights ``w >= 0`` (``sum w = 1``) on the rows and ``y >= 0`` on the cuts, and for every
``x`` of ``P``

    max_r L_r(x) >= sum_r w_r L_r(x) >= sum_r w_r L_r(x) + y . (G x - h) = g . x + k

with ``g = sum_r w_r lam_r + G^T y`` and ``k = sum_r w_r c_r - y . h``; its minimum over
the box, float64 rounding and underflow subtracted, is the one rigorous dual bound of
:func:`hybridver.backends.lp.dual_lower_bounds`.  Any ``w, y`` give a valid bound; good
duals give a tight one.  When HiGHS reports the LP infeasible, its dual ray ``y`` on the
cuts is checked the same way: ``min over the box of (G^T y) . x - y . h > 0`` proves ``P``
empty.  Rounding constants (``U64``, ``gamma``, ``TINY``) are :mod:`hybridver.numerics`'s.

Every LP runs in an :class:`~hybridver.backends.lp.LpSolver` the caller owns
(:func:`new_solver`, one per region-splitting run); without one, a fresh one is made.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from hybridver.backends.lp import LpSolver, LpStatus, dual_lower_bounds
from hybridver.numerics import TINY, U64, gamma


def new_solver() -> LpSolver:
    """An LP solver for this module's LPs, to be owned by one run: presolve off (on LPs of a
    few variables it costs more than it saves)."""
    return LpSolver(presolve=False)


def _clean(v: np.ndarray) -> np.ndarray:
    """Multipliers made usable: NaN and infinities to 0, negatives clipped to 0."""
    return np.clip(np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)


def _cut_minima(costs: np.ndarray, consts: np.ndarray, Y: np.ndarray, G: np.ndarray,
                h: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                costs_err: np.ndarray | float = 0.0,
                consts_err: np.ndarray | float = 0.0) -> np.ndarray:
    """Rigorous lower bounds ``(E,)`` of ``costs[e] . x + consts[e]`` over ``{lo <= x <= hi,
    G x <= h}`` from multipliers ``Y (E, K) >= 0`` on the cuts:
    :func:`~hybridver.backends.lp.dual_lower_bounds` (whose multipliers on ``<=`` rows are
    ``<= 0``, hence ``-Y``).  ``costs_err``, ``consts_err``: errors the inputs carry."""
    return dual_lower_bounds(costs, consts, -Y, G, np.full(G.shape[0], -math.inf), h, lo, hi,
                             costs_err, consts_err)


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
    w = _clean(w)
    R = lam.shape[0]
    total = float(w.sum())
    w = w / total if total > 0 else np.full(R, 1.0 / R)
    # Scaled so that the exact sum s of the stored weights is below 1; the missing
    # (1 - s) max_r L_r(x) is bounded below by (1 - s) M with M <= max_r L_r on the box.
    w = w * (1 - 4 * (R + 2) * U64)
    s_computed = float(w.sum())
    s_low, s_high = s_computed * (1 - 2 * R * U64), s_computed * (1 + 2 * R * U64)
    combined, constant = w @ lam, float(w @ c)     # sum_r w_r L_r, rounded
    bound = float(_cut_minima(combined[None], np.array([constant]), y[None], G, h,
                              lo, hi, gamma(R + 1, U64) * (w @ np.abs(lam)),
                              gamma(R + 1, U64) * float(w @ np.abs(c)))[0])
    reach = np.maximum(np.abs(lo), np.abs(hi))
    reach_rows = np.abs(lam) @ reach + np.abs(c)
    box_rows = np.minimum(lam * lo, lam * hi).sum(1) + c
    M = float(np.max(box_rows - 2 * gamma(lam.shape[1] + 2, U64) * reach_rows
                     - 2 * (lam.shape[1] + 2) * TINY))
    missing = (1 - s_low) if M < 0 else max(0.0, 1 - s_high)
    bound += missing * M - 4 * U64 * abs(missing * M)
    return bound


def min_max_over_polytope(lam: np.ndarray, c: np.ndarray, G: np.ndarray, h: np.ndarray,
                          lo: np.ndarray, hi: np.ndarray, solver: LpSolver | None = None
                          ) -> PolytopeBound:
    """A rigorous lower bound of ``min over P of max_r (lam_r . x + c_r)`` (module doc).

    ``lam (R, n)``, ``c (R,)`` the affine functions; ``G (K, n)``, ``h (K,)`` the cuts
    (``K`` may be 0); ``lo, hi (n,)`` the box.  Needs ``highspy``.
    """
    solver = solver if solver is not None else new_solver()
    R, n = lam.shape
    K = G.shape[0]
    rows = np.zeros((R + K, n + 1))
    rows[:R, :n], rows[:R, n] = lam, -1.0
    if K:
        rows[R:, :n] = G
    solver.load_dense(rows, np.concatenate([-c, h]), np.concatenate([lo, [-math.inf]]),
                      np.concatenate([hi, [math.inf]]), np.concatenate([np.zeros(n), [1.0]]))
    status = solver.run()
    if status is LpStatus.OPTIMAL:
        duals = -solver.row_duals()
        point = solver.col_values()[:n]
        return PolytopeBound(dual_bound(lam, c, G, h, lo, hi, duals[:R], duals[R:]),
                             np.clip(point, lo, hi))
    if status is LpStatus.INFEASIBLE and K:
        ray = solver.dual_ray()
        if ray is not None:
            ray = ray[R:]
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
    return bool(_cut_minima(zero, np.zeros(1), y[None], G, h, lo, hi)[0] > 0)


@dataclasses.dataclass(frozen=True)
class BoxBounds:
    """``lower, upper (n,)``: a box containing the polytope; ``points (2 n, n)``: the LP
    minimiser of each end solved (``x_j`` up, then down, for ``j = 0..n-1``), NaN rows
    for ends not solved."""

    lower: np.ndarray
    upper: np.ndarray
    points: np.ndarray


def bounding_box(G: np.ndarray, h: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 solve: np.ndarray | None = None, solver: LpSolver | None = None
                 ) -> BoxBounds | None:
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
    result = linear_minima(costs, G, h, lo, hi, solver)
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


def linear_minima(costs: np.ndarray, G: np.ndarray, h: np.ndarray, lo: np.ndarray,
                  hi: np.ndarray, solver: LpSolver | None = None
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """Rigorous lower bounds of ``costs[e] . x`` over ``P = {lo <= x <= hi, G x <= h}``.

    ``costs (E, n)``, ``G (K, n)`` with ``K >= 1``.  Returns ``(bounds (E,), points (E,
    n))`` (the LP minimisers, NaN where not solved), or None when ``P`` is proven empty.
    One HiGHS model is re-solved, warm-started, for each objective; its duals ``y >= 0``
    give ``c . x >= c . x + y . (G x - h)`` on ``P``, minimised over the box in closed form
    with float64 rounding subtracted (:func:`_cut_minima`), so each bound holds whatever
    the solver's tolerances.  An objective HiGHS does not solve keeps the box minimum."""
    solver = solver if solver is not None else new_solver()
    K, n = G.shape
    solver.load_dense(G, h, lo, hi, np.zeros(n))
    idx = np.arange(n, dtype=np.int32)
    duals = np.zeros((len(costs), K))
    points = np.full((len(costs), n), np.nan)
    for row in range(len(costs)):
        solver.set_costs(idx, costs[row])
        status = solver.run()
        if status is LpStatus.INFEASIBLE:
            ray = solver.dual_ray()
            if ray is not None:
                for y in (ray, -ray):
                    if _proves_empty(G, h, lo, hi, np.clip(y, 0.0, None)):
                        return None
            break
        if status is not LpStatus.OPTIMAL:
            continue
        duals[row] = -solver.row_duals()
        points[row] = solver.col_values()
    bounds = _cut_minima(costs, np.zeros(len(costs)), _clean(duals), G, h, lo, hi)
    return bounds, points


def propagate_cut(g: np.ndarray, h: float, lo: np.ndarray, hi: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """The box ``[lo, hi]`` shrunk by one cut ``g . x <= h`` (interval propagation, no
    LP): ``g_j x_j <= h - sum_{i != j} min(g_i lo_i, g_i hi_i)``, with the float64 rounding
    of the sums and the division pushed outward.  None when the cut misses the box."""
    terms = np.minimum(g * lo, g * hi)
    total = float(terms.sum())
    err = 2 * gamma(len(terms) + 2, U64) * (float(np.abs(terms).sum()) + abs(h)) + \
        (len(terms) + 2) * TINY
    if total - err > h:
        return None
    new_lo, new_hi = lo.copy(), hi.copy()
    room = h - (total - terms) + err            # >= h - sum_{i != j} (rounding covered)
    room = room + 4 * U64 * (abs(h) + np.abs(total - terms) + err)
    with np.errstate(divide="ignore", invalid="ignore"):
        limit = room / g
    slack = 4 * U64 * np.abs(limit) + TINY
    pos, neg = g > 0, g < 0
    new_hi[pos] = np.minimum(hi[pos], limit[pos] + slack[pos])
    new_lo[neg] = np.maximum(lo[neg], limit[neg] - slack[neg])
    if np.any(new_lo > new_hi):
        return None
    return new_lo, new_hi
