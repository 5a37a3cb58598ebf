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

Arithmetic inside compound terms is exact (rational); every resulting bound and
coefficient is rounded once to the nearest float64, which for plain ``(<= X_0 0.3)`` gives
``float("0.3")`` like every other VNN-COMP tool.

Every syntax or semantic error raises :class:`~hybridver.errors.SpecError` with the file
path and the 1-based line and column of the offending token; model-size mismatches raise
:class:`~hybridver.errors.DimensionMismatchError`.
"""

from __future__ import annotations

import gc
import gzip
import itertools
import math
import operator
import os
import re
import warnings
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np

from hybridver.errors import DimensionMismatchError, SpecError, VacuousSpecWarning
from hybridver.specs.spec import InputBox, OutputConstraints, Spec, SpecCase

__all__ = ["parse_vnnlib", "load_vnnlib", "format_vnnlib", "write_vnnlib",
           "MAX_DNF_TERMS"]

#: Largest number of DNF terms the reader builds before giving up with a SpecError.
MAX_DNF_TERMS = 100_000

_TOKEN_RE = re.compile(r"[()]|[^\s()]+")
_COMMENT_RE = re.compile(r";[^\n]*")
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_VAR_RE = re.compile(r"([XY])_(0|[1-9][0-9]*)\Z")
_RELATIONS = frozenset({"<=", ">=", "<", ">", "="})
_TERM_OPS = frozenset({"+", "-", "*", "/"})
_IGNORED_COMMANDS = frozenset({"set-logic", "set-info", "set-option", "check-sat",
                               "get-model", "get-value", "exit"})
_PARENS = ("(", ")")
_ZERO = Fraction(0)
_ONE = Fraction(1)

# Atoms inside DNF terms are tuples:
#   (0, i, v)        lower bound  X_i >= v
#   (1, i, v)        upper bound  X_i <= v
#   (2, row, c)      output row   sum(a * Y_j for j, a in row) + c <= 0, row sorted by j
# Variables are keyed by int: X_i -> i, Y_j -> ~j (negative).  Numbers on the fast path
# are floats, so `type(v) is float` tells a number from a variable.
_LOWER, _UPPER, _ROW = 0, 1, 2


def _looks_numeric(tok: str) -> bool:
    c = tok[0]
    if c.isdigit():
        return True
    if c in "+-." and len(tok) > 1:
        c2 = tok[1]
        return c2.isdigit() or (c2 == "." and c != ".")
    return False


class _Parser:
    """Recursive-descent parser over a token list, building DNF bottom-up."""

    def __init__(self, text: str, path: str):
        if ";" in text:
            # A comment runs to the end of its line, so lines and columns of all remaining
            # tokens are unchanged.
            text = _COMMENT_RE.sub("", text)
        self.text = text
        self.toks = text.replace("(", " ( ").replace(")", " ) ").split()
        self.n = len(self.toks)
        self.path = path
        self.vars: dict[str, int] = {}
        self.x_decl: dict[int, int] = {}
        self.y_decl: dict[int, int] = {}
        self.nums: dict[str, float] = {}
        self.global_atoms: list[tuple] = []
        self.multi: list[tuple[list, int]] = []
        self.false_at: int | None = None

    # ---------------------------------------------------------------- errors, positions
    def where(self, k: int) -> tuple[int, int]:
        """1-based (line, column) of token ``k`` (end of input when ``k >= n``)."""
        text = self.text
        if k >= self.n:
            off = len(text.rstrip())
        else:
            m = next(itertools.islice(_TOKEN_RE.finditer(text), k, None))
            off = m.start()
        line = text.count("\n", 0, off) + 1
        col = off - (text.rfind("\n", 0, off) + 1) + 1
        return line, col

    def fail(self, message: str, k: int):
        line, col = self.where(k)
        raise SpecError(message, self.path, line, col)

    def need(self, j: int, open_k: int) -> str:
        if j >= self.n:
            self.fail("unbalanced parentheses: this '(' is never closed (reached the end "
                      "of the input, expected ')')", open_k)
        return self.toks[j]

    def close(self, j: int, open_k: int, what: str) -> None:
        t = self.need(j, open_k)
        if t != ")":
            self.fail(f"expected ')' to close '({what} ...', found {t!r}", j)

    # ---------------------------------------------------------------- commands
    def parse(self) -> None:
        toks, n = self.toks, self.n
        i = 0
        while i < n:
            t = toks[i]
            if t != "(":
                if t == ")":
                    self.fail("unbalanced parentheses: ')' without a matching '('", i)
                self.fail(f"expected '(' to start a command, found {t!r}", i)
            head = self.need(i + 1, i)
            if head == "assert":
                dnf, j = self.formula(i + 2, True, i)
                self.close(j, i, "assert")
                self.add_assertion(dnf, i)
                i = j + 1
            elif head == "declare-const":
                i = self.declare(i, False)
            elif head == "declare-fun":
                i = self.declare(i, True)
            elif head in _IGNORED_COMMANDS:
                i = self.skip(i)
            elif head in _PARENS:
                self.fail(f"expected a command name after '(', found {head!r}", i + 1)
            else:
                self.fail(f"unknown command {head!r}; expected 'declare-const' or "
                          "'assert'", i + 1)

    def skip(self, i: int) -> int:
        depth, j = 0, i
        while True:
            t = self.need(j, i)
            if t == "(":
                depth += 1
            elif t == ")":
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1

    def declare(self, i: int, fun: bool) -> int:
        what = "declare-fun" if fun else "declare-const"
        name = self.need(i + 2, i)
        if name in _PARENS:
            self.fail(f"expected a variable name after '{what}', found {name!r}", i + 2)
        j = i + 3
        if fun:
            if self.need(j, i) != "(" or self.need(j + 1, i) != ")":
                self.fail("declare-fun: only constants '(declare-fun X_0 () Real)' are "
                          "supported", j)
            j += 2
        sort = self.need(j, i)
        if sort != "Real":
            self.fail(f"unsupported sort {sort!r} for {name}; expected 'Real'", j)
        self.close(j + 1, i, what)
        m = _VAR_RE.match(name)
        if m is None:
            self.fail(f"unsupported variable name {name!r}: VNN-LIB variables are "
                      "X_<index> (inputs) and Y_<index> (outputs)", i + 2)
        if name in self.vars:
            self.fail(f"variable {name} is declared twice", i + 2)
        idx = int(m.group(2))
        if m.group(1) == "X":
            self.vars[name] = idx
            self.x_decl[idx] = i + 2
        else:
            self.vars[name] = ~idx
            self.y_decl[idx] = i + 2
        return j + 2

    def add_assertion(self, dnf: list, k: int) -> None:
        if len(dnf) == 1:
            self.global_atoms.extend(dnf[0])
        elif not dnf:
            if self.false_at is None:
                self.false_at = k
        else:
            self.multi.append((dnf, k))

    # ---------------------------------------------------------------- formulas
    def formula(self, i: int, pos: bool, parent: int) -> tuple[list, int]:
        """Parse the formula at token ``i``; return (DNF, next index).

        ``pos`` is False under an odd number of ``not``.  A DNF is a list of terms, each
        a list of atoms; ``[[]]`` is true, ``[]`` is false.
        """
        toks = self.toks
        t = self.need(i, parent)
        if t == "(":
            op = self.need(i + 1, i)
            if op in _RELATIONS:
                if (i + 4 < self.n and toks[i + 4] == ")" and toks[i + 2] not in _PARENS
                        and toks[i + 3] not in _PARENS):
                    return self.simple_relation(op, i, pos), i + 5
                return self.relation(op, i, pos)
            if op == "and" or op == "or":
                children = []
                j = i + 2
                n = self.n
                while True:
                    t = toks[j] if j < n else self.need(j, i)
                    if t == ")":
                        break
                    if (t == "(" and j + 4 < n and toks[j + 4] == ")"
                            and toks[j + 1] in _RELATIONS and toks[j + 2] not in _PARENS
                            and toks[j + 3] not in _PARENS):
                        # inlined fast path for the bulk of VNN-LIB: (op atom atom)
                        children.append(self.simple_relation(toks[j + 1], j, pos))
                        j += 5
                    else:
                        child, j = self.formula(j, pos, i)
                        children.append(child)
                if (op == "and") == pos:
                    return self.dnf_and(children, i), j + 1
                return self.dnf_or(children, i), j + 1
            if op == "not":
                child, j = self.formula(i + 2, not pos, i)
                self.close(j, i, "not")
                return child, j + 1
            if op in _PARENS:
                self.fail(f"expected an operator after '(', found {op!r}", i + 1)
            self.fail(f"unknown operator {op!r} in a formula; expected one of and, or, not, "
                      "<=, >=, <, >, =", i + 1)
        if t == ")":
            self.fail("expected a formula, found ')'", i)
        if t == "true" or t == "false":
            return ([[]] if (t == "true") == pos else []), i + 1
        self.fail(f"expected a formula such as '(<= X_0 1)', found {t!r}", i)

    def dnf_and(self, children: list, k: int) -> list:
        terms: list[list] = [[]]
        for child in children:
            if len(child) == 1:
                c0 = child[0]
                for t in terms:
                    t.extend(c0)
            elif not child:
                return []
            else:
                if len(terms) * len(child) > MAX_DNF_TERMS:
                    self.fail(f"the formula expands to more than {MAX_DNF_TERMS} DNF terms "
                              "(disjunctions nested under conjunctions); not supported", k)
                terms = [t + c for t in terms for c in child]
        return terms

    def dnf_or(self, children: list, k: int) -> list:
        if sum(len(c) for c in children) > MAX_DNF_TERMS:
            self.fail(f"the formula has more than {MAX_DNF_TERMS} DNF terms; not supported",
                      k)
        return [t for c in children for t in c]

    # ---------------------------------------------------------------- atoms
    def operand(self, j: int):
        """Fast-path operand: a declared variable (int key) or a number (float)."""
        t = self.toks[j]
        key = self.vars.get(t)
        if key is not None:
            return key
        v = self.nums.get(t)
        if v is not None:
            return v
        if _looks_numeric(t):
            if _NUMBER_RE.match(t) is None:
                self.fail(f"bad number {t!r}", j)
            v = float(t)
            if not math.isfinite(v):
                self.fail(f"number {t!r} is out of the float64 range", j)
            self.nums[t] = v
            return v
        self.bad_symbol(t, j)

    def bad_symbol(self, t: str, j: int):
        if _VAR_RE.match(t):
            self.fail(f"undeclared variable {t!r}", j)
        if t in _RELATIONS or t in _TERM_OPS or t in ("and", "or", "not"):
            self.fail(f"operator {t!r} must follow '('", j)
        self.fail(f"unknown symbol {t!r}; expected a number or a declared X_i/Y_j "
                  "variable", j)

    def simple_relation(self, op: str, i: int, pos: bool) -> list:
        """``(op a b)`` with two atomic operands, the bulk of every VNN-LIB file."""
        a = self.operand(i + 2)
        b = self.operand(i + 3)
        if op == "<=" or op == "<":
            conj = self.le_simple(a, b, i) if pos else self.le_simple(b, a, i)
        elif op == ">=" or op == ">":
            conj = self.le_simple(b, a, i) if pos else self.le_simple(a, b, i)
        else:  # "="
            first, second = self.le_simple(a, b, i), self.le_simple(b, a, i)
            if not pos:  # a < b or a > b, read as a <= b or a >= b
                return [c for c in (first, second) if c is not None]
            if first is None or second is None:
                return []
            return [first + second]
        return [] if conj is None else [conj]

    def le_simple(self, a, b, k: int):
        """Atoms for ``a <= b`` (operands from :meth:`operand`); None when false."""
        a_num, b_num = type(a) is float, type(b) is float
        if b_num:
            if a_num:
                return [] if a <= b else None
            if a >= 0:
                return [(_UPPER, a, b)]
            return [(_ROW, ((~a, 1.0),), -b)]
        if a_num:
            if b >= 0:
                return [(_LOWER, b, a)]
            return [(_ROW, ((~b, -1.0),), a)]
        if a == b:
            return []
        if a >= 0 and b >= 0:
            self.fail_multi_input((a, b), k)
        if (a >= 0) != (b >= 0):
            self.fail_mixed(k)
        ja, jb = ~a, ~b
        row = ((ja, 1.0), (jb, -1.0)) if ja < jb else ((jb, -1.0), (ja, 1.0))
        return [(_ROW, row, 0.0)]

    def fail_multi_input(self, keys, k: int):
        names = ", ".join(f"X_{i}" for i in sorted(keys))
        self.fail(f"unsupported constraint over several input variables ({names}): input "
                  "regions must be boxes, i.e. bounds on single X_i", k)

    def fail_mixed(self, k: int):
        self.fail("unsupported constraint mixing input (X) and output (Y) variables", k)

    def relation(self, op: str, i: int, pos: bool) -> tuple[list, int]:
        """General ``(op t1 t2 ...)`` with compound linear terms (exact arithmetic)."""
        exprs = []
        j = i + 2
        while self.need(j, i) != ")":
            e, j = self.term(j, i)
            exprs.append(e)
        if len(exprs) < 2:
            self.fail(f"relation {op!r} needs at least two operands", i)
        # Each chained pair contributes alternatives (conjunctions; None = false).
        pairs = []
        for lhs, rhs in zip(exprs, exprs[1:]):
            if op == "=":
                first, second = self.le_linear(lhs, rhs, i), self.le_linear(rhs, lhs, i)
                if pos:
                    alts = [None if first is None or second is None else first + second]
                else:  # a < b or a > b, read as a <= b or a >= b
                    alts = [first, second]
            elif (op == "<=" or op == "<") == pos:
                alts = [self.le_linear(lhs, rhs, i)]
            else:
                alts = [self.le_linear(rhs, lhs, i)]
            pairs.append([c for c in alts if c is not None])
        if pos:  # the chain is a conjunction; each pair has at most one alternative
            if any(not alts for alts in pairs):
                return [], j + 1
            return [[atom for alts in pairs for atom in alts[0]]], j + 1
        return [c for alts in pairs for c in alts], j + 1

    def le_linear(self, lhs, rhs, k: int):
        """Atoms for ``lhs <= rhs`` over exact linear expressions; None when false."""
        coefs = dict(lhs[0])
        for key, v in rhs[0].items():
            coefs[key] = coefs.get(key, _ZERO) - v
        const = lhs[1] - rhs[1]
        coefs = {key: v for key, v in coefs.items() if v != 0}
        if not coefs:
            return [] if const <= 0 else None
        xs = [key for key in coefs if key >= 0]
        if xs and len(xs) != len(coefs):
            self.fail_mixed(k)
        try:
            if xs:
                if len(xs) > 1:
                    self.fail_multi_input(xs, k)
                a = coefs[xs[0]]
                bound = float(-const / a)
                if not math.isfinite(bound):
                    raise OverflowError
                return [(_UPPER if a > 0 else _LOWER, xs[0], bound)]
            row = tuple(sorted((~key, float(v)) for key, v in coefs.items()))
            c = float(const)
            if not (math.isfinite(c) and all(math.isfinite(v) for _, v in row)):
                raise OverflowError
        except OverflowError:
            self.fail("a coefficient or bound of this constraint is out of the float64 "
                      "range", k)
        return [(_ROW, row, c)]

    # ---------------------------------------------------------------- terms
    def term(self, j: int, parent: int):
        """Parse a linear term; return ((coefs: dict key->Fraction, const), next)."""
        t = self.need(j, parent)
        if t == "(":
            op = self.need(j + 1, j)
            if op not in _TERM_OPS:
                if op in _PARENS:
                    self.fail(f"expected an operator after '(', found {op!r}", j + 1)
                if op in _RELATIONS or op in ("and", "or", "not"):
                    self.fail(f"expected a term, found the formula operator {op!r}", j + 1)
                self.fail(f"unknown operator {op!r} in a term; expected one of +, -, *, /",
                          j + 1)
            args = []
            k = j + 2
            while self.need(k, j) != ")":
                e, k = self.term(k, j)
                args.append(e)
            if not args:
                self.fail(f"operator {op!r} needs at least one operand", j)
            if op == "+":
                result = _lin_sum(args)
            elif op == "-":
                if len(args) == 1:
                    result = _lin_scale(args[0], -_ONE)
                else:
                    result = _lin_sum([args[0]] + [_lin_scale(a, -_ONE) for a in args[1:]])
            elif op == "*":
                factor, var_part = _ONE, None
                for a in args:
                    if a[0]:
                        if var_part is not None:
                            self.fail("nonlinear term: a product of two non-constant "
                                      "factors; only linear constraints are supported", j)
                        var_part = a
                    else:
                        factor *= a[1]
                result = ({}, factor) if var_part is None else _lin_scale(var_part, factor)
            else:  # "/"
                if len(args) < 2:
                    self.fail("operator '/' needs at least two operands", j)
                result = args[0]
                for a in args[1:]:
                    if a[0]:
                        self.fail("nonlinear term: division by a non-constant term; only "
                                  "linear constraints are supported", j)
                    if a[1] == 0:
                        self.fail("division by zero", j)
                    result = _lin_scale(result, 1 / a[1])
            return result, k + 1
        if t == ")":
            self.fail("expected a term, found ')'", j)
        key = self.vars.get(t)
        if key is not None:
            return ({key: _ONE}, _ZERO), j + 1
        if _looks_numeric(t):
            if _NUMBER_RE.match(t) is None:
                self.fail(f"bad number {t!r}", j)
            return ({}, Fraction(t)), j + 1
        self.bad_symbol(t, j)

    # ---------------------------------------------------------------- result
    def build(self, name: str, n_inputs, n_outputs) -> Spec:
        path = self.path
        n_x, n_y = len(self.x_decl), len(self.y_decl)
        if n_x == 0:
            raise SpecError("no input variables declared (expected "
                            "'(declare-const X_0 Real)' ...)", path)
        if n_y == 0:
            raise SpecError("no output variables declared (expected "
                            "'(declare-const Y_0 Real)' ...)", path)
        for decl, letter in ((self.x_decl, "X"), (self.y_decl, "Y")):
            if max(decl) != len(decl) - 1:
                missing = min(set(range(max(decl) + 1)) - set(decl))
                line, col = self.where(decl[max(decl)])
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

        lo0, hi0, rows0 = [-math.inf] * n_x, [math.inf] * n_x, []
        _apply_atoms(self.global_atoms, lo0, hi0, rows0)
        if self.false_at is not None:
            terms: list[list] = []
        else:
            terms = [[]]
            for dnf, k in self.multi:
                if len(terms) * len(dnf) > MAX_DNF_TERMS:
                    self.fail(f"the assertions expand to more than {MAX_DNF_TERMS} DNF terms "
                              "(several top-level disjunctions); not supported", k)
                terms = dnf if terms == [[]] else [t + c for t in terms for c in dnf]

        merged: dict[tuple, list] = {}
        for ti, term in enumerate(terms):
            lo, hi, rows = lo0.copy(), hi0.copy(), list(rows0)
            _apply_atoms(term, lo, hi, rows)
            if -math.inf in lo or math.inf in hi:
                i = next(i for i in range(n_x) if lo[i] == -math.inf or hi[i] == math.inf)
                side = "lower" if lo[i] == -math.inf else "upper"
                where = (f" in term {ti + 1} of the {len(terms)}-way input disjunction"
                         if len(terms) > 1 else "")
                raise SpecError(f"input variable X_{i} has no {side} bound{where}; every "
                                "input needs both bounds", path)
            if any(map(operator.gt, lo, hi)):
                continue  # empty region: this term can have no counterexample
            key = (tuple(lo), tuple(hi))
            entry = merged.get(key)
            if entry is None:
                merged[key] = [lo, hi, [rows] if rows else None]
            elif entry[2] is not None:
                if rows:
                    entry[2].append(rows)
                else:
                    entry[2] = None
        if terms and not merged:
            warnings.warn(f"{path or '<spec>'}: every input region of the spec is empty; "
                          "the property holds vacuously", VacuousSpecWarning, stacklevel=4)
        for k, (lo, hi, disj) in enumerate(merged.values()):
            if disj is None:
                warnings.warn(f"{path or '<spec>'}: case {k} has no output constraint; every "
                              "point of its input region is a counterexample",
                              VacuousSpecWarning, stacklevel=4)
                break
        cases = []
        for lo, hi, disj in merged.values():
            outs = () if disj is None else tuple(_rows_to_constraints(r, n_y) for r in disj)
            cases.append(SpecCase(InputBox(np.array(lo), np.array(hi)), outs))
        return Spec(tuple(cases), n_x, n_y, name=name)


def _apply_atoms(atoms, lo: list, hi: list, rows: list) -> None:
    for atom in atoms:
        kind = atom[0]
        if kind == _LOWER:
            if atom[2] > lo[atom[1]]:
                lo[atom[1]] = atom[2]
        elif kind == _UPPER:
            if atom[2] < hi[atom[1]]:
                hi[atom[1]] = atom[2]
        else:
            rows.append(atom)


def _rows_to_constraints(rows: list, n_y: int) -> OutputConstraints:
    C = np.zeros((len(rows), n_y))
    d = np.empty(len(rows))
    for r, (_, row, c) in enumerate(rows):
        for j, a in row:
            C[r, j] = a
        d[r] = c
    return OutputConstraints(C, d)


def _lin_sum(exprs):
    coefs: dict[int, Fraction] = {}
    const = _ZERO
    for e_coefs, e_const in exprs:
        for key, v in e_coefs.items():
            coefs[key] = coefs.get(key, _ZERO) + v
        const += e_const
    return coefs, const


def _lin_scale(expr, factor):
    return {key: v * factor for key, v in expr[0].items()}, expr[1] * factor


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
        parser = _Parser(text, path)
        parser.parse()
        return parser.build(name, n_inputs, n_outputs)
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
    return repr(float(v))


def _row_text(c: np.ndarray, d: float) -> str:
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
    return "(and " + " ".join(_row_text(dj.C[r], float(dj.d[r]))
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
        for i, (lo, hi) in enumerate(zip(case.region.lower, case.region.upper)):
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
                           for i, (lo, hi) in enumerate(zip(case.region.lower,
                                                            case.region.upper)))
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
    with ``repr`` so ``parse_vnnlib(path) == spec`` exactly, except for specs the reader
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
