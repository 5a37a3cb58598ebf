"""Input bounds that admit no value of the model's input dtype, read as its nearest value.

VNN-LIB files often fix an input to a decimal printed from a float, e.g.
``X_128 >= 0.2823529541492462`` and ``X_128 <= 0.2823529541492462`` (dist_shift).  Read
exactly (docs/soundness.md, "VNN-LIB constants"), that decimal is no float32 number, so no
input the model can be given lies in the box: the property holds vacuously, and nothing can
be confirmed.  What the writer meant is the float nearest to it.

:func:`pin_to_dtype` replaces each such coordinate (an interval ``[lo, hi]``, ``lo <= hi``
exactly, holding no value of ``dtype``, whose ends have one nearest ``dtype`` value ``v``)
by the point ``lo = hi = v`` (a float, so an exact bound), and says so in one
:class:`~hybridver.errors.VacuousSpecWarning` (refused under ``--strict``).  Proof and
confirmation then both work on the pinned box, so they agree: an ``unsat`` proves the pinned
property (the written one holds vacuously anyway, over the model's inputs), and a ``sat`` is
a counterexample of the pinned property, as the warning says.  Coordinates that hold a
``dtype`` value, and empty intervals with two different nearest values, are left as they
are (the latter: no input is admitted, and none is confirmed).
"""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np

from hybridver.errors import VacuousSpecWarning
from hybridver.numerics import dtype_nearest, dtype_round_down, dtype_round_up
from hybridver.specs.regions import InputBox
from hybridver.specs.spec import Spec, SpecCase

__all__ = ["pin_to_dtype"]


def _pins(box: InputBox, dtype: np.dtype) -> dict[int, float]:
    """``{index: v}`` for the coordinates of ``box`` that hold no ``dtype`` value and have
    one nearest one ``v``."""
    exact_lo, exact_hi = dict(box.exact_lower), dict(box.exact_upper)
    # the dtype values in the float box [lower, upper] (which contains the exact one): the
    # smallest ``up`` and the largest ``down``; with three or more in it, the middle one is
    # inside the exact interval too (an exact end is at most one float64 step inside)
    with np.errstate(over="ignore"):
        lo_d, hi_d = box.lower.astype(dtype), box.upper.astype(dtype)
    inf = np.asarray(np.inf, dtype=dtype)
    up = np.where(lo_d.astype(np.float64) < box.lower, np.nextafter(lo_d, inf), lo_d)
    down = np.where(hi_d.astype(np.float64) > box.upper, np.nextafter(hi_d, -inf), hi_d)
    few = ~(np.nextafter(up, inf) < down)
    exact = np.zeros(box.n, dtype=bool)
    exact[list(set(exact_lo) | set(exact_hi))] = True
    candidates = np.nonzero((up > down) | (few & exact))[0].tolist()
    pins = {}
    for i in candidates:
        lo = exact_lo.get(i, Fraction(float(box.lower[i])))
        hi = exact_hi.get(i, Fraction(float(box.upper[i])))
        if lo > hi or dtype_round_up(lo, dtype) <= dtype_round_down(hi, dtype):
            continue
        v = dtype_nearest(lo, dtype)
        if dtype_nearest(hi, dtype) == v:
            pins[i] = v
    return pins


def _pinned_box(box: InputBox, pins: dict[int, float]) -> InputBox:
    lower, upper = box.lower.copy(), box.upper.copy()
    for i, v in pins.items():
        lower[i] = upper[i] = v
    return InputBox(lower, upper,
                    tuple((i, q) for i, q in box.exact_lower if i not in pins),
                    tuple((i, q) for i, q in box.exact_upper if i not in pins))


def pin_to_dtype(spec: Spec, dtype) -> Spec:
    """``spec`` with every coordinate whose bounds admit no ``dtype`` value pinned to the
    nearest one (module docstring); ``spec`` itself when there is none.  Warns once."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return spec
    cases, pinned = [], []
    for k, case in enumerate(spec.cases):
        pins = _pins(case.region, dtype)
        if pins:
            pinned.append((k, pins))
            case = SpecCase(_pinned_box(case.region, pins), case.disjuncts)
        cases.append(case)
    if not pinned:
        return spec
    k, pins = pinned[0]
    i, v = next(iter(pins.items()))
    count = sum(len(p) for _, p in pinned)
    warnings.warn(f"{count} input bound(s) in {len(pinned)} case(s) admit no {dtype} value "
                  f"(e.g. X_{i} in case {k}); read as the nearest {dtype} value "
                  f"(X_{i} = {v!r})", VacuousSpecWarning, stacklevel=2)
    return Spec(tuple(cases), spec.n_inputs, spec.n_outputs, spec.name)
