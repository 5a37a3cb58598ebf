"""The rounding constants every soundness argument cites, defined once (a leaf module:
it imports nothing from hybridver).

Model (Higham, *Accuracy and Stability of Numerical Algorithms*, 2.2): a floating-point
operation on normal numbers returns ``(x op y)(1 + delta)`` with ``|delta| <= u``, the unit
roundoff of its format.  A sum or inner product of ``k`` terms, in any order (blocked or
with FMA included), is off by at most ``gamma(k, u) * sum |terms|``.

* :data:`U64`, :data:`U32`, :data:`U_TF32`, :data:`U_BF16`: unit roundoffs of float64,
  float32, TF32 (10-bit significand, CUDA matmuls) and bfloat16 (7-bit significand).
* :func:`gamma`: Higham's ``gamma_k``.
* :data:`TINY`: the absolute allowance for underflow, which Higham's relative model leaves
  out: a product or quotient whose result is subnormal (or flushed to it) is off by up to
  half the smallest subnormal, ``2**-1075`` in float64 (sums and differences of floats are
  exact when they underflow).  ``TINY = 1e-300`` exceeds that by a factor over ``2**78``,
  so one ``TINY`` covers the underflow of up to ``2**78`` operations whose errors reach the
  result with weights at most 1 (or of fewer operations scaled by larger weights; a use
  site scales it by the weight where that is not bounded).  It also covers the absolute
  error of float64 library functions (exp, tanh, ...) on results near 0, which is a few
  ulps of a subnormal.  Sound as an allowance for the float64 value being widened only:
  cast to float32 it becomes 0, so it is never used on float32 tensors.
* :func:`round_down`, :func:`round_up`: an exact rational (a VNN-LIB constant) as the
  float64 just below / above it, the directed rounding that keeps a box or a violating set
  outward (docs/soundness.md, "VNN-LIB constants").
* :func:`dtype_round_down`, :func:`dtype_round_up`, :func:`dtype_nearest`: the same for
  the values of a float dtype (float32 for most models' inputs), and its rounding to
  nearest (ties to even, as a cast does).
* :func:`exactly_satisfied`: linear rows over float64 values checked in rationals, the
  test a counterexample must pass.
* :data:`ERR_OWN_ROUNDINGS`: the roundings, besides the ``n``-term dot products, that
  each term of the backward pass's error bound goes through when it is itself computed in
  the working dtype (casts of magnitudes and error weights, the products inside the
  relaxations' weights): at most this many, so the computed error bound times
  ``1 + 2 gamma(n + ERR_OWN_ROUNDINGS)`` is at least the exact one
  (:mod:`hybridver.bounds.crown`).
* :func:`milp_bound_margin`: how far a MILP solver's dual bound of a neuron's value is
  moved outward before it is used as an interval end (``MILP_BOUND_ABS`` plus
  ``MILP_BOUND_REL`` times its magnitude: 1000 times the solver tolerances we set,
  docs/soundness.md, "LP/MILP-tightened intermediate bounds").
* :data:`VNNCOMP_ATOL`, :data:`VNNCOMP_RTOL`: the tolerances with which VNN-COMP's scoring
  accepts another tool's counterexample (``hybridver crosscheck``); never used to claim
  ``sat`` ourselves.
* :data:`REL_SLACK`: a relative widening (``1e-12``, over ``4000 u``) for a value computed
  by a few float64 operations, e.g. a radius or a bias moved outward to cover its own
  rounding.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

__all__ = ["U64", "U32", "U_TF32", "U_BF16", "gamma", "TINY", "REL_SLACK", "ERR_OWN_ROUNDINGS",
           "RESIZE_NEAR_TIE", "MILP_BOUND_ABS", "MILP_BOUND_REL", "milp_bound_margin",
           "VNNCOMP_ATOL", "VNNCOMP_RTOL",
           "round_down", "round_up", "is_float64", "dtype_round_down", "dtype_round_up",
           "dtype_nearest", "exactly_satisfied"]

#: float64 unit roundoff.
U64 = 2.0 ** -53
#: float32 unit roundoff.
U32 = 2.0 ** -24
#: TF32 (CUDA matmuls and convolutions with ``allow_tf32``) unit roundoff.
U_TF32 = 2.0 ** -11
#: bfloat16 unit roundoff (float32 matmuls below ``"highest"`` precision may use it).
U_BF16 = 2.0 ** -8
#: Absolute underflow allowance (module docstring).
TINY = 1e-300
#: Relative widening covering the rounding of a few float64 operations.
REL_SLACK = 1e-12
#: Roundings of one backward-pass error term besides its dot product (module docstring).
ERR_OWN_ROUNDINGS = 16
#: VNN-COMP's scoring (``COUNTEREXAMPLE_ATOL``, 2022-2025): a counterexample's input may
#: leave its box by this much per coordinate, and the property's rows ``C y + d <= 0`` may
#: miss by this much, and it still counts as ``sat`` ("correct up to tolerance").  Such a
#: point shows no violation of the exact property, so it never makes another tool's
#: ``unsat`` false (docs/soundness.md, "Cross-checking other tools").
VNNCOMP_ATOL = 1e-4
#: VNN-COMP's scoring (``COUNTEREXAMPLE_RTOL``, 2022-2024): the outputs a tool writes next
#: to its counterexample may differ from onnxruntime's by this much, relative to their
#: largest magnitude (2025 ignores the written outputs).  crosscheck reports the
#: difference; it judges the point on onnxruntime's own outputs.
VNNCOMP_RTOL = 1e-3
#: A nearest-Resize source coordinate this close (relative) to a rounding boundary, but
#: not on it, may be rounded across it by onnxruntime's float32 arithmetic (a handful of
#: operations of error ``U32`` each, 256 ulps allowed): the importer refuses such a map.
RESIZE_NEAR_TIE = 256 * U32
#: Absolute and relative widening of a MILP solver's dual bound on one neuron's value
#: (the solver's feasibility tolerances are 1e-7: a trust assumption, not a proof).
MILP_BOUND_ABS = 1e-4
MILP_BOUND_REL = 1e-6


def milp_bound_margin(value: float) -> float:
    """``MILP_BOUND_ABS + MILP_BOUND_REL * |value|``: subtracted from a MILP's dual (lower)
    bound before it is used (``inf`` for a value that is not finite)."""
    return MILP_BOUND_ABS + MILP_BOUND_REL * abs(value)


def gamma(k: float, unit: float) -> float:
    """Higham's ``gamma_k = k u / (1 - k u)`` for unit roundoff ``unit``.

    ``inf`` (no claim) when ``k u >= 1/2``: the formula holds for ``k u < 1``, and the
    guard at 1/2 keeps every finite value below 1 (``gamma_k <= 2 k u``).
    """
    ku = k * unit
    return ku / (1.0 - ku) if ku < 0.5 else math.inf


def _nearest(q: Fraction | int) -> float:
    """``q`` rounded to the nearest float64, +-inf beyond the float64 range."""
    try:
        return q.numerator / q.denominator
    except OverflowError:
        return math.inf if q > 0 else -math.inf


def _sign_minus(v: float, q: Fraction) -> int:
    """The sign of ``v - q`` for a finite float ``v``, in integers (Fraction's own float
    comparison is several times slower)."""
    a, b = v.as_integer_ratio()
    left, right = a * q.denominator, q.numerator * b
    return (left > right) - (left < right)


def round_down(q: Fraction | int) -> float:
    """The largest float64 ``<= q`` (``-inf`` below the float64 range; never ``-0.0``).

    A value under half the smallest subnormal becomes ``0.0`` (q > 0) or ``-5e-324``
    (q < 0): the float just below, so ``round_down(q) <= q`` always holds exactly.
    """
    if type(q) is not Fraction:
        q = Fraction(q)
    v = _nearest(q)
    if math.isinf(v):
        return v if v < 0 else 1.7976931348623157e308
    if _sign_minus(v, q) > 0:
        v = math.nextafter(v, -math.inf)
    return v + 0.0


def round_up(q: Fraction | int) -> float:
    """The smallest float64 ``>= q`` (``inf`` above the float64 range; never ``-0.0``)."""
    if type(q) is not Fraction:
        q = Fraction(q)
    v = _nearest(q)
    if math.isinf(v):
        return v if v > 0 else -1.7976931348623157e308
    if _sign_minus(v, q) < 0:
        v = math.nextafter(v, math.inf)
    return v + 0.0


def is_float64(q: Fraction | int) -> bool:
    """Whether the rational ``q`` is a float64 number."""
    if type(q) is not Fraction:
        q = Fraction(q)
    den = q.denominator
    if den & (den - 1):  # not a power of two: never a binary float
        return False
    v = _nearest(q)
    return not math.isinf(v) and _sign_minus(v, q) == 0


def dtype_round_down(q: Fraction | int, dtype) -> float:
    """The largest value of the float ``dtype`` that is ``<= q``, as a float64.

    ``round_down(q)`` cast to ``dtype`` lands on one of the two ``dtype`` values around it;
    if above ``q``, the one below is the largest ``<= q`` (no ``dtype`` value lies in
    ``(round_down(q), q]``, as every one is a float64 number)."""
    dt = np.dtype(dtype)
    r = round_down(q)
    if dt == np.float64:
        return r
    with np.errstate(over="ignore"):
        v = dt.type(r)
    if not np.isfinite(v) or Fraction(float(v)) > Fraction(r):
        v = np.nextafter(v, dt.type(-np.inf))
    return float(v)


def dtype_round_up(q: Fraction | int, dtype) -> float:
    """The smallest value of the float ``dtype`` that is ``>= q``, as a float64."""
    return -dtype_round_down(-Fraction(q), dtype) + 0.0


def dtype_nearest(q: Fraction | int, dtype) -> float:
    """``q`` rounded to the nearest value of the float ``dtype`` (ties to the even one, as
    a cast rounds), as a float64."""
    q = Fraction(q)
    below, above = dtype_round_down(q, dtype), dtype_round_up(q, dtype)
    if below == above:
        return below
    gap_below, gap_above = q - Fraction(below), Fraction(above) - q
    if gap_below != gap_above:
        return below if gap_below < gap_above else above
    bits = np.array([below], dtype=np.dtype(dtype)).view(f"u{np.dtype(dtype).itemsize}")
    return below if int(bits[0]) % 2 == 0 else above


def exactly_satisfied(C, d, y, exact_d=()) -> bool:
    """``C y + d <= 0`` on every row, decided in exact rational arithmetic over the float64
    values of ``C (m, n)``, ``d (m,)``, ``y (n,)`` (numpy arrays; each float is a rational,
    so no rounding can make a row look met: ``y = (2**60, 1)`` does not meet
    ``y_0 + y_1 <= 2**60``, although float64 sums it to ``2**60``).  ``exact_d``:
    ``(row, Fraction)`` pairs, the exact offsets of rows whose ``d`` is a rounding of them
    (``OutputConstraints.exact_d``); they replace ``d[row]``."""
    offsets = [Fraction(float(v)) for v in d]
    for r, q in exact_d:
        offsets[r] = Fraction(q)
    for r, offset in enumerate(offsets):
        total = offset
        row = C[r]
        for j in row.nonzero()[0]:
            total += Fraction(float(row[j])) * Fraction(float(y[j]))
        if total > 0:
            return False
    return True
