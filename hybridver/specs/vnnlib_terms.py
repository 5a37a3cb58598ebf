"""VNN-LIB compound linear terms (``(+ a b)``, ``(* 2 X_0)``, chained relations),
evaluated in exact rational arithmetic: a mixin of :class:`~hybridver.specs.vnnlib_parse.Parser`."""

from __future__ import annotations

from fractions import Fraction

_ZERO = Fraction(0)
_ONE = Fraction(1)
TERM_OPS = frozenset({"+", "-", "*", "/"})
RELATIONS = frozenset({"<=", ">=", "<", ">", "="})
PARENS = ("(", ")")
#: Largest finite float64.
FLOAT_MAX = Fraction(1.7976931348623157e308)
# Atoms inside DNF terms are tuples:
#   (0, i, v)        lower bound  X_i >= v
#   (1, i, v)        upper bound  X_i <= v
#   (2, row, c)      output row   sum(a * Y_j for j, a in row) + c <= 0, row sorted by j
# Variables are keyed by int: X_i -> i, Y_j -> ~j (negative).  Numbers are floats or
# Fractions (exact values), so `type(v) is int` tells a variable from a number.
LOWER, UPPER, ROW = 0, 1, 2


def exact_number(q: Fraction) -> float | Fraction:
    """``q`` as a float when that is exact, else ``q`` itself; OverflowError beyond the
    float64 range."""
    if abs(q) > FLOAT_MAX:
        raise OverflowError
    f = float(q)
    return f if f == q else q


def looks_numeric(tok: str) -> bool:
    c = tok[0]
    if c.isdigit():
        return True
    if c in "+-." and len(tok) > 1:
        c2 = tok[1]
        return c2.isdigit() or (c2 == "." and c != ".")
    return False


class TermParser:
    """Relations over compound terms; uses the parser's ``need``, ``fail``, ``vars``,
    ``number``, ``bad_symbol``, ``fail_mixed`` and ``fail_multi_input``."""

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
                return [(UPPER if a > 0 else LOWER, xs[0], exact_number(-const / a))]
            coefs, const = self.float_row(coefs, const, k)
            row = tuple(sorted((~key, float(v)) for key, v in coefs.items()))
            c = exact_number(const)
        except OverflowError:
            self.fail("a coefficient or bound of this constraint is out of the float64 "
                      "range", k)
        return [(ROW, row, c)]

    def float_row(self, coefs: dict, const: Fraction, k: int) -> tuple[dict, Fraction]:
        """The output row ``sum(coefs) + const <= 0`` with float64 coefficients: as it is,
        or divided by the magnitude of one of its coefficients (the same set of outputs).
        Refused when no such scaling makes every coefficient a float64 number (the Spec
        stores ``C`` as float64; rounding a coefficient would move the row's boundary)."""
        for scale in [_ONE] + [abs(v) for v in coefs.values()]:
            scaled = {key: v / scale for key, v in coefs.items()}
            if all(type(exact_number(v)) is float for v in scaled.values()):
                return scaled, const / scale
        self.fail("an output constraint whose coefficients are not float64 numbers (nor "
                  "become ones when the row is divided by one of them) is not supported", k)


    # ---------------------------------------------------------------- terms
    def term(self, j: int, parent: int):
        """Parse a linear term; return ((coefs: dict key->Fraction, const), next)."""
        t = self.need(j, parent)
        if t == "(":
            op = self.need(j + 1, j)
            if op not in TERM_OPS:
                if op in PARENS:
                    self.fail(f"expected an operator after '(', found {op!r}", j + 1)
                if op in RELATIONS or op in ("and", "or", "not"):
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
        if looks_numeric(t):
            return ({}, Fraction(self.number(t, j))), j + 1
        self.bad_symbol(t, j)


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

