"""The immutable Spec types: validation, semantics of cases and disjuncts, equality."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hybridver.errors import DimensionMismatchError
from hybridver.specs import InputBox, OutputConstraints, Spec, SpecCase


def box(lo, hi):
    return InputBox(np.array(lo, dtype=float), np.array(hi, dtype=float))


def rows(C, d):
    return OutputConstraints(np.array(C, dtype=float), np.array(d, dtype=float))


# ------------------------------------------------------------------ InputBox
def test_input_box_basics():
    b = box([0.0, -1.0], [1.0, 1.0])
    assert b.n == 2
    np.testing.assert_array_equal(b.center, [0.5, 0.0])
    np.testing.assert_array_equal(b.width, [1.0, 2.0])
    assert b.lower.dtype == np.float64 and b.upper.dtype == np.float64
    assert b.contains([0.5, 0.0])
    assert b.contains([1.0, -1.0])  # closed box
    assert not b.contains([1.0 + 1e-9, 0.0])
    assert b.contains([1.0 + 1e-9, 0.0], tol=1e-6)
    got = b.contains(np.array([[0.5, 0.0], [2.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_array_equal(got, [True, False, True])
    assert not b.contains([np.nan, 0.0])


def test_input_box_copies_and_is_read_only():
    lo = np.zeros(3)
    b = InputBox(lo, np.ones(3))
    lo[0] = 5.0
    assert b.lower[0] == 0.0
    with pytest.raises(ValueError):
        b.lower[0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.lower = np.ones(3)


@pytest.mark.parametrize("lo, hi, fragment", [
    ([0.0, 2.0], [1.0, 1.0], "lower[1]"),
    ([0.0], [1.0, 2.0], "differ in length"),
    ([0.0, -np.inf], [1.0, 1.0], "finite"),
    ([0.0, np.nan], [1.0, 1.0], "finite"),
    ([[0.0]], [[1.0]], "1-D"),
])
def test_input_box_validation(lo, hi, fragment):
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        InputBox(np.array(lo), np.array(hi))


def test_input_box_contains_wrong_size():
    with pytest.raises(DimensionMismatchError):
        box([0.0, 0.0], [1.0, 1.0]).contains([0.5])


# ------------------------------------------------------------------ OutputConstraints
def test_output_constraints_margin():
    oc = rows([[1.0, -1.0], [0.0, 1.0]], [0.0, -2.0])  # y0 <= y1 and y1 <= 2
    assert oc.n_rows == 2 and oc.n_outputs == 2
    assert oc.violation_margin([0.0, 1.0]) == pytest.approx(-1.0)
    assert oc.violation_margin([3.0, 1.0]) == pytest.approx(2.0)
    assert oc.is_satisfied([1.0, 2.0])  # boundary counts
    assert not oc.is_satisfied([1.0, 2.5])
    batch = np.array([[0.0, 1.0], [3.0, 1.0], [1.0, 2.5]])
    np.testing.assert_allclose(oc.violation_margin(batch), [-1.0, 2.0, 0.5])
    np.testing.assert_array_equal(oc.is_satisfied(batch), [True, False, False])


def test_output_constraints_zero_rows_is_true():
    oc = OutputConstraints(np.zeros((0, 3)), np.zeros(0))
    assert oc.violation_margin([1.0, 2.0, 3.0]) == -np.inf
    assert oc.is_satisfied([1.0, 2.0, 3.0])


@pytest.mark.parametrize("C, d", [
    (np.zeros((2, 3)), np.zeros(3)),
    (np.zeros(3), np.zeros(1)),
    (np.array([[np.inf, 0.0]]), np.zeros(1)),
])
def test_output_constraints_validation(C, d):
    with pytest.raises(ValueError):
        OutputConstraints(C, d)


# ------------------------------------------------------------------ SpecCase
def test_case_disjunction_semantics():
    a = rows([[1.0, -1.0]], [0.0])   # y0 <= y1
    b = rows([[0.0, 1.0]], [-10.0])  # y1 <= 10
    case = SpecCase(box([0.0], [1.0]), (a, b))
    assert not case.output_is_true
    assert case.output_satisfied([0.0, 20.0])      # a
    assert case.output_satisfied([5.0, 1.0])       # b
    assert not case.output_satisfied([30.0, 20.0])  # neither
    assert case.violation_margin([30.0, 20.0]) == pytest.approx(10.0)
    np.testing.assert_allclose(case.violation_margin(np.array([[0.0, 20.0], [30.0, 20.0]])),
                               [-20.0, 10.0])
    assert case.is_counterexample([0.5], [5.0, 1.0])
    assert not case.is_counterexample([1.5], [5.0, 1.0])


def test_case_with_zero_disjuncts_is_true():
    case = SpecCase(box([0.0], [1.0]), ())
    assert case.output_is_true
    assert case.output_satisfied([123.0, -4.0])
    assert case.violation_margin([1.0]) == -np.inf
    assert case.is_counterexample([0.25], [1e9])
    assert not case.is_counterexample([2.0], [1e9])


def test_case_normalizes_empty_conjunction_to_true():
    empty = OutputConstraints(np.zeros((0, 2)), np.zeros(0))
    case = SpecCase(box([0.0], [1.0]), [rows([[1.0, 0.0]], [0.0]), empty])
    assert case.disjuncts == () and case.output_is_true
    assert case == SpecCase(box([0.0], [1.0]), ())


def test_case_rejects_mixed_output_sizes():
    with pytest.raises(ValueError):
        SpecCase(box([0.0], [1.0]), (rows([[1.0, 0.0]], [0.0]), rows([[1.0]], [0.0])))


# ------------------------------------------------------------------ Spec
def make_spec():
    # case 1: x in [0,1]^2, counterexample iff y0 >= y1 (y1 - y0 <= 0)
    # case 2: x in [2,3]x[0,1], every output is a counterexample
    c1 = SpecCase(box([0.0, 0.0], [1.0, 1.0]), (rows([[-1.0, 1.0]], [0.0]),))
    c2 = SpecCase(box([2.0, 0.0], [3.0, 1.0]), ())
    return Spec((c1, c2), 2, 2, name="demo")


def test_spec_is_counterexample():
    spec = make_spec()
    assert spec.is_counterexample([0.5, 0.5], [2.0, 1.0])
    assert spec.is_counterexample([0.5, 0.5], [1.0, 1.0])  # ties count (non-strict)
    assert not spec.is_counterexample([0.5, 0.5], [1.0, 2.0])
    assert spec.is_counterexample([2.5, 0.5], [1.0, 2.0])  # case 2 has output `true`
    assert not spec.is_counterexample([1.5, 0.5], [2.0, 1.0])
    # inputs and outputs of any shape are flattened
    assert spec.is_counterexample(np.array([[0.5], [0.5]]), np.array([[2.0, 1.0]]))


def test_spec_tolerance_applies_to_the_region_only():
    spec = make_spec()
    x_out = [1.0 + 1e-7, 0.5]
    assert not spec.is_counterexample(x_out, [2.0, 1.0])
    assert spec.is_counterexample(x_out, [2.0, 1.0], tol=1e-6)
    # output just on the safe side: no tolerance helps
    assert not spec.is_counterexample([0.5, 0.5], [1.0, 1.0 + 1e-12], tol=1.0)


def test_spec_is_counterexample_wrong_sizes():
    spec = make_spec()
    with pytest.raises(DimensionMismatchError):
        spec.is_counterexample([0.5], [1.0, 2.0])
    with pytest.raises(DimensionMismatchError):
        spec.is_counterexample([0.5, 0.5], [1.0, 2.0, 3.0])


def test_check_dimensions():
    spec = make_spec()
    spec.check_dimensions(2, 2)
    with pytest.raises(DimensionMismatchError, match=r"2 input.*784 inputs"):
        spec.check_dimensions(784, 2)
    with pytest.raises(DimensionMismatchError, match=r"2 output.*10 outputs"):
        spec.check_dimensions(2, 10)


def test_spec_validates_case_sizes():
    c1 = SpecCase(box([0.0], [1.0]), ())
    with pytest.raises(DimensionMismatchError):
        Spec((c1,), 2, 1)
    c2 = SpecCase(box([0.0], [1.0]), (rows([[1.0, 0.0]], [0.0]),))
    with pytest.raises(DimensionMismatchError):
        Spec((c2,), 1, 3)
    with pytest.raises(ValueError):
        Spec((), 0, 1)


def test_spec_without_cases_never_violated():
    spec = Spec((), 1, 1)
    assert not spec.is_counterexample([0.0], [0.0])


def test_spec_equality_and_hash():
    a, b = make_spec(), make_spec()
    assert a == b and hash(a) == hash(b)
    assert dataclasses.replace(a, name="other") == a  # names are labels
    c = Spec(a.cases[:1], 2, 2)
    assert a != c
    assert len({a, b, c}) == 2


def test_spec_bounding_box_and_immutability():
    spec = make_spec()
    hull = spec.bounding_box()
    np.testing.assert_array_equal(hull.lower, [0.0, 0.0])
    np.testing.assert_array_equal(hull.upper, [3.0, 1.0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.cases = ()
    assert isinstance(spec.cases, tuple)
