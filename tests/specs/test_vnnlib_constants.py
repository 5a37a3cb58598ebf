"""VNN-LIB constants read exactly: the float box and offsets are their outward roundings,
the exact values are kept beside them (docs/soundness.md, "VNN-LIB constants")."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from hybridver.errors import SpecError, VacuousSpecWarning
from hybridver.specs import load_vnnlib, parse_vnnlib

HEADER = ("(declare-const X_0 Real)\n(declare-const X_1 Real)\n"
          "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n")


def only_case(spec):
    assert len(spec.cases) == 1
    return spec.cases[0]


def rows_of(case):
    return [(dj.C.tolist(), dj.d.tolist()) for dj in case.disjuncts]


ONE_X = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"


def one_x(lower: str, upper: str, output: str = "(assert (<= Y_0 0))"):
    return parse_vnnlib(ONE_X + f"(assert (>= X_0 {lower}))\n(assert (<= X_0 {upper}))\n"
                        + output)


@pytest.mark.parametrize("lower,upper", [
    ("1e-400", "1e-310"),          # underflows to 0; a subnormal
    ("-1e-400", "4.9e-324"),       # just under the smallest subnormal 2**-1074
    ("0.1000000000000000000000000001", "0.3"),  # long decimal, not a float64
    ("9007199254740993", "9007199254740995"),   # odd integers above 2**53
    ("(- 0.1)", "(/ 1 3)"),
])
def test_bounds_are_rounded_outward_and_kept_exact(lower, upper):
    region = only_case(one_x(lower, upper)).region
    q_lo = Fraction(lower) if "(" not in lower else -Fraction(1, 10)
    q_hi = Fraction(upper) if "(" not in upper else Fraction(1, 3)
    # the float box contains the exact one, and is the smallest float box that does
    assert Fraction(region.lower[0]) < q_lo < Fraction(np.nextafter(region.lower[0], np.inf))
    assert Fraction(np.nextafter(region.upper[0], -np.inf)) < q_hi < Fraction(region.upper[0])
    assert region.exact_lower == ((0, q_lo),) and region.exact_upper == ((0, q_hi),)
    # the float bound itself lies in the sliver: outside the exact box; the next is inside
    assert not region.contains([region.lower[0]]) and not region.contains([region.upper[0]])
    inner = np.nextafter(region.lower[0], np.inf)
    assert region.contains([inner]) and region.contains([region.lower[0]], tol=1e-300)


def test_subnormal_and_underflowing_bounds_stay_on_their_side():
    region = only_case(one_x("1e-400", "5e-324")).region  # the text 5e-324 is > 2**-1074
    assert region.lower[0] == 0.0 and region.upper[0] == 2 * 5e-324
    assert not region.contains([0.0]) and region.contains([5e-324])
    none = only_case(one_x("1e-400", "4.9e-324")).region  # between 0 and 2**-1074
    assert none.lower[0] == 0.0 and none.upper[0] == 5e-324
    assert not none.contains([0.0]) and not none.contains([5e-324])
    neg = only_case(one_x("-1e-400", "-1e-400")).region
    assert neg.lower[0] == -5e-324 and neg.upper[0] == 0.0
    assert not neg.contains([-5e-324]) and not neg.contains([0.0])  # no float is in it


def test_exact_bounds_are_tightened_exactly():
    # both upper bounds round to the float 0.1; the tighter exact one (1/10) is kept
    spec = parse_vnnlib(ONE_X + "(assert (>= X_0 0))(assert (<= X_0 0.10000000000000000001))"
                        "(assert (<= X_0 0.1))(assert (<= Y_0 0))")
    region = only_case(spec).region
    assert region.upper[0] == 0.1 and region.exact_upper == ((0, Fraction(1, 10)),)
    # an exactly empty box in one float gap is dropped (vacuous spec)
    with pytest.warns(VacuousSpecWarning):
        empty = one_x("0.10000000000000000002", "0.10000000000000000001")
    assert empty.cases == ()


def test_float64_numbers_stay_as_they_are():
    spec = one_x("-1.5", "(- (- 2.5E+01))")
    region = only_case(spec).region
    assert region.lower[0] == -1.5 and region.upper[0] == 25.0
    assert region.exact_lower == () and region.exact_upper == ()
    assert region.contains([-1.5]) and region.contains([25.0])


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1.7976931348623158e308",
                                    "1e-20000"])
def test_numbers_beyond_float64_are_refused(number):
    with pytest.raises(SpecError, match="float64 range|exponents beyond"):
        one_x("0", number)


def test_output_offsets_are_rounded_to_enlarge_the_violating_set():
    # Y_0 >= 0.1: row -y + 0.1 <= 0; d rounded down lets more outputs violate
    ge = only_case(one_x("0", "1", "(assert (>= Y_0 0.1))")).disjuncts[0]
    assert Fraction(ge.d[0]) < Fraction(1, 10) and ge.exact_d == ((0, Fraction(1, 10)),)
    # Y_0 <= 0.1: row y - 0.1 <= 0; the float 0.1 is above 1/10, so y = 0.1 does not violate
    le_case = only_case(one_x("0", "1", "(assert (<= Y_0 0.1))"))
    le = le_case.disjuncts[0]
    assert Fraction(le.d[0]) <= -Fraction(1, 10) and le.exact_d == ((0, -Fraction(1, 10)),)
    assert le.is_satisfied([0.1]) and not le.exactly_satisfied([0.1])
    assert not le_case.is_counterexample([0.5], [0.1])
    assert le_case.is_counterexample([0.5], [np.nextafter(0.1, 0.0)])


def test_output_coefficients_are_scaled_to_float64_or_refused():
    case = only_case(one_x("0", "1", "(assert (<= (* 0.1 Y_0) 0.3))"))
    assert rows_of(case) == [([[1.0]], [-3.0])]
    two = ("(declare-const X_0 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)"
           "(assert (>= X_0 0))(assert (<= X_0 1))")
    with pytest.raises(SpecError, match="not float64 numbers"):
        parse_vnnlib(two + "(assert (<= (+ (* 0.1 Y_0) (* 0.3333 Y_1)) 1))")


def test_exact_spec_round_trips_through_the_writer(tmp_path):
    from hybridver.specs import write_vnnlib
    spec = parse_vnnlib(HEADER + "(assert (>= X_0 1e-400))(assert (<= X_0 (/ 1 3)))"
                        "(assert (>= X_1 -0.1))(assert (<= X_1 9007199254740993))"
                        "(assert (or (and (<= Y_0 0.1)) (and (>= Y_1 (- (/ 2 3))))))")
    back = load_vnnlib(write_vnnlib(spec, tmp_path / "exact.vnnlib"))
    assert back == spec
    region = back.cases[0].region
    assert region.exact_lower == ((0, Fraction("1e-400")), (1, Fraction("-0.1")))
    assert region.exact_upper == ((0, Fraction(1, 3)), (1, Fraction(9007199254740993)))
