"""VNN-LIB tokenizer and parser: commands, formulas and atoms into DNF (see
:mod:`hybridver.specs.vnnlib` for the language and its meaning).

Numbers are read exactly: a constant is a ``float`` when its decimal text is a float64
number, else a :class:`~fractions.Fraction` (``0.1``, ``1e-400``, ``9007199254740993``).
Both compare exactly with each other, so bounds are tightened and terms evaluated on the
exact values; :mod:`hybridver.specs.vnnlib_build` rounds them outward at the end.
"""

from __future__ import annotations

import itertools
import re
from itertools import chain
from operator import itemgetter
from decimal import Decimal
from fractions import Fraction

from hybridver.errors import SpecError
from hybridver.specs.vnnlib_terms import (FLOAT_MAX, LOWER, PARENS, RELATIONS, ROW, TERM_OPS,
                                          UPPER, TermParser, looks_numeric)

#: Largest number of DNF terms the reader builds before giving up with a SpecError.
MAX_DNF_TERMS = 100_000
#: Largest decimal exponent accepted in a number (``1e-10001`` is refused: its exact value
#: would cost time and memory out of proportion to the text).
MAX_EXPONENT = 10_000

_TOKEN_RE = re.compile(r"[()]|[^\s()]+")
_COMMENT_RE = re.compile(r";[^\n]*")
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?\Z")
_VAR_RE = re.compile(r"([XY])_(0|[1-9][0-9]*)\Z")
_IGNORED_COMMANDS = frozenset({"set-logic", "set-info", "set-option", "check-sat",
                               "get-model", "get-value", "exit"})


class Parser(TermParser):
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
        self.nums: dict[str, float | Fraction] = {}
        self.global_atoms: list[tuple] = []
        self.multi: list[tuple[list, int]] = []
        self.false_at: int | None = None
        # DNF of each simple atom (op, a, b) met so far, per polarity.  The DNFs (and
        # their terms) are shared by every occurrence: no code mutates a child's terms
        # (dnf_and extends only fresh term lists, dnf_or and build only read them).
        self.atoms_pos: dict[tuple[str, str, str], list] = {}
        self.atoms_neg: dict[tuple[str, str, str], list] = {}

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
            elif head in PARENS:
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
        if name in PARENS:
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
            if op in RELATIONS:
                if (i + 4 < self.n and toks[i + 4] == ")" and toks[i + 2] not in PARENS
                        and toks[i + 3] not in PARENS):
                    return self.simple_relation(op, i, pos), i + 5
                return self.relation(op, i, pos)
            if op == "and" or op == "or":
                flat = self.flat_atoms(i + 2, (op == "and") == pos, pos)
                if flat is not None:
                    return flat
                children = []
                j = i + 2
                n = self.n
                cache = self.atoms_pos if pos else self.atoms_neg
                while True:
                    t = toks[j] if j < n else self.need(j, i)
                    if t == ")":
                        break
                    if t == "(" and j + 4 < n and toks[j + 4] == ")":
                        # inlined fast path for the bulk of VNN-LIB: (op atom atom), its
                        # DNF memoized by its three tokens (files repeat most atoms)
                        key = (toks[j + 1], toks[j + 2], toks[j + 3])
                        dnf = cache.get(key)
                        if dnf is None:
                            if (key[0] not in RELATIONS or key[1] in PARENS
                                    or key[2] in PARENS):
                                child, j = self.formula(j, pos, i)
                                children.append(child)
                                continue
                            dnf = cache[key] = self.simple_relation(key[0], j, pos)
                        children.append(dnf)
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
            if op in PARENS:
                self.fail(f"expected an operator after '(', found {op!r}", i + 1)
            self.fail(f"unknown operator {op!r} in a formula; expected one of and, or, not, "
                      "<=, >=, <, >, =", i + 1)
        if t == ")":
            self.fail("expected a formula, found ')'", i)
        if t == "true" or t == "false":
            return ([[]] if (t == "true") == pos else []), i + 1
        self.fail(f"expected a formula such as '(<= X_0 1)', found {t!r}", i)

    def flat_atoms(self, k0: int, conjunction: bool, pos: bool) -> tuple[list, int] | None:
        """(DNF, next index) of an ``and``/``or`` whose operands, from token ``k0`` on,
        are all simple atoms ``(op a b)``, found with list slices (C speed: VNN-LIB's
        boxes have thousands of such atoms); ``conjunction``: the operands are conjoined
        (``and``, or ``or`` under a ``not``).  None when the operands are anything else,
        for the general loop.  The tokens are checked to be exactly ``( REL a b )``
        groups up to the closing ``)``, so the parse is the same."""
        toks, n = self.toks, self.n
        width = 64
        while True:
            opens = toks[k0:k0 + 5 * width:5]
            if ")" in opens:
                m = opens.index(")")
                break
            if k0 + 5 * width >= n:
                return None
            width *= 4
        end = k0 + 5 * m
        if m == 0 or opens[:m].count("(") != m or toks[k0 + 4:end:5].count(")") != m:
            return None
        ops, lhs, rhs = toks[k0 + 1:end:5], toks[k0 + 2:end:5], toks[k0 + 3:end:5]
        if (not RELATIONS.issuperset(ops) or "(" in lhs or ")" in lhs or "(" in rhs
                or ")" in rhs):
            return None
        cache = self.atoms_pos if pos else self.atoms_neg
        dnfs = [cache.get(key) for key in zip(ops, lhs, rhs)]
        for a, dnf in enumerate(dnfs):
            if dnf is None:
                dnfs[a] = cache[(ops[a], lhs[a], rhs[a])] = self.simple_relation(
                    ops[a], k0 + 5 * a, pos)
        if not conjunction:
            return self.dnf_or(dnfs, k0 - 2), end + 1
        if set(map(len, dnfs)) == {1}:  # one conjunction each: concatenate them
            return [list(chain.from_iterable(map(itemgetter(0), dnfs)))], end + 1
        return self.dnf_and(dnfs, k0 - 2), end + 1

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
        """Fast-path operand: a declared variable (int key) or a number."""
        t = self.toks[j]
        key = self.vars.get(t)
        if key is not None:
            return key
        v = self.nums.get(t)
        if v is not None:
            return v
        if looks_numeric(t):
            v = self.nums[t] = self.number(t, j)
            return v
        self.bad_symbol(t, j)

    def number(self, t: str, j: int) -> float | Fraction:
        """The exact value of the number token ``t``: a float when ``t`` names a float64
        number (checked exactly with :class:`~decimal.Decimal`, much faster than building
        a Fraction), else a Fraction."""
        m = _NUMBER_RE.match(t)
        if m is None:
            self.fail(f"bad number {t!r}", j)
        if m.group(1) is not None and abs(int(m.group(1))) > MAX_EXPONENT:
            self.fail(f"number {t!r}: exponents beyond +-{MAX_EXPONENT} are not supported", j)
        v = float(t)
        exact = Decimal(t)
        if exact == v:  # never for an infinite v
            return v
        q = Fraction(exact)
        if abs(q) > FLOAT_MAX:
            self.fail(f"number {t!r} is out of the float64 range", j)
        return q

    def bad_symbol(self, t: str, j: int):
        if _VAR_RE.match(t):
            self.fail(f"undeclared variable {t!r}", j)
        if t in RELATIONS or t in TERM_OPS or t in ("and", "or", "not"):
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
        a_num, b_num = type(a) is not int, type(b) is not int
        if b_num:
            if a_num:
                return [] if a <= b else None
            if a >= 0:
                return [(UPPER, a, b)]
            return [(ROW, ((~a, 1.0),), -b)]
        if a_num:
            if b >= 0:
                return [(LOWER, b, a)]
            return [(ROW, ((~b, -1.0),), a)]
        if a == b:
            return []
        if a >= 0 and b >= 0:
            self.fail_multi_input((a, b), k)
        if (a >= 0) != (b >= 0):
            self.fail_mixed(k)
        ja, jb = ~a, ~b
        row = ((ja, 1.0), (jb, -1.0)) if ja < jb else ((jb, -1.0), (ja, 1.0))
        return [(ROW, row, 0.0)]

    def fail_multi_input(self, keys, k: int):
        names = ", ".join(f"X_{i}" for i in sorted(keys))
        self.fail(f"unsupported constraint over several input variables ({names}): input "
                  "regions must be boxes, i.e. bounds on single X_i", k)

    def fail_mixed(self, k: int):
        self.fail("unsupported constraint mixing input (X) and output (Y) variables", k)
