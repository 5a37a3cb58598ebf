"""The two sets a spec case pairs: an input box and a conjunction of linear output rows.

Both hold read-only float64 arrays and, for the constants that are not float64 numbers
(VNN-LIB ``0.1``), the exact values as :class:`~fractions.Fraction` beside their outward
roundings (see :mod:`hybridver.specs.spec` and docs/soundness.md, "VNN-LIB constants").
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from hybridver.errors import DimensionMismatchError
from hybridver.numerics import exactly_satisfied, is_float64, round_down, round_up

__all__ = ["InputBox", "OutputConstraints"]


def _frozen_array(value, name: str, ndim: int) -> np.ndarray:
    try:
        arr = np.array(value, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no inf/nan)")
    arr.setflags(write=False)
    return arr


def _as_points(v, n: int, what: str) -> tuple[np.ndarray, bool]:
    """``v`` as a (batch, n) float64 array and whether it was a single point."""
    arr = np.asarray(v, dtype=np.float64)
    if arr.ndim == 1:
        if arr.shape[0] != n:
            raise DimensionMismatchError(f"{what} has {arr.shape[0]} entries, expected {n}")
        return arr[None, :], True
    if arr.ndim == 2:
        if arr.shape[1] != n:
            raise DimensionMismatchError(
                f"{what} has {arr.shape[1]} entries per row, expected {n}")
        return arr, False
    raise DimensionMismatchError(f"{what} must have shape ({n},) or (batch, {n}), "
                                 f"got {arr.shape}")


def _exact_entries(pairs, rounded: np.ndarray, rounding, name: str) -> tuple:
    """``pairs`` ``(index, Fraction)`` checked against ``rounded``: sorted, one per index,
    each exact value not a float64 and ``rounded[index] == rounding(value)``."""
    out = sorted((int(i), q if type(q) is Fraction else Fraction(q)) for i, q in pairs)
    n = rounded.shape[0]
    if out and (out[0][0] < 0 or out[-1][0] >= n
                or any(a[0] == b[0] for a, b in zip(out, out[1:]))):
        raise ValueError(f"{name}: indices must be distinct and in 0..{n - 1}")
    values = rounded.tolist()
    for i, q in out:
        if values[i] != rounding(q) or is_float64(q):
            raise ValueError(f"{name}[{i}]: {values[i]!r} is not the outward rounding of "
                             f"the exact value {q} (or that value is a float64 number)")
    return tuple(out)


@dataclass(frozen=True, eq=False)
class InputBox:
    """Axis-aligned box ``lower <= x <= upper`` over the flattened input.

    ``lower``, ``upper``: shape ``(n_in,)``, finite float64, ``lower <= upper``.
    ``exact_lower`` / ``exact_upper``: ``(index, Fraction)`` pairs for the bounds that are
    not float64 numbers; the box is then the exact one, and ``lower[index]`` /
    ``upper[index]`` must be that value rounded down / up (the float box contains it).
    """

    lower: np.ndarray
    upper: np.ndarray
    exact_lower: tuple[tuple[int, Fraction], ...] = ()
    exact_upper: tuple[tuple[int, Fraction], ...] = ()

    def __post_init__(self):
        lo = _frozen_array(self.lower, "InputBox.lower", 1)
        hi = _frozen_array(self.upper, "InputBox.upper", 1)
        if lo.shape != hi.shape:
            raise ValueError(f"InputBox bounds differ in length: {lo.shape[0]} lower, "
                             f"{hi.shape[0]} upper")
        bad = np.nonzero(lo > hi)[0]
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"InputBox is empty: lower[{i}] = {lo[i]!r} > "
                             f"upper[{i}] = {hi[i]!r} ({bad.size} such entries)")
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)
        ex_lo = _exact_entries(self.exact_lower, lo, round_down, "InputBox.exact_lower")
        ex_hi = _exact_entries(self.exact_upper, hi, round_up, "InputBox.exact_upper")
        object.__setattr__(self, "exact_lower", ex_lo)
        object.__setattr__(self, "exact_upper", ex_hi)
        # A float x is >= q iff x > round_down(q) when q is not a float: the exact bounds
        # are open bounds on the float ones.
        object.__setattr__(self, "_open_lower", np.array([i for i, _ in ex_lo], dtype=int))
        object.__setattr__(self, "_open_upper", np.array([i for i, _ in ex_hi], dtype=int))

    @property
    def is_exact(self) -> bool:
        """Whether ``lower``/``upper`` are the bounds themselves (no exact pairs)."""
        return not (self.exact_lower or self.exact_upper)

    @property
    def n(self) -> int:
        """Number of (flattened) input entries."""
        return int(self.lower.shape[0])

    @property
    def center(self) -> np.ndarray:
        """Midpoint, shape ``(n_in,)``."""
        return (self.lower + self.upper) / 2.0

    @property
    def width(self) -> np.ndarray:
        """``upper - lower``, shape ``(n_in,)``."""
        return self.upper - self.lower

    def contains(self, x, tol: float = 0.0):
        """Whether ``x`` lies in the box widened by ``tol`` on every side.

        ``x``: ``(n_in,)`` -> bool, or ``(batch, n_in)`` -> bool array ``(batch,)``.
        NaN entries are never contained.  With ``tol == 0`` the check is exact against the
        exact bounds (a float64 point in the outward-rounded sliver is outside); with
        ``tol > 0`` the float bounds are widened.
        """
        if tol < 0:
            raise ValueError("tol must be >= 0")
        pts, single = _as_points(x, self.n, "input point")
        ok = np.all((pts >= self.lower - tol) & (pts <= self.upper + tol), axis=1)
        if tol == 0:
            lo_i, hi_i = self._open_lower, self._open_upper
            if lo_i.size:
                ok &= np.all(pts[:, lo_i] > self.lower[lo_i], axis=1)
            if hi_i.size:
                ok &= np.all(pts[:, hi_i] < self.upper[hi_i], axis=1)
        return bool(ok[0]) if single else ok

    def __eq__(self, other):
        if not isinstance(other, InputBox):
            return NotImplemented
        return (np.array_equal(self.lower, other.lower)
                and np.array_equal(self.upper, other.upper)
                and self.exact_lower == other.exact_lower
                and self.exact_upper == other.exact_upper)

    def __hash__(self):
        return hash((self.lower.tobytes(), self.upper.tobytes(), self.exact_lower,
                     self.exact_upper))

    def __repr__(self):
        return f"InputBox(n={self.n})"


@dataclass(frozen=True, eq=False)
class OutputConstraints:
    """A CONJUNCTION of rows: ``y`` satisfies it iff ``C @ y + d <= 0`` row-wise.

    ``C``: shape ``(m, n_out)``; ``d``: shape ``(m,)``; finite float64.  ``m == 0`` is
    allowed and means ``true``.  ``exact_d``: ``(row, Fraction)`` pairs for offsets that
    are not float64 numbers; ``d[row]`` must be that value rounded down, so the float rows
    are met by every output that meets the exact ones (:meth:`violation_margin` and
    :meth:`is_satisfied` use the float ``d``; confirmation uses the exact one).
    """

    C: np.ndarray
    d: np.ndarray
    exact_d: tuple[tuple[int, Fraction], ...] = ()

    def __post_init__(self):
        C = _frozen_array(self.C, "OutputConstraints.C", 2)
        d = _frozen_array(self.d, "OutputConstraints.d", 1)
        if C.shape[0] != d.shape[0]:
            raise ValueError(f"OutputConstraints: C has {C.shape[0]} rows but d has "
                             f"{d.shape[0]} entries")
        object.__setattr__(self, "C", C)
        object.__setattr__(self, "d", d)
        object.__setattr__(self, "exact_d", _exact_entries(self.exact_d, d, round_down,
                                                           "OutputConstraints.exact_d"))

    def exact_offsets(self) -> list:
        """``d`` with the exact values where they differ: floats and Fractions, ``(m,)``."""
        out = [float(v) for v in self.d]
        for r, q in self.exact_d:
            out[r] = q
        return out

    @property
    def n_rows(self) -> int:
        return int(self.C.shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.C.shape[1])

    def violation_margin(self, y):
        """``max_i (C y + d)_i``: ``<= 0`` iff ``y`` satisfies every row.

        ``y``: ``(n_out,)`` -> float, or ``(batch, n_out)`` -> array ``(batch,)``.
        With zero rows the result is ``-inf`` (always satisfied).
        """
        pts, single = _as_points(y, self.n_outputs, "output point")
        if self.n_rows == 0:
            out = np.full(pts.shape[0], -np.inf)
        else:
            out = (pts @ self.C.T + self.d).max(axis=1)
        return float(out[0]) if single else out

    def is_satisfied(self, y):
        """Whether every row holds (no tolerance).  Same shapes as :meth:`violation_margin`."""
        m = self.violation_margin(y)
        return bool(m <= 0.0) if np.ndim(m) == 0 else m <= 0.0

    def exactly_satisfied(self, y) -> bool:
        """Whether one output ``y (n_out,)`` meets every row with the EXACT offsets, in
        rational arithmetic (:func:`hybridver.numerics.exactly_satisfied`)."""
        ya = np.asarray(y, dtype=np.float64).reshape(-1)
        return exactly_satisfied(self.C, self.d, ya, self.exact_d)

    def __eq__(self, other):
        if not isinstance(other, OutputConstraints):
            return NotImplemented
        return (self.C.shape == other.C.shape and np.array_equal(self.C, other.C)
                and np.array_equal(self.d, other.d) and self.exact_d == other.exact_d)

    def __hash__(self):
        return hash((self.C.shape, self.C.tobytes(), self.d.tobytes(), self.exact_d))

    def __repr__(self):
        return f"OutputConstraints(m={self.n_rows}, n_out={self.n_outputs})"
