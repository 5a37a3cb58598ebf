"""VNN-LIB reader and writer.

The reader handles the subset of SMT-LIB that VNN-COMP benchmarks use:

* ``(declare-const X_i Real)`` for the flattened inputs and ``(declare-const Y_j Real)``
  for the flattened outputs (``(declare-fun X_i () Real)`` is accepted too).  Indices must
  be contiguous from 0; names other than ``X_<int>``/``Y_<int>`` are rejected.
* ``(assert F)``; all assertions are conjoined.  ``F`` is built from ``and``, ``or``,
  ``not``, ``true``, ``false`` and the relations ``<=``, ``>=``, ``<``, ``>``, ``=``
  (chained forms such as ``(<= a b c)`` mean ``a <= b and b <= c``).
* Linear terms: numbers (decimal or exponent notation: ``1``, ``-0.5``, ``1e-3``,
  ``-2.5E+01``), declared variables, ``(+ a b ...)``, ``(- a)``, ``(- a b ...)``,
  ``(* c t)``/``(* t c)`` (any number of constant factors and at most one non-constant),
  ``(/ t c)`` with constant ``c != 0``.  Variables may appear on either side.
* Comments start with ``;`` and run to the end of the line.  ``set-logic``,
  ``set-info``, ``set-option``, ``check-sat``, ``get-model``, ``get-value`` and ``exit``
  are accepted and ignored.

Semantics: the conjunction of the assertions is converted to disjunctive normal form
(DNF) over atoms.  Each atom is normalized to ``sum(a_v * v) + c <= 0``:

* atoms over a single input variable bound that variable (``X_i <= 2``,
  ``(>= (* -2 X_0) -2)``, ``(<= 0 X_1)``...) and tighten the input box of the DNF term;
* atoms over output variables only become output rows ``C y + d <= 0``;
* atoms without variables are evaluated (a false one removes its DNF term);
* atoms that combine several input variables, or inputs with outputs, are REJECTED with a
  :class:`~hybridver.errors.SpecError` at the atom's position: the Spec types describe
  input regions as boxes only.

Each DNF term becomes a case (its box, and its output rows as one disjunct).  Terms with
identical boxes are merged into one :class:`~hybridver.specs.spec.SpecCase` whose
disjuncts are the terms' output conjunctions in order of appearance; a term without
output atoms makes the output condition of its case ``true``.  Every ``X_i`` must have a
lower and an upper bound in every term.  Terms whose box is empty are dropped (a warning
is issued if that leaves no case: the property then holds vacuously).

Strict inequalities ``<``/``>`` are read as ``<=``/``>=``.  This is the standard VNN-COMP
convention (the competition's tools and scripts all do it) and it is conservative for
verification: the unsafe set only grows by its boundary, so ``unsat`` stays sound.  A
consequence is that ``(not (= a b))`` reads as ``a <= b or a >= b``, i.e. ``true``.

Numbers are read EXACTLY (integers, decimals, exponent notation, subnormal and
long decimals alike) and arithmetic inside compound terms is exact (rational).  A bound
or offset that is not a float64 number is rounded OUTWARD into the Spec's float64 arrays
(input lower bounds down, upper bounds up, the offset ``d`` of an output row ``C y + d <=
0`` down: the float sets contain the exact ones, so ``unsat`` over them covers the exact
property) and kept exact beside them, where confirmation reads it (a counterexample must
lie in the exact box and meet the exact rows).  ``(<= X_0 0.1)`` thus gives the upper
bound ``0.1`` rounded up, not to nearest.  Output-row coefficients must be float64
numbers, possibly after dividing the row by one of them (``(<= (* 0.1 Y_0) 0.3)`` is
``Y_0 <= 3``); other rows are refused.  Numbers beyond the float64 range (``1e400``) and
exponents beyond +-10000 are refused; ``1e-400`` is a positive bound whose float64 lower
rounding is ``0.0`` and upper rounding the smallest subnormal ``5e-324``.

Every syntax or semantic error raises :class:`~hybridver.errors.SpecError` with the file
path and the 1-based line and column of the offending token; model-size mismatches raise
:class:`~hybridver.errors.DimensionMismatchError`.
"""

from __future__ import annotations

import gc
import gzip
import os
import zlib
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np

from hybridver.errors import SpecError
from hybridver.specs.spec import OutputConstraints, Spec
from hybridver.specs.vnnlib_build import build
from hybridver.specs.vnnlib_parse import MAX_DNF_TERMS, Parser

__all__ = ["parse_vnnlib", "load_vnnlib", "format_vnnlib", "write_vnnlib",
           "MAX_DNF_TERMS"]


# -------------------------------------------------------------------- public reader API
def _spec_name(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".vnnlib"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _parse_text(text: str, path: str, name: str, n_inputs, n_outputs) -> Spec:
    # Large files create millions of small tuples and lists; the cyclic garbage collector
    # would rescan them over and over (3-4x the parse time), and they hold no cycles.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        parser = Parser(text, path)
        parser.parse()
        return build(parser, name, n_inputs, n_outputs)
    finally:
        if gc_was_enabled:
            gc.enable()


def load_vnnlib(path, *, n_inputs: int | None = None,
                n_outputs: int | None = None) -> Spec:
    """Read a ``.vnnlib`` or gzip-compressed ``.vnnlib.gz`` file into a :class:`Spec`.

    Gzip is recognized by its magic bytes, whatever the file name.  ``n_inputs`` /
    ``n_outputs``, when given, must equal the declared numbers of ``X_i`` / ``Y_j``
    (else :class:`DimensionMismatchError`).  A missing or unreadable file raises
    :class:`SpecError` naming the path.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise SpecError("VNN-LIB file not found", str(p)) from None
    except OSError as exc:
        raise SpecError(f"cannot read VNN-LIB file: {exc.strerror or exc}", str(p)) from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise SpecError(f"corrupt gzip data: {exc}", str(p)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(f"not UTF-8 text (byte {exc.start})", str(p)) from None
    return _parse_text(text, str(p), _spec_name(p), n_inputs, n_outputs)


def parse_vnnlib(path_or_text, *, n_inputs: int | None = None,
                 n_outputs: int | None = None) -> Spec:
    """Parse VNN-LIB from a path or from the text itself.

    A :class:`os.PathLike` is always a path; a ``str`` is taken as VNN-LIB text when it
    contains ``(`` or a newline, and as a path otherwise (pass a :class:`pathlib.Path` to
    be unambiguous); ``bytes`` are UTF-8 text.  See :func:`load_vnnlib` for the size
    checks and the module docstring for the accepted language.
    """
    if isinstance(path_or_text, os.PathLike):
        return load_vnnlib(path_or_text, n_inputs=n_inputs, n_outputs=n_outputs)
    if isinstance(path_or_text, (bytes, bytearray)):
        try:
            path_or_text = bytes(path_or_text).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SpecError(f"not UTF-8 text (byte {exc.start})") from None
    if not isinstance(path_or_text, str):
        raise TypeError("parse_vnnlib expects a path or VNN-LIB text, got "
                        f"{type(path_or_text).__name__}")
    if "(" not in path_or_text and "\n" not in path_or_text and path_or_text.strip():
        return load_vnnlib(path_or_text, n_inputs=n_inputs, n_outputs=n_outputs)
    return _parse_text(path_or_text, "", "", n_inputs, n_outputs)


# -------------------------------------------------------------------- writer
def _num(v) -> str:
    """The exact value of a float or Fraction as VNN-LIB text: a float's ``repr`` where
    that is exact (``0.5``), else the exact decimal of its value (the reader reads text
    exactly, so ``repr(0.1)`` would be the decimal 0.1, not the float), or ``(/ p q)``."""
    if type(v) is not Fraction:
        text = repr(float(v))
        if Decimal(text) == v:
            return text
        v = Fraction(float(v))
    p, q = v.numerator, v.denominator
    twos, fives, rest = 0, 0, q
    while rest % 2 == 0:
        rest, twos = rest // 2, twos + 1
    while rest % 5 == 0:
        rest, fives = rest // 5, fives + 1
    if rest != 1:
        return f"(/ {p} {q})" if p >= 0 else f"(- (/ {-p} {q}))"
    scale = max(twos, fives)
    digits = str(abs(p) * (10 ** scale // q)).rjust(scale + 1, "0")
    text = digits[:len(digits) - scale] + "." + (digits[len(digits) - scale:] or "0")
    return ("-" if p < 0 else "") + text


def _bounds(box) -> tuple[list, list]:
    """The exact lower and upper bounds of ``box``: floats, and Fractions where kept."""
    lower, upper = [float(v) for v in box.lower], [float(v) for v in box.upper]
    for i, q in box.exact_lower:
        lower[i] = q
    for i, q in box.exact_upper:
        upper[i] = q
    return lower, upper


def _row_text(c: np.ndarray, d) -> str:
    """One row ``c @ y + d <= 0`` in the usual VNN-LIB style, exact under re-parsing."""
    nz = [int(j) for j in np.nonzero(c)[0]]
    if len(nz) == 1:
        j = nz[0]
        if c[j] == 1.0:
            return f"(<= Y_{j} {_num(-d)})"
        if c[j] == -1.0:
            return f"(>= Y_{j} {_num(d)})"
    if len(nz) == 2 and d == 0.0 and {float(c[nz[0]]), float(c[nz[1]])} == {1.0, -1.0}:
        p, q = (nz[0], nz[1]) if c[nz[0]] == 1.0 else (nz[1], nz[0])
        return f"(<= Y_{p} Y_{q})"
    parts = []
    for j in nz:
        a = float(c[j])
        parts.append(f"Y_{j}" if a == 1.0 else f"(- Y_{j})" if a == -1.0
                     else f"(* {_num(a)} Y_{j})")
    if not parts:
        lhs = "0.0"
    elif len(parts) == 1:
        lhs = parts[0]
    else:
        lhs = "(+ " + " ".join(parts) + ")"
    return f"(<= {lhs} {_num(-d)})"


def _conj_text(dj: OutputConstraints) -> str:
    offsets = dj.exact_offsets()
    return "(and " + " ".join(_row_text(dj.C[r], offsets[r])
                              for r in range(dj.n_rows)) + ")"


def format_vnnlib(spec: Spec) -> str:
    """The VNN-LIB text of ``spec`` (see :func:`write_vnnlib`)."""
    out = []
    if spec.name:
        out.append("; " + " ".join(spec.name.splitlines()))
    out.append("; written by hybridver; a counterexample is an input in the region(s) "
               "whose output meets the output condition")
    out.extend(f"(declare-const X_{i} Real)" for i in range(spec.n_inputs))
    out.extend(f"(declare-const Y_{j} Real)" for j in range(spec.n_outputs))
    if not spec.cases:
        out.append("; no case: the property holds vacuously")
        out.append("(assert false)")
    elif len(spec.cases) == 1:
        case = spec.cases[0]
        out.append("; input region")
        for i, (lo, hi) in enumerate(zip(*_bounds(case.region))):
            out.append(f"(assert (<= X_{i} {_num(hi)}))")
            out.append(f"(assert (>= X_{i} {_num(lo)}))")
        if case.output_is_true:
            out.append("; output condition: true (every input in the region is a "
                       "counterexample)")
        else:
            out.append("; output condition (one conjunction per line)")
            out.append("(assert (or")
            out.extend(f"    {_conj_text(dj)}" for dj in case.disjuncts)
            out.append("))")
    else:
        out.append("; one input region (and its output condition) per line")
        out.append("(assert (or")
        for case in spec.cases:
            box = " ".join(f"(>= X_{i} {_num(lo)}) (<= X_{i} {_num(hi)})"
                           for i, (lo, hi) in enumerate(zip(*_bounds(case.region))))
            if case.output_is_true:
                out.append(f"    (and {box})")
            elif len(case.disjuncts) == 1:
                out.append(f"    (and {box} {_conj_text(case.disjuncts[0])[5:-1]})")
            else:
                alts = " ".join(_conj_text(dj) for dj in case.disjuncts)
                out.append(f"    (and {box} (or {alts}))")
        out.append("))")
    return "\n".join(out) + "\n"


def write_vnnlib(spec: Spec, path) -> Path:
    """Write ``spec`` as VNN-LIB in the standard VNN-COMP style; ``.gz`` paths are gzipped.

    One case: declarations, one ``(assert (<= X_i u))``/``(assert (>= X_i l))`` pair per
    input, then ``(assert (or (and rows...) ...))`` with one conjunction per disjunct.
    Several cases: ``(assert (or (and X-bounds... Y-rows...) ...))``, one line per case
    (a case with several disjuncts nests an ``or`` after its bounds).  Floats are written
    with ``repr`` and exact values (kept beside outward-rounded ones) as exact decimals
    or ``(/ p q)``, so ``parse_vnnlib(path) == spec`` exactly, except for specs the reader
    would normalize: two cases with identical boxes (merged on reading) and output rows
    whose coefficients are all zero (evaluated on reading).  Returns the path.
    """
    p = Path(path)
    text = format_vnnlib(spec)
    if p.name.endswith(".gz"):
        with gzip.open(p, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p

