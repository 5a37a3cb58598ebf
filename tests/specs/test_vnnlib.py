"""The VNN-LIB reader: semantics, error positions, and every shared benchmark file."""

from __future__ import annotations

import gzip
import random
import warnings
from collections import defaultdict
from fractions import Fraction

import numpy as np
import pytest

from hybridver.errors import (DimensionMismatchError, HybridverInputError, SpecError,
                             VacuousSpecWarning)
from hybridver.numerics import round_down, round_up
from hybridver.specs import MAX_DNF_TERMS, load_vnnlib, parse_vnnlib
from tests.conftest import SHARED_BENCHMARKS, shared_files

HEADER = ("(declare-const X_0 Real)\n(declare-const X_1 Real)\n"
          "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n")
BOX = "(assert (<= X_0 1))\n(assert (>= X_0 0))\n(assert (<= X_1 1))\n(assert (>= X_1 -1))\n"


def parse(body: str, **kw):
    return parse_vnnlib(HEADER + body, **kw)


def only_case(spec):
    assert len(spec.cases) == 1
    return spec.cases[0]


def rows_of(case):
    return [(dj.C.tolist(), dj.d.tolist()) for dj in case.disjuncts]


def down(text: str) -> float:
    """The decimal ``text`` rounded down to float64 (how the reader stores a lower bound
    or a row offset that is not a float64 number)."""
    return round_down(Fraction(text))


def up(text: str) -> float:
    return round_up(Fraction(text))


# ------------------------------------------------------------------ semantics
ACAS_LIKE = """\
; ACAS Xu-like property: unsafe if COC is minimal
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const X_2 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(declare-const Y_2 Real)

; input constraints
(assert (<= X_0 -0.29855281193475053))
(assert (>= X_0 -0.30353115613746867))
(assert (<= X_1 0.009549296585513092))   ; trailing comment (with parens)
(assert (>= X_1 -0.009549296585513092))
(assert (>= 0.5 X_2))
(assert (<= 0.3 X_2))

; output constraints
(assert (<= Y_0 Y_1))
(assert (<= Y_0 Y_2))
(assert (>= Y_2 3.991125645861615))
"""


def test_acas_like_property_rows_signs_and_box():
    spec = parse_vnnlib(ACAS_LIKE)
    assert spec.n_inputs == 3 and spec.n_outputs == 3 and spec.name == ""
    case = only_case(spec)
    # decimals that are not float64 numbers are rounded outward
    np.testing.assert_array_equal(case.region.lower, [down("-0.30353115613746867"),
                                                      down("-0.009549296585513092"),
                                                      down("0.3")])
    np.testing.assert_array_equal(case.region.upper, [up("-0.29855281193475053"),
                                                      up("0.009549296585513092"), 0.5])
    assert len(case.disjuncts) == 1
    dj = case.disjuncts[0]
    # y0 - y1 <= 0 ; y0 - y2 <= 0 ; 3.99 - y2 <= 0
    np.testing.assert_array_equal(dj.C, [[1.0, -1.0, 0.0], [1.0, 0.0, -1.0],
                                         [0.0, 0.0, -1.0]])
    np.testing.assert_array_equal(dj.d, [0.0, 0.0, down("3.991125645861615")])
    assert dj.exact_d == ((2, Fraction("3.991125645861615")),)
    x = [-0.3, 0.0, 0.4]
    assert spec.is_counterexample(x, [0.0, 1.0, 4.0])
    assert not spec.is_counterexample(x, [2.0, 1.0, 4.0])
    assert not spec.is_counterexample(x, [0.0, 1.0, 3.0])


def test_standard_output_disjunction_gives_one_case():
    spec = parse(BOX + "(assert (or (and (>= Y_0 Y_1)) (and (<= Y_0 -2) (>= Y_1 3))))")
    case = only_case(spec)
    assert rows_of(case) == [([[-1.0, 1.0]], [0.0]),
                             ([[1.0, 0.0], [0.0, -1.0]], [2.0, 3.0])]


def test_disjunction_of_boxes_gives_several_cases():
    spec = parse("(assert (or\n"
                 "  (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1) (>= Y_0 5))\n"
                 "  (and (>= X_0 2) (<= X_0 3) (>= X_1 0) (<= X_1 1) (<= Y_1 -5))\n"
                 "  (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1) (<= Y_1 7))\n"
                 "))")
    assert len(spec.cases) == 2
    first, second = spec.cases
    np.testing.assert_array_equal(first.region.lower, [0.0, 0.0])
    np.testing.assert_array_equal(second.region.lower, [2.0, 0.0])
    # the first and third terms share a box: merged, disjuncts in order of appearance
    assert rows_of(first) == [([[-1.0, 0.0]], [5.0]), ([[0.0, 1.0]], [-7.0])]
    assert rows_of(second) == [([[0.0, 1.0]], [5.0])]
    assert spec.is_counterexample([2.5, 0.5], [0.0, -6.0])
    assert not spec.is_counterexample([2.5, 0.5], [6.0, 0.0])
    assert spec.is_counterexample([0.5, 0.5], [6.0, 0.0])


def test_term_without_outputs_makes_the_case_true():
    spec = parse("(assert (or (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1) (>= Y_0 5))\n"
                 "            (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1))))")
    assert only_case(spec).output_is_true
    spec = parse(BOX)  # no output assertion at all
    assert only_case(spec).output_is_true
    assert spec.is_counterexample([0.5, 0.0], [1e6, -1e6])


def test_nested_and_or_dnf():
    spec = parse(BOX + "(assert (and (or (<= Y_0 1) (<= Y_0 2)) (or (<= Y_1 3) (and (<= Y_1 4) "
                 "(>= Y_1 -4)))))")
    assert rows_of(only_case(spec)) == [
        ([[1.0, 0.0], [0.0, 1.0]], [-1.0, -3.0]),
        ([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], [-1.0, -4.0, -4.0]),
        ([[1.0, 0.0], [0.0, 1.0]], [-2.0, -3.0]),
        ([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], [-2.0, -4.0, -4.0]),
    ]


def test_top_level_disjunctions_are_conjoined():
    spec = parse(BOX + "(assert (or (<= Y_0 1) (<= Y_0 2)))\n(assert (or (<= Y_1 3) (<= Y_1 4)))"
                 "\n(assert (>= Y_0 -9))")
    case = only_case(spec)
    assert len(case.disjuncts) == 4
    for dj in case.disjuncts:
        assert dj.n_rows == 3
        assert [-1.0, 0.0] in dj.C.tolist()  # the single-term assertion is in every term


def test_not_pushes_through():
    spec = parse(BOX + "(assert (not (or (> Y_0 1) (and (<= Y_1 2) (<= Y_0 Y_1)))))")
    # not(y0 > 1) and (not(y1 <= 2) or not(y0 <= y1))  ->  y0 <= 1 and (y1 >= 2 or y0 >= y1)
    assert rows_of(only_case(spec)) == [([[1.0, 0.0], [0.0, -1.0]], [-1.0, 2.0]),
                                        ([[1.0, 0.0], [-1.0, 1.0]], [-1.0, 0.0])]


@pytest.mark.parametrize("text, value", [
    ("1e-3", 1e-3), ("-2.5E+01", -25.0), ("1E2", 100.0), (".5", 0.5), ("+3", 3.0),
    ("-0.0", 0.0), ("7.", 7.0), ("0.1", 0.1), ("1e-300", 1e-300),
])
def test_number_notation(text, value):
    spec = parse(f"(assert (<= X_0 {text}))(assert (>= X_0 -1e3))(assert (<= X_1 1))"
                 f"(assert (>= X_1 0))(assert (<= Y_0 {text}))")
    case = only_case(spec)
    assert case.region.upper[0] == value
    assert case.disjuncts[0].d[0] == -value


def test_strict_inequalities_read_as_non_strict():
    strict = parse(BOX + "(assert (< Y_0 Y_1))(assert (> Y_1 2))")
    loose = parse(BOX + "(assert (<= Y_0 Y_1))(assert (>= Y_1 2))")
    assert strict == loose
    strict_box = parse("(assert (< X_0 1))(assert (> X_0 0))(assert (< X_1 1))(assert (> X_1 -1))")
    assert strict_box.cases[0].region == loose.cases[0].region


def test_constant_on_the_left_and_variables_on_both_sides():
    spec = parse("(assert (>= 1 X_0))(assert (<= -2 X_0))(assert (>= 3 X_1 -3))"
                 "(assert (>= 3.5 Y_0))(assert (<= Y_1 Y_0))")
    case = only_case(spec)
    np.testing.assert_array_equal(case.region.lower, [-2.0, -3.0])
    np.testing.assert_array_equal(case.region.upper, [1.0, 3.0])
    assert rows_of(case) == [([[1.0, 0.0], [-1.0, 1.0]], [-3.5, 0.0])]


def test_linear_terms():
    spec = parse("(assert (<= (* 2 X_0) 1))(assert (>= (* X_0 -4) -4))(assert (<= (- 0.5) X_0))"
                 "(assert (>= (- X_1 1) -3))(assert (<= (+ X_1 (- 1)) (/ 1 2)))"
                 "(assert (<= (* 0 X_0) 1000))"
                 "(assert (<= (+ (* 2 Y_0) (- Y_1) (/ Y_1 4) 1) (* 3 (- 1 Y_0))))")
    case = only_case(spec)
    np.testing.assert_array_equal(case.region.lower, [-0.5, -2.0])
    np.testing.assert_array_equal(case.region.upper, [0.5, 1.5])
    # 2y0 - y1 + y1/4 + 1 <= 3 - 3y0   ->   5 y0 - 0.75 y1 - 2 <= 0
    assert rows_of(case) == [([[5.0, -0.75]], [-2.0])]


def test_linear_terms_exact_bounds():
    spec = parse("(assert (<= (+ X_0 0.1) 0.3))(assert (>= (* 3 X_0) -1))"
                 "(assert (<= X_1 1))(assert (>= X_1 0))")
    # each bound is computed exactly and rounded once, outward: 0.3 - 0.1 is exactly 1/5
    # (float arithmetic would give 0.19999999999999998), -1/3 is rounded down
    case = only_case(spec)
    assert 0.3 - 0.1 != 0.2
    assert case.region.upper[0] == up("0.2") == 0.2
    assert case.region.lower[0] == round_down(Fraction(-1, 3)) < -1 / 3
    assert case.region.exact_upper == ((0, Fraction(1, 5)),)
    assert case.region.exact_lower == ((0, Fraction(-1, 3)),)


def test_equality_and_chains():
    spec = parse("(assert (= X_0 0.25))(assert (<= -1 X_1 1))(assert (= Y_0 Y_1))")
    case = only_case(spec)
    assert case.region.lower[0] == case.region.upper[0] == 0.25
    assert case.region.lower[1] == -1.0 and case.region.upper[1] == 1.0
    assert rows_of(case) == [([[1.0, -1.0], [-1.0, 1.0]], [0.0, 0.0])]


def test_ignored_commands_and_declare_fun():
    spec = parse_vnnlib("(set-logic QF_LRA)\n(declare-fun X_0 () Real)\n"
                        "(declare-const Y_0 Real)\n(assert (<= X_0 1))(assert (>= X_0 0))\n"
                        "(set-info :status (unsat))\n(check-sat)\n(get-model)\n(exit)\n")
    assert spec.n_inputs == 1 and spec.n_outputs == 1


def test_false_and_constant_atoms():
    assert parse(BOX + "(assert (or))").cases == ()
    assert parse(BOX + "(assert false)").cases == ()
    assert parse(BOX + "(assert (<= 2 1))").cases == ()
    assert only_case(parse(BOX + "(assert (<= 1 2))(assert true)")).output_is_true
    # a false atom only removes its own DNF term
    spec = parse(BOX + "(assert (or (and (<= 2 1) (<= Y_0 0)) (<= Y_1 0)))")
    assert rows_of(only_case(spec)) == [([[0.0, 1.0]], [0.0])]


def test_empty_regions_are_dropped():
    spec = parse("(assert (or (and (>= X_0 2) (<= X_0 1) (>= X_1 0) (<= X_1 1))\n"
                 "            (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1))))")
    np.testing.assert_array_equal(only_case(spec).region.lower, [0.0, 0.0])
    with pytest.warns(VacuousSpecWarning, match="empty"):
        spec = parse("(assert (>= X_0 2))(assert (<= X_0 1))(assert (<= X_1 1))"
                     "(assert (>= X_1 0))")
    assert spec.cases == ()


# ------------------------------------------------------------------ semantic errors
def test_missing_bound_names_the_variable():
    with pytest.raises(SpecError, match="X_1 has no lower bound"):
        parse("(assert (<= X_0 1))(assert (>= X_0 0))(assert (<= X_1 1))")
    with pytest.raises(SpecError, match=r"X_0 has no upper bound in term 2"):
        parse("(assert (or (and (>= X_0 0) (<= X_0 1)) (>= X_0 0)))"
              "(assert (<= X_1 1))(assert (>= X_1 0))")


def test_dimension_mismatch():
    with pytest.raises(DimensionMismatchError, match=r"2 input variables.*784 inputs"):
        parse(BOX, n_inputs=784)
    with pytest.raises(DimensionMismatchError, match=r"2 output variables.*10 outputs"):
        parse(BOX, n_inputs=2, n_outputs=10)
    spec = parse(BOX, n_inputs=2, n_outputs=2)
    assert spec.n_inputs == 2


def test_declarations_must_be_contiguous():
    with pytest.raises(SpecError, match="X_2 is declared but X_1 is not"):
        parse_vnnlib("(declare-const X_0 Real)\n(declare-const X_2 Real)\n"
                     "(declare-const Y_0 Real)\n")
    with pytest.raises(SpecError, match="no output variables"):
        parse_vnnlib("(declare-const X_0 Real)\n(assert (<= X_0 1))(assert (>= X_0 0))")
    with pytest.raises(SpecError, match="no input variables"):
        parse_vnnlib("(declare-const Y_0 Real)\n")


@pytest.mark.parametrize("body, line, col, fragment", [
    ("(assert (<= (* X_0 X_1) 1))", 5, 13, "nonlinear"),
    ("(assert (<= (* X_0 Y_0) 1))", 5, 13, "nonlinear"),
    ("(assert (<= (/ 1 X_0) 1))", 5, 13, "nonlinear"),
    ("(assert (<= (/ X_0 0) 1))", 5, 13, "division by zero"),
    ("(assert (<= X_0 X_1))", 5, 9, "several input variables (X_0, X_1)"),
    ("(assert (<= (+ X_0 X_1) 1))", 5, 9, "several input variables"),
    ("(assert (<= X_0 Y_1))", 5, 9, "mixing input (X) and output (Y)"),
    ("(assert (>= (+ Y_0 (* 2 X_1)) 0))", 5, 9, "mixing input"),
    ("(assert (<= X_7 1))", 5, 13, "undeclared variable 'X_7'"),
    ("(assert (<= (+ Y_0 Y_9) 1))", 5, 20, "undeclared variable 'Y_9'"),
])
def test_semantic_errors_have_positions(body, line, col, fragment):
    with pytest.raises(SpecError) as info:
        parse(body)
    err = info.value
    assert fragment in str(err)
    assert (err.line, err.column) == (line, col), str(err)


def test_dnf_blow_up_is_refused():
    too_many = "".join("(assert (or (<= Y_0 %d) (<= Y_1 %d)))\n" % (k, k) for k in range(17))
    assert 2 ** 17 > MAX_DNF_TERMS
    with pytest.raises(SpecError, match="DNF terms"):
        parse(BOX + too_many)
    nested = "(assert (and " + " ".join("(or (<= Y_0 %d) (<= Y_1 %d))" % (k, k)
                                        for k in range(17)) + "))"
    with pytest.raises(SpecError, match="DNF terms") as info:
        parse(BOX + nested)
    assert (info.value.line, info.value.column) == (9, 9)


# ------------------------------------------------------------------ syntax errors
@pytest.mark.parametrize("body, line, col, fragment", [
    ("(assert (<= X_0 1)\n", 5, 1, "never closed"),
    ("(assert (<= X_0 (+ 1", 5, 17, "never closed"),
    ("(assert (<= X_0 1)))", 5, 20, "without a matching '('"),
    ("(assert (<= X_0 1)\n(assert (>= X_0 0))", 6, 1, "expected ')'"),
    ("foo", 5, 1, "expected '(' to start a command"),
    ("(check-model)", 5, 2, "unknown command 'check-model'"),
    ("(declare-sore X_1 2)", 5, 2, "unknown command 'declare-sore'"),
    ("()", 5, 2, "expected a command name"),
    ("(assert (<= X_0 1.2.3))", 5, 17, "bad number '1.2.3'"),
    ("(assert (<= X_0 1e))", 5, 17, "bad number '1e'"),
    ("(assert (<= X_0 1e999))", 5, 17, "out of the float64 range"),
    ("(assert (<= (+ X_0 2..5) 1))", 5, 20, "bad number"),
    ("(assert (xor (<= X_0 1) (>= X_0 0)))", 5, 10, "unknown operator 'xor'"),
    ("(assert (<= (exp X_0) 1))", 5, 14, "unknown operator 'exp'"),
    ("(assert ())", 5, 10, "expected an operator"),
    ("(assert (<= X_0))", 5, 9, "at least two operands"),
    ("(assert X_0)", 5, 9, "expected a formula"),
    ("(assert (<= X_0 1) 2)", 5, 20, "expected ')' to close '(assert"),
    ("(assert (<= (and X_0) 1))", 5, 14, "expected a term"),
    ("(assert (<= foo 1))", 5, 13, "unknown symbol 'foo'"),
    ("(declare-const X_2 Int)", 5, 20, "unsupported sort 'Int'"),
    ("(declare-const Z_0 Real)", 5, 16, "unsupported variable name 'Z_0'"),
    ("(declare-const X_01 Real)", 5, 16, "unsupported variable name"),
    ("(declare-const X_0 Real)", 5, 16, "declared twice"),
    ("; comment with ((( parens\n   (assert (<= X_0 1.2.3))", 6, 20, "bad number"),
    ("(assert (<= X_0 1)) ; ))) (\n(assert (<= X_0 bad))", 6, 17, "unknown symbol 'bad'"),
])
def test_syntax_errors_have_positions(body, line, col, fragment):
    with pytest.raises(SpecError) as info:
        parse(body)
    err = info.value
    assert fragment in str(err), str(err)
    assert (err.line, err.column) == (line, col), str(err)
    assert f":{line}:{col}:" in str(err)


def test_crlf_line_endings():
    text = (HEADER + BOX).replace("\n", "\r\n") + "(assert (<= Y_0 @))\r\n"
    with pytest.raises(SpecError) as info:
        parse_vnnlib(text)
    assert (info.value.line, info.value.column) == (9, 17)
    ok = parse_vnnlib((HEADER + BOX + "(assert (<= Y_0 1))").replace("\n", "\r\n"))
    assert rows_of(only_case(ok)) == [([[1.0, 0.0]], [-1.0])]


def test_spec_error_is_an_input_error():
    with pytest.raises(HybridverInputError):
        parse("(assert")


# ------------------------------------------------------------------ files
def test_load_plain_and_gz(tmp_path):
    text = HEADER + BOX + "(assert (>= Y_0 Y_1))\n"
    plain = tmp_path / "p1.vnnlib"
    plain.write_text(text)
    packed = tmp_path / "p1_copy.vnnlib.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    a, b = load_vnnlib(plain), load_vnnlib(packed)
    assert a == b == parse_vnnlib(text)
    assert a.name == "p1" and b.name == "p1_copy"
    assert parse_vnnlib(str(plain)) == a  # a str without '(' or newline is a path
    assert parse_vnnlib(plain, n_inputs=2, n_outputs=2) == a


def test_file_errors(tmp_path):
    missing = tmp_path / "nope.vnnlib"
    with pytest.raises(SpecError) as info:
        load_vnnlib(missing)
    assert info.value.path == str(missing) and "not found" in str(info.value)
    with pytest.raises(SpecError):
        parse_vnnlib(str(missing))
    bad = tmp_path / "bad.vnnlib.gz"
    bad.write_bytes(b"\x1f\x8b" + b"garbage")
    with pytest.raises(SpecError, match="gzip"):
        load_vnnlib(bad)
    broken = tmp_path / "broken.vnnlib"
    broken.write_text(HEADER + "(assert (<= X_0 1)")
    with pytest.raises(SpecError) as info:
        load_vnnlib(broken)
    assert info.value.path == str(broken) and info.value.line == 5


# ------------------------------------------------------------------ Marabou fixtures
MARABOU_VNNLIB = SHARED_BENCHMARKS / "marabou_resources" / "onnx" / "vnnlib"
MARABOU_REJECTED = {  # features we deliberately do not support -> SpecError, not a crash
    "test_mul_var_var.vnnlib": ("nonlinear", 4, 13),
    "test_assert_operator_not_implemented.vnnlib": ("unknown operator 'xor'", 4, 10),
    "test_command_not_implemented.vnnlib": ("unknown command 'declare-sore'", 3, 2),
}


@pytest.mark.parametrize("path", shared_files("marabou_resources/onnx/vnnlib/*.vnnlib"),
                         ids=lambda p: p.name)
def test_marabou_fixtures(path):
    if path.name in MARABOU_REJECTED:
        fragment, line, col = MARABOU_REJECTED[path.name]
        with pytest.raises(SpecError) as info:
            load_vnnlib(path)
        assert fragment in str(info.value)
        assert (info.value.line, info.value.column) == (line, col)
        assert info.value.path == str(path)
    else:
        spec = load_vnnlib(path)
        assert spec.cases


def test_marabou_fixture_semantics(shared_benchmarks):
    def load(name):
        return load_vnnlib(MARABOU_VNNLIB / name)

    def bounds(spec):
        case = only_case(spec)
        return case.region.lower.tolist(), case.region.upper.tolist()

    assert bounds(load("test_add_const.vnnlib")) == ([0.0], [1.0])
    assert bounds(load("test_sub_const.vnnlib")) == ([2.0], [3.0])
    assert bounds(load("test_mul_var_const.vnnlib")) == ([0.0], [1.0])
    assert bounds(load("test_and.vnnlib")) == ([0.0], [1.0])
    assert bounds(load("test_exp_notation.vnnlib")) == ([-1.0], [1.0])
    add_var = only_case(load("test_add_var.vnnlib"))
    assert rows_of(add_var) == [([[-1.0, 0, 0, 0, 0], [0, -1.0, 0, 0, 0], [0, 0, -1.0, 0, 0],
                                  [1.0, 1.0, 0, 0, 0]], [0.0, 0.0, 0.0, -1.0])]
    sub_var = only_case(load("test_sub_var.vnnlib"))
    assert rows_of(sub_var)[0][0][3] == [1.0, -1.0, 0, 0, 0]
    tiny = only_case(load("test_tiny_vnncomp.vnnlib"))
    assert rows_of(tiny) == [([[-1.0]], [100.0])]


# ------------------------------------------------------------------ every shared file
def _sampled_shared_vnnlib():
    groups = defaultdict(list)
    for path in shared_files("**/*.vnnlib", "**/*.vnnlib.gz"):
        groups[path.relative_to(SHARED_BENCHMARKS).parts[0]].append(path)
    chosen = []
    for name in sorted(groups):
        files = sorted(groups[name])
        if len(files) >= 50:
            files = sorted(random.Random(f"hybridver-{name}").sample(files, 20))
        for path in files:
            if path.parent == MARABOU_VNNLIB:
                continue  # covered by test_marabou_fixtures
            big = path.stat().st_size > 150_000  # nn4sys: tens of MB once gunzipped
            chosen.append(pytest.param(path, id=str(path.relative_to(SHARED_BENCHMARKS)),
                                       marks=[pytest.mark.slow] if big else []))
    return chosen


@pytest.mark.parametrize("path", _sampled_shared_vnnlib())
def test_shared_benchmark_file_parses(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = load_vnnlib(path)
    assert spec.n_inputs >= 1 and spec.n_outputs >= 1
    assert spec.cases, "a benchmark property with no case would be vacuous"
    for case in spec.cases:
        assert case.region.n == spec.n_inputs
        assert np.all(case.region.lower <= case.region.upper)
        assert np.all(np.isfinite(case.region.lower)) and np.all(np.isfinite(case.region.upper))
        for dj in case.disjuncts:
            assert dj.n_outputs == spec.n_outputs and dj.n_rows >= 1
    spec.check_dimensions(spec.n_inputs, spec.n_outputs)


def test_shared_known_structures(shared_benchmarks):
    acas = {p.name: load_vnnlib(p) for p in sorted((shared_benchmarks / "acasxu").glob("*.vnnlib"))}
    if "prop_1.vnnlib" in acas:
        case = only_case(acas["prop_1.vnnlib"])
        assert rows_of(case) == [([[-1.0, 0.0, 0.0, 0.0, 0.0]], [down("3.991125645861615")])]
        np.testing.assert_array_equal(case.region.lower,
                                      [down("0.6"), -0.5, -0.5, down("0.45"), -0.5])
        np.testing.assert_array_equal(case.region.upper,
                                      [up("0.679857769"), 0.5, 0.5, 0.5, up("-0.45")])
    if "prop_6.vnnlib" in acas:
        assert len(acas["prop_6.vnnlib"].cases) == 2  # two input boxes
    if "prop_7.vnnlib" in acas:
        assert len(only_case(acas["prop_7.vnnlib"]).disjuncts) == 2
    mnist = shared_files("mnist_fc_2022/**/*.vnnlib.gz")[:1]
    for path in mnist:
        spec = load_vnnlib(path)
        assert (spec.n_inputs, spec.n_outputs) == (784, 10)
        assert len(only_case(spec).disjuncts) == 9
    vit = shared_files("vit_2023/**/*.vnnlib.gz")[:1]
    for path in vit:
        spec = load_vnnlib(path, n_inputs=3072, n_outputs=10)
        assert len(only_case(spec).disjuncts) == 9
