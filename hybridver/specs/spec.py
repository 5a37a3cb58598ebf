"""Immutable property types: input boxes, linear output constraints, cases, specs.

Conventions (the "unsafe set" convention of VNN-LIB):

* Everything is over the FLATTENED model input ``x`` (``n_inputs`` entries, row-major, as
  ``numpy.ravel`` gives it) and the flattened model output ``y`` (``n_outputs`` entries).
* A :class:`Spec` describes what a COUNTEREXAMPLE satisfies.  The property is violated
  (VNN-LIB ``sat``) iff some :class:`SpecCase` has a counterexample; ``unsat`` means the
  property is verified.
* A :class:`SpecCase` pairs an input region (an :class:`InputBox`) with an output
  condition that is a DISJUNCTION of :class:`OutputConstraints`; each of those is a
  CONJUNCTION of linear rows ``C @ y + d <= 0``.
* A case with zero disjuncts has the output condition ``true``: every point of its
  region is a counterexample.  (This is deliberately NOT the empty-``or`` reading, which
  would be ``false``.)  An :class:`OutputConstraints` with zero rows is also ``true``;
  a case that holds one is normalized to zero disjuncts so there is one representation.
* A :class:`Spec` with zero cases can never be violated (the property holds vacuously).

All arrays are float64 copies, made read-only; the classes are frozen dataclasses.
Equality compares the numbers exactly (``Spec.name`` is a label and is not compared).

Exact constants: a bound or offset that is not a float64 number (VNN-LIB ``0.1``) is kept
as a :class:`~fractions.Fraction` next to its float64 array, which holds it rounded
OUTWARD: :attr:`InputBox.exact_lower` beside ``lower`` rounded down, ``exact_upper``
beside ``upper`` rounded up, :attr:`OutputConstraints.exact_d` beside ``d`` rounded down
(a smaller ``d`` only enlarges the violating set ``C y + d <= 0``).  Proofs use the float
arrays, which cover the exact sets; a counterexample is checked against the exact values
(docs/soundness.md, "VNN-LIB constants").
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from hybridver.errors import DimensionMismatchError
from hybridver.numerics import exactly_satisfied, is_float64, round_down, round_up

__all__ = ["InputBox", "OutputConstraints", "SpecCase", "Spec"]


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


@dataclass(frozen=True, eq=False)
class SpecCase:
    """Input region plus a disjunction of output conjunctions.

    A counterexample of this case is an ``x`` in ``region`` whose output satisfies at least
    one disjunct.  ``disjuncts == ()`` means the output condition is ``true``.
    """

    region: InputBox
    disjuncts: tuple[OutputConstraints, ...] = ()

    def __post_init__(self):
        if not isinstance(self.region, InputBox):
            raise TypeError("SpecCase.region must be an InputBox")
        disj = tuple(self.disjuncts)
        for k, dj in enumerate(disj):
            if not isinstance(dj, OutputConstraints):
                raise TypeError(f"SpecCase.disjuncts[{k}] must be OutputConstraints")
            if dj.n_outputs != disj[0].n_outputs:
                raise ValueError("SpecCase disjuncts have different output sizes: "
                                 f"{disj[0].n_outputs} and {dj.n_outputs}")
        if any(dj.n_rows == 0 for dj in disj):
            disj = ()  # an empty conjunction is `true` and absorbs the whole disjunction
        object.__setattr__(self, "disjuncts", disj)

    @property
    def output_is_true(self) -> bool:
        """True when every output is acceptable to a counterexample (no disjuncts)."""
        return len(self.disjuncts) == 0

    def violation_margin(self, y):
        """``min`` over disjuncts of their margins; ``<= 0`` iff ``y`` meets the output
        condition.  ``-inf`` when the condition is ``true``.  Batched like
        :meth:`OutputConstraints.violation_margin`."""
        if self.output_is_true:
            arr = np.asarray(y, dtype=np.float64)
            return -np.inf if arr.ndim <= 1 else np.full(arr.shape[0], -np.inf)
        margins = [dj.violation_margin(y) for dj in self.disjuncts]
        if np.ndim(margins[0]) == 0:
            return float(min(margins))
        return np.min(np.stack(margins), axis=0)

    def output_satisfied(self, y):
        """Whether ``y`` satisfies at least one disjunct (exactly, no tolerance)."""
        m = self.violation_margin(y)
        return bool(m <= 0.0) if np.ndim(m) == 0 else m <= 0.0

    def is_counterexample(self, x, y, tol: float = 0.0) -> bool:
        """One point: ``x`` in the region (widened by ``tol``) and ``y`` meets the output
        condition, decided exactly (``tol`` never loosens the output check)."""
        if not (self.region.contains(x, tol) and self.output_satisfied(y)):
            return False
        return self.output_is_true or any(dj.exactly_satisfied(y) for dj in self.disjuncts)

    def __eq__(self, other):
        if not isinstance(other, SpecCase):
            return NotImplemented
        return self.region == other.region and self.disjuncts == other.disjuncts

    def __hash__(self):
        return hash((self.region, self.disjuncts))

    def __repr__(self):
        out = "true" if self.output_is_true else f"{len(self.disjuncts)} disjuncts"
        return f"SpecCase(region={self.region!r}, output={out})"


@dataclass(frozen=True, eq=False)
class Spec:
    """A property in the unsafe-set convention.

    The property is VIOLATED (VNN-LIB ``sat``) iff some case in ``cases`` has a
    counterexample; it holds (``unsat``) otherwise.  ``n_inputs``/``n_outputs`` are the
    flattened sizes the model must have.  ``name`` is a label only.
    """

    cases: tuple[SpecCase, ...]
    n_inputs: int
    n_outputs: int
    name: str = ""

    def __post_init__(self):
        cases = tuple(self.cases)
        n_in, n_out = int(self.n_inputs), int(self.n_outputs)
        if n_in < 1 or n_out < 1:
            raise ValueError(f"Spec needs n_inputs >= 1 and n_outputs >= 1, got "
                             f"{n_in} and {n_out}")
        for k, case in enumerate(cases):
            if not isinstance(case, SpecCase):
                raise TypeError(f"Spec.cases[{k}] must be a SpecCase")
            if case.region.n != n_in:
                raise DimensionMismatchError(
                    f"Spec case {k}: input box has {case.region.n} entries, "
                    f"the spec has {n_in} inputs")
            for dj in case.disjuncts:
                if dj.n_outputs != n_out:
                    raise DimensionMismatchError(
                        f"Spec case {k}: output constraints have {dj.n_outputs} columns, "
                        f"the spec has {n_out} outputs")
        object.__setattr__(self, "cases", cases)
        object.__setattr__(self, "n_inputs", n_in)
        object.__setattr__(self, "n_outputs", n_out)
        object.__setattr__(self, "name", str(self.name))

    def is_counterexample(self, x, y, tol: float = 0.0) -> bool:
        """Whether (x, y) witnesses a violation of the property.

        ``x``: the flattened input (any shape with ``n_inputs`` entries is flattened);
        ``y``: the flattened output the model gives for ``x``.  ``tol`` (>= 0) widens the
        INPUT REGION check only, to absorb rounding of ``x`` (e.g. a counterexample that
        went through float32 or a text file); the output check is always exact, so a
        reported counterexample really meets the output condition.
        """
        xa = np.asarray(x, dtype=np.float64).ravel()
        ya = np.asarray(y, dtype=np.float64).ravel()
        if xa.size != self.n_inputs:
            raise DimensionMismatchError(
                f"input has {xa.size} entries, the spec has {self.n_inputs} inputs")
        if ya.size != self.n_outputs:
            raise DimensionMismatchError(
                f"output has {ya.size} entries, the spec has {self.n_outputs} outputs")
        return any(case.is_counterexample(xa, ya, tol) for case in self.cases)

    def check_dimensions(self, n_inputs: int, n_outputs: int) -> None:
        """Raise :class:`DimensionMismatchError` unless the model sizes match the spec."""
        problems = []
        if int(n_inputs) != self.n_inputs:
            problems.append(f"the spec has {self.n_inputs} input variables "
                            f"(X_0..X_{self.n_inputs - 1}) but the model has "
                            f"{int(n_inputs)} inputs")
        if int(n_outputs) != self.n_outputs:
            problems.append(f"the spec has {self.n_outputs} output variables "
                            f"(Y_0..Y_{self.n_outputs - 1}) but the model has "
                            f"{int(n_outputs)} outputs")
        if problems:
            label = f"spec '{self.name}': " if self.name else ""
            raise DimensionMismatchError(label + "; ".join(problems))

    def bounding_box(self) -> InputBox:
        """The smallest box containing every case's region (requires at least one case)."""
        if not self.cases:
            raise ValueError("a spec with no cases has no input region")
        lo = np.min(np.stack([c.region.lower for c in self.cases]), axis=0)
        hi = np.max(np.stack([c.region.upper for c in self.cases]), axis=0)
        return InputBox(lo, hi)

    def __eq__(self, other):
        if not isinstance(other, Spec):
            return NotImplemented
        return (self.n_inputs == other.n_inputs and self.n_outputs == other.n_outputs
                and self.cases == other.cases)

    def __hash__(self):
        return hash((self.n_inputs, self.n_outputs, self.cases))

    def __repr__(self):
        label = f"name={self.name!r}, " if self.name else ""
        return (f"Spec({label}n_inputs={self.n_inputs}, n_outputs={self.n_outputs}, "
                f"cases={len(self.cases)})")
