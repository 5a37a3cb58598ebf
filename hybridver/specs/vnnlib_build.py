"""VNN-LIB assertions (DNF terms of atoms from :mod:`hybridver.specs.vnnlib_parse`) into a
:class:`~hybridver.specs.spec.Spec`.

Bounds are combined on their exact values (floats and Fractions compare exactly); only
at the end is each one that is not a float64 number rounded, OUTWARD: an input lower bound
down, an upper bound up (the float box contains the exact one), an output offset ``d`` of
``C y + d <= 0`` down (the float rows are met by every output meeting the exact ones).
The exact values stay in the Spec for confirming counterexamples (docs/soundness.md).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from hybridver.errors import DimensionMismatchError, SpecError, VacuousSpecWarning
from hybridver.numerics import round_down, round_up
from hybridver.specs.spec import InputBox, OutputConstraints, Spec, SpecCase
from hybridver.specs.vnnlib_parse import MAX_DNF_TERMS, Parser
from hybridver.specs.vnnlib_terms import LOWER, ROW, UPPER

__all__ = ["build"]

# the "no bound yet" entries, told apart by identity
_NEG_INF = -math.inf
_POS_INF = math.inf


def build(parser: Parser, name: str, n_inputs, n_outputs) -> Spec:
    """The Spec of a parsed file: size checks, DNF of the assertions, one case per box."""
    path = parser.path
    n_x, n_y = _check_sizes(parser, n_inputs, n_outputs)
    lo0, hi0, rows0 = [_NEG_INF] * n_x, [_POS_INF] * n_x, []
    _apply_atoms(parser.global_atoms, lo0, hi0, rows0)
    if parser.false_at is not None:
        terms: list[list] = []
    else:
        terms = [[]]
        for dnf, k in parser.multi:
            if len(terms) * len(dnf) > MAX_DNF_TERMS:
                parser.fail(f"the assertions expand to more than {MAX_DNF_TERMS} DNF terms "
                            "(several top-level disjunctions); not supported", k)
            terms = dnf if terms == [[]] else [t + c for t in terms for c in dnf]

    merged: dict = {}
    box0 = key0 = None  # the global box, rounded once for the terms that add no bound
    for ti, term in enumerate(terms):
        if all(atom[0] == ROW for atom in term):
            lo, hi, rows = lo0, hi0, list(rows0) + term
            if box0 is None:
                box0 = _outward(lo0, hi0)
            box = box0
        else:
            lo, hi, rows = lo0.copy(), hi0.copy(), list(rows0)
            _apply_atoms(term, lo, hi, rows)
            box = _outward(lo, hi)
        missing = np.isinf(box[0]) | np.isinf(box[1])
        if missing.any():
            i = int(np.argmax(missing))
            side = "lower" if np.isinf(box[0][i]) else "upper"
            where = (f" in term {ti + 1} of the {len(terms)}-way input disjunction"
                     if len(terms) > 1 else "")
            raise SpecError(f"input variable X_{i} has no {side} bound{where}; every "
                            "input needs both bounds", path)
        if _is_empty(lo, hi, box):
            continue  # empty region: this term can have no counterexample
        if len(terms) == 1:
            key = None
        elif box is box0:
            key = key0 = key0 or _box_key(box0)
        else:
            key = _box_key(box)
        entry = merged.get(key)
        if entry is None:
            merged[key] = [box, [rows] if rows else None]
        elif entry[1] is not None:
            if rows:
                entry[1].append(rows)
            else:
                entry[1] = None
    if terms and not merged:
        warnings.warn(f"{path or '<spec>'}: every input region of the spec is empty; "
                      "the property holds vacuously", VacuousSpecWarning, stacklevel=4)
    for k, (_, disj) in enumerate(merged.values()):
        if disj is None:
            warnings.warn(f"{path or '<spec>'}: case {k} has no output constraint; every "
                          "point of its input region is a counterexample",
                          VacuousSpecWarning, stacklevel=4)
            break
    cases = []
    for box, disj in merged.values():
        outs = () if disj is None else tuple(_rows_to_constraints(r, n_y) for r in disj)
        cases.append(SpecCase(InputBox(*box), outs))
    return Spec(tuple(cases), n_x, n_y, name=name)


def _check_sizes(parser: Parser, n_inputs, n_outputs) -> tuple[int, int]:
    """The declared numbers of inputs and outputs, checked (contiguous indices, and equal
    to the model's sizes when those are given)."""
    path = parser.path
    n_x, n_y = len(parser.x_decl), len(parser.y_decl)
    if n_x == 0:
        raise SpecError("no input variables declared (expected "
                        "'(declare-const X_0 Real)' ...)", path)
    if n_y == 0:
        raise SpecError("no output variables declared (expected "
                        "'(declare-const Y_0 Real)' ...)", path)
    for decl, letter in ((parser.x_decl, "X"), (parser.y_decl, "Y")):
        if max(decl) != len(decl) - 1:
            missing = min(set(range(max(decl) + 1)) - set(decl))
            line, col = parser.where(decl[max(decl)])
            raise SpecError(f"{letter}_{max(decl)} is declared but {letter}_{missing} is "
                            f"not: variables must be {letter}_0 .. {letter}_<n-1>",
                            path, line, col)
    problems = []
    if n_inputs is not None and int(n_inputs) != n_x:
        problems.append(f"the spec declares {n_x} input variables (X_0..X_{n_x - 1}) "
                        f"but the model has {int(n_inputs)} inputs")
    if n_outputs is not None and int(n_outputs) != n_y:
        problems.append(f"the spec declares {n_y} output variables (Y_0..Y_{n_y - 1}) "
                        f"but the model has {int(n_outputs)} outputs")
    if problems:
        raise DimensionMismatchError(f"{path or '<spec>'}: " + "; ".join(problems))
    return n_x, n_y



def _outward(lo: list, hi: list) -> tuple:
    """The exact bounds ``lo``/``hi`` (floats and Fractions) as the arguments of an
    :class:`InputBox`: float64 arrays rounded outward, and the exact values of the bounds
    that are not float64 numbers."""
    ex_lo = [(i, v) for i, v in enumerate(lo) if type(v) is not float]
    ex_hi = [(i, v) for i, v in enumerate(hi) if type(v) is not float]
    lo, hi = list(lo), list(hi)
    for i, v in ex_lo:
        lo[i] = round_down(v)
    for i, v in ex_hi:
        hi[i] = round_up(v)
    return np.array(lo), np.array(hi), tuple(ex_lo), tuple(ex_hi)


def _is_empty(lo: list, hi: list, box: tuple) -> bool:
    """Whether some exact ``lo[i] > hi[i]``.  Outward rounding keeps ``lo_f <= lo`` and
    ``hi_f >= hi``, so ``lo_f > hi_f`` proves it, and otherwise ``lo > hi`` needs
    ``hi_f <= up(lo) <= next float after lo_f``: only those entries are compared exactly."""
    lo_f, hi_f = box[0], box[1]
    if bool(np.any(lo_f > hi_f)):
        return True
    close = np.flatnonzero(hi_f <= np.nextafter(lo_f, np.inf))
    return any(lo[i] > hi[i] for i in close.tolist())


def _box_key(box: tuple) -> tuple:
    """A hashable key equal for equal exact boxes (hashing Fractions is slow)."""
    return (box[0].tobytes(), box[1].tobytes(),
            tuple((i, q.numerator, q.denominator) for i, q in box[2]),
            tuple((i, q.numerator, q.denominator) for i, q in box[3]))


def _apply_atoms(atoms, lo: list, hi: list, rows: list) -> None:
    for atom in atoms:
        kind = atom[0]
        if kind == LOWER:
            cur = lo[atom[1]]
            if cur is _NEG_INF or atom[2] > cur:  # `is`: a Fraction compares slowly
                lo[atom[1]] = atom[2]
        elif kind == UPPER:
            cur = hi[atom[1]]
            if cur is _POS_INF or atom[2] < cur:
                hi[atom[1]] = atom[2]
        else:
            rows.append(atom)


def _rows_to_constraints(rows: list, n_y: int) -> OutputConstraints:
    """Rows ``sum(a * y_j) + c <= 0`` as ``C y + d <= 0``; an offset ``c`` that is not a
    float64 number is rounded DOWN into ``d`` (more outputs violate: sound for unsat) and
    kept exact in ``exact_d`` (for confirmation)."""
    C = np.zeros((len(rows), n_y))
    d = np.empty(len(rows))
    exact_d = []
    for r, (_, row, c) in enumerate(rows):
        for j, a in row:
            C[r, j] = a
        if type(c) is float:
            d[r] = c
        else:
            d[r] = round_down(c)
            exact_d.append((r, c))
    return OutputConstraints(C, d, tuple(exact_d))

