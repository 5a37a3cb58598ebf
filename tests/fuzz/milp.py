"""An independent MILP (highspy, written here and not through hybridver's encoder) for the
minimum of ``c . y`` over an input box, for networks of Gemm, ReLU, LeakyReLU and Abs.

It plants ``unsat`` instances for the back-end fuzzer: with ``v*`` the minimum, the unsafe
set ``c . y <= v* - m`` is empty for a margin ``m`` well above the solver's tolerances.
Each element ``y = max(z, a z)`` (``a = 0`` ReLU, ``0 < a < 1`` LeakyReLU, ``a = -1`` Abs)
with pre-activation interval ``[l, u]``, ``l < 0 < u``, gets one binary ``d``::

    y >= z,  y >= a z,  y <= z - (1 - a) l (1 - d),  y <= a z + (1 - a) u d

The intervals come from interval arithmetic in float64, widened by 1e-6 relative, so
they contain every true value and the big-M rows cut nothing off.
"""

from __future__ import annotations

import numpy as np

_SLOPES = {"relu": 0.0, "abs": -1.0}


def _interval(w, b, lo, hi):
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    c = w @ mid + b
    r = np.abs(w) @ rad
    slack = 1e-6 * (np.abs(c) + r + 1)
    return c - r - slack, c + r + slack


def box_minimum(layers, c: np.ndarray, lo: np.ndarray, hi: np.ndarray
                ) -> tuple[float, np.ndarray] | None:
    """``(v*, x*)``: the minimum of ``c . y`` over the box and a minimizer, or None when the
    network has a layer this MILP does not model or HiGHS does not report optimal."""
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 1e-9)
    h.setOptionValue("mip_abs_gap", 1e-9)
    h.setOptionValue("time_limit", 30.0)
    inf = highspy.kHighsInf

    def new_vars(lower, upper, integer=False):
        first = h.getNumCol()
        for l_i, u_i in zip(lower, upper):
            h.addVar(float(l_i), float(u_i))
        idx = list(range(first, first + len(lower)))
        if integer:
            for j in idx:
                h.changeColIntegrality(j, highspy.HighsVarType.kInteger)
        return idx

    def row(lower, upper, idx, vals):
        h.addRow(float(lower), float(upper), len(idx), np.asarray(idx, dtype=np.int32),
                 np.asarray(vals, dtype=np.float64))

    x_idx = new_vars(lo, hi)
    cur, cur_lo, cur_hi = x_idx, lo.astype(np.float64), hi.astype(np.float64)
    for layer in layers:
        if layer[0] == "gemm":
            _, w, b = layer
            z_lo, z_hi = _interval(w, b, cur_lo, cur_hi)
            z_idx = new_vars(z_lo, z_hi)
            for j, zj in enumerate(z_idx):       # z_j - W_j . cur = b_j
                row(b[j], b[j], [zj, *cur], [1.0, *(-w[j])])
            cur, cur_lo, cur_hi = z_idx, z_lo, z_hi
            continue
        if layer[0] != "act" or layer[1] not in ("relu", "leaky_relu", "abs"):
            return None
        a = layer[2].get("alpha", _SLOPES.get(layer[1], 0.0))
        f_lo, f_hi = np.maximum(cur_lo, a * cur_lo), np.maximum(cur_hi, a * cur_hi)
        y_lo = np.minimum(f_lo, f_hi)
        if a < 0:                                   # Abs: the minimum 0 is inside
            y_lo = np.where((cur_lo < 0) & (cur_hi > 0), 0.0, y_lo)
        y_hi = np.maximum(f_lo, f_hi)
        y_idx = new_vars(y_lo - 1e-9, y_hi + 1e-9)
        for zj, yj, l_j, u_j in zip(cur, y_idx, cur_lo, cur_hi):
            row(0, inf, [yj, zj], [1.0, -1.0])          # y >= z
            row(0, inf, [yj, zj], [1.0, -a])            # y >= a z
            if l_j < 0 < u_j:
                (d,) = new_vars([0.0], [1.0], integer=True)
                # y - z - (1 - a) l d <= -(1 - a) l
                row(-inf, -(1 - a) * l_j, [yj, zj, d], [1.0, -1.0, -(1 - a) * l_j])
                # y - a z - (1 - a) u d <= 0
                row(-inf, 0.0, [yj, zj, d], [1.0, -a, -(1 - a) * u_j])
            elif u_j <= 0:
                row(-inf, 0, [yj, zj], [1.0, -a])       # y = a z
            else:
                row(-inf, 0, [yj, zj], [1.0, -1.0])     # y = z
        cur, cur_lo, cur_hi = y_idx, y_lo, y_hi
    for j, cj in zip(cur, c):
        h.changeColCost(j, float(cj))
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    sol = np.asarray(h.getSolution().col_value)
    return float(h.getInfo().objective_function_value), sol[x_idx]
