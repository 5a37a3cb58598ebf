"""Verdicts and counterexamples: a sat result cannot exist without real-model confirmation."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from hybridver.result import (CandidateCounterexample, ConfirmedCounterexample,
                              VerificationResult, Verdict, confirm_counterexample,
                              format_results_file, read_results_file, write_results_file)
from hybridver.errors import HybridverInputError
from hybridver.numerics import round_down, round_up
from hybridver.specs import InputBox, OutputConstraints, Spec, SpecCase


def _spec(lower=(0.0, 0.0), upper=(1.0, 1.0)) -> Spec:
    # counterexample: y0 - y1 <= 0 (i.e. y1 >= y0)
    disjunct = OutputConstraints(np.array([[1.0, -1.0]]), np.array([0.0]))
    case = SpecCase(InputBox(np.array(lower), np.array(upper)), (disjunct,))
    return Spec((case,), n_inputs=2, n_outputs=2)


def identity_model(x: np.ndarray) -> np.ndarray:
    """'Real model' y = x, shape (batch, 1, 2) -> (batch, 1, 2)."""
    return np.asarray(x, dtype=np.float64)


def test_confirmed_counterexample_cannot_be_built_directly():
    with pytest.raises(TypeError):
        ConfirmedCounterexample(np.zeros(2), np.zeros(2), 0, 0, -1.0, "me", "me")


def test_sat_requires_confirmed_counterexample():
    with pytest.raises(ValueError):
        VerificationResult(Verdict.SAT, 1.0)
    cand = CandidateCounterexample(np.zeros(2), np.zeros(2), "pgd")
    with pytest.raises(ValueError):
        VerificationResult(Verdict.SAT, 1.0, counterexample=cand)  # type: ignore[arg-type]


def test_confirm_accepts_real_violation_and_rejects_spurious():
    spec = _spec()
    good = CandidateCounterexample(np.array([0.2, 0.7]), np.array([0.2, 0.7]), "test")
    cex = confirm_counterexample(good, spec, identity_model, (1, 2), "identity")
    assert cex is not None and cex.margin <= 0 and cex.checked_by == "identity"
    result = VerificationResult(Verdict.SAT, 0.1, counterexample=cex)
    assert result.to_json()["counterexample"]["x"] == pytest.approx([0.2, 0.7], abs=1e-7)
    # the component claims a violation, the real model disagrees: no counterexample
    spurious = CandidateCounterexample(np.array([0.9, 0.1]), np.array([0.0, 1.0]), "test")
    assert confirm_counterexample(spurious, spec, identity_model, (1, 2), "identity") is None


def test_confirm_rejects_points_outside_the_region():
    spec = _spec()
    outside = CandidateCounterexample(np.array([-0.5, 0.7]), np.array([-0.5, 0.7]), "test")
    assert confirm_counterexample(outside, spec, identity_model, (1, 2), "identity") is None


def test_float32_rounding_stays_inside_the_box():
    # 0.1 is not a float32 number; rounding 0.1 to float32 gives 0.100000001 > 0.1
    spec = _spec(lower=(0.0, 0.0), upper=(0.1, 0.1))
    cand = CandidateCounterexample(np.array([0.1, 0.1]), np.array([0.1, 0.1]), "test")
    cex = confirm_counterexample(cand, spec, identity_model, (1, 2), "identity")
    assert cex is not None
    assert np.all(cex.x <= 0.1) and cex.x.dtype == np.float64
    assert np.all(cex.x.astype(np.float32).astype(np.float64) == cex.x)


def test_results_file_round_trip(tmp_path):
    spec = _spec()
    cand = CandidateCounterexample(np.array([0.25, 0.5]), np.array([0.25, 0.5]), "test")
    cex = confirm_counterexample(cand, spec, identity_model, (1, 2), "identity")
    path = tmp_path / "out.txt"
    write_results_file(VerificationResult(Verdict.SAT, 0.1, counterexample=cex), path)
    text = path.read_text()
    assert text.splitlines()[0] == "sat" and "(X_0 0.25)" in text and "(Y_1 0.5)" in text
    parsed = read_results_file(path)
    assert parsed.verdict is Verdict.SAT
    np.testing.assert_array_equal(parsed.x, cex.x)
    np.testing.assert_array_equal(parsed.y, cex.y)
    for verdict in (Verdict.UNSAT, Verdict.UNKNOWN, Verdict.TIMEOUT):
        assert format_results_file(VerificationResult(verdict, 1.0)) == verdict.value + "\n"
        write_results_file(VerificationResult(verdict, 1.0), path)
        assert read_results_file(path).verdict is verdict


def test_read_results_file_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("maybe\n")
    with pytest.raises(HybridverInputError):
        read_results_file(bad)
    with pytest.raises(HybridverInputError):
        read_results_file(tmp_path / "missing.txt")
    other = tmp_path / "other.txt"
    other.write_text("violated\n((X_0 1e-3)\n (Y_0 -2.5))\n")
    parsed = read_results_file(other)
    assert parsed.verdict is Verdict.SAT and parsed.x[0] == 1e-3 and parsed.y[0] == -2.5


def test_confirm_is_exact_where_float64_rounding_would_invent_a_violation():
    """Outputs (2**60, 1) do not meet ``y_0 + y_1 <= 2**60`` (the sum is 2**60 + 1), but
    float64 rounds the sum to 2**60: the old check confirmed this 'counterexample'."""
    big = 2.0 ** 60
    disjunct = OutputConstraints(np.array([[1.0, 1.0]]), np.array([-big]))
    spec = Spec((SpecCase(InputBox(np.zeros(2), np.ones(2)), (disjunct,)),), n_inputs=2,
                n_outputs=2)

    def constant_model(x):
        return np.tile(np.array([big, 1.0], dtype=np.float32), (len(x), 1))

    candidate = CandidateCounterexample(np.array([0.5, 0.5]), np.array([big, 1.0]), "test")
    assert confirm_counterexample(candidate, spec, constant_model, (2,), "const") is None
    # one less: 2**60 - 2**36 + 1 (a float32 step below 2**60) does meet it, exactly
    below = np.float32(big) - np.float32(2.0 ** 36)
    lower_model = lambda x: np.tile(np.array([below, 1.0], dtype=np.float32), (len(x), 1))  # noqa: E731
    cex = confirm_counterexample(candidate, spec, lower_model, (2,), "const")
    assert cex is not None and cex.margin <= 0


def test_exactly_satisfied_rows():
    from hybridver.result import exactly_satisfied

    C, d = np.array([[1.0, 1.0], [1.0, -1.0]]), np.array([-2.0 ** 60, 0.0])
    assert not exactly_satisfied(C, d, np.array([2.0 ** 60, 1.0]))
    assert exactly_satisfied(C, d, np.array([2.0 ** 59, 2.0 ** 59]))
    assert exactly_satisfied(np.zeros((0, 2)), np.zeros(0), np.array([1.0, 2.0]))


# ---------------------------------------------------------------------- exact spec constants
def _exact_box_spec(q_lo: Fraction, q_hi: Fraction, disjunct=None) -> Spec:
    """One input in the exact box [q_lo, q_hi] (outward float64 bounds), y = x violates when
    ``disjunct`` (default y <= 1) holds."""
    lo, hi = round_down(q_lo), round_up(q_hi)
    box = InputBox(np.array([lo]), np.array([hi]),
                   ((0, q_lo),) if lo != q_lo else (), ((0, q_hi),) if hi != q_hi else ())
    disjunct = disjunct or OutputConstraints(np.array([[1.0]]), np.array([-1.0]))
    return Spec((SpecCase(box, (disjunct,)),), n_inputs=1, n_outputs=1)


def test_confirm_moves_a_point_out_of_the_outward_sliver():
    """The exact lower bound 1/10 is stored as the float below it; a candidate on that float
    lies outside the exact box and is moved onto the next float, inside."""
    spec = _exact_box_spec(Fraction(1, 10), Fraction(1, 2))
    below = spec.cases[0].region.lower[0]
    assert Fraction(below) < Fraction(1, 10)
    cand = CandidateCounterexample(np.array([below]), np.array([below]), "test")
    for dtype in (np.float64, np.float32):
        cex = confirm_counterexample(cand, spec, identity_model, (1,), "identity", dtype)
        assert cex is not None and Fraction(float(cex.x[0])) >= Fraction(1, 10)


def test_confirm_rejects_a_box_with_no_float_inside():
    """[1/10, 1/10] holds no float64: whatever the candidate, nothing is confirmed."""
    spec = _exact_box_spec(Fraction(1, 10), Fraction(1, 10))
    for x in (0.1, np.nextafter(0.1, 0.0)):
        cand = CandidateCounterexample(np.array([x]), np.array([x]), "test")
        for dtype in (np.float64, np.float32):
            assert confirm_counterexample(cand, spec, identity_model, (1,), "identity",
                                          dtype) is None


def test_confirm_uses_the_exact_output_offset():
    """y <= 1/10 is stored as y - 0.1 <= 0 with the float 0.1 above 1/10 (d rounded down):
    the output y = 0.1 meets the float row but not the exact one."""
    d = round_down(-Fraction(1, 10))
    row = OutputConstraints(np.array([[1.0]]), np.array([d]), ((0, -Fraction(1, 10)),))
    spec = _exact_box_spec(Fraction(0), Fraction(1), row)
    on_float = CandidateCounterexample(np.array([0.1]), np.array([0.1]), "test")
    assert confirm_counterexample(on_float, spec, identity_model, (1,), "identity",
                                  np.float64) is None
    below = np.nextafter(0.1, 0.0)
    inside = CandidateCounterexample(np.array([below]), np.array([below]), "test")
    assert confirm_counterexample(inside, spec, identity_model, (1,), "identity",
                                  np.float64) is not None


def test_exactly_satisfied_with_exact_offsets():
    from hybridver.result import exactly_satisfied

    C, d = np.array([[1.0]]), np.array([-0.1])  # -0.1 is below -1/10
    assert exactly_satisfied(C, d, np.array([0.1]))
    assert not exactly_satisfied(C, d, np.array([0.1]), ((0, -Fraction(1, 10)),))
