"""Input bounds that admit no value of the model's input dtype are pinned to its nearest
value (``specs/pinning.py``); bounds that admit one are never touched."""

from __future__ import annotations

import random
import warnings
from fractions import Fraction

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import hybridver
from hybridver.config import VerifyConfig
from hybridver.errors import VacuousSpecWarning
from hybridver.numerics import dtype_nearest, dtype_round_down, dtype_round_up
from hybridver.result import Verdict
from hybridver.specs.pinning import pin_to_dtype
from hybridver.specs.vnnlib import parse_vnnlib

PRINTED = "0.2823529541492462"  # repr(float(np.float32(0.28235295))): no float32, no float64


def _spec(lo: str, hi: str, out: str = "(assert (>= Y_0 0))"):
    text = ("(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
            f"(assert (>= X_0 {lo}))\n(assert (<= X_0 {hi}))\n"
            "(assert (>= X_1 0))\n(assert (<= X_1 1))\n" + out + "\n")
    return parse_vnnlib(text, n_inputs=2, n_outputs=1)


def test_dtype_rounding_brackets_the_exact_value():
    rng = random.Random(0)
    for _ in range(3000):
        q = Fraction(rng.randint(-10**12, 10**12), rng.randint(1, 10**12))
        for dtype in (np.float32, np.float64):
            below, above = dtype_round_down(q, dtype), dtype_round_up(q, dtype)
            assert Fraction(below) <= q <= Fraction(above)
            assert np.dtype(dtype).type(below) == below and np.dtype(dtype).type(above) == above
            assert below == above or np.nextafter(np.dtype(dtype).type(below),
                                                  np.dtype(dtype).type(np.inf)) == above
            nearest = dtype_nearest(q, dtype)
            assert abs(Fraction(nearest) - q) <= min(q - Fraction(below), Fraction(above) - q)
    assert dtype_nearest(Fraction("0.1"), np.float32) == float(np.float32(0.1))
    assert dtype_round_down(Fraction(10) ** 50, np.float32) == float(np.finfo(np.float32).max)


@pytest.mark.parametrize("text, dtype, expected", [
    (PRINTED, np.float32, float(np.float32(float(PRINTED)))),
    ("0.1", np.float32, float(np.float32(0.1))),
    ("0.1", np.float64, 0.1),
    ("0.28235295", np.float32, float(np.float32(0.28235295))),  # float32's own repr
])
def test_a_point_constraint_that_holds_no_input_is_pinned(text, dtype, expected):
    spec = _spec(text, text)
    with pytest.warns(VacuousSpecWarning, match="admit no"):
        pinned = pin_to_dtype(spec, dtype)
    box = pinned.cases[0].region
    assert box.lower[0] == box.upper[0] == expected
    assert box.contains(np.array([expected, 0.5]))
    assert (box.lower[1], box.upper[1]) == (0.0, 1.0)


@pytest.mark.parametrize("lo, hi", [
    ("0.50000000000000000001", "1"),   # holds float32 values: the sliver stays outside
    ("0.1", "0.2"),
    ("0.5", "0.5"),                    # a float32 number itself
])
def test_bounds_that_admit_an_input_are_left_alone(lo, hi):
    spec = _spec(lo, hi)
    with warnings.catch_warnings():
        warnings.simplefilter("error", VacuousSpecWarning)
        assert pin_to_dtype(spec, np.float32) is spec


def test_an_interval_straddling_a_midpoint_is_not_pinned():
    a = np.float32(0.75)
    b = np.nextafter(a, np.float32(1))
    mid = (Fraction(float(a)) + Fraction(float(b))) / 2
    tiny = Fraction(1, 10**30)
    spec = _spec(f"(/ {(mid - tiny).numerator} {(mid - tiny).denominator})",
                 f"(/ {(mid + tiny).numerator} {(mid + tiny).denominator})")
    with warnings.catch_warnings():
        warnings.simplefilter("error", VacuousSpecWarning)
        assert pin_to_dtype(spec, np.float32) is spec


@pytest.fixture(scope="module")
def sum_onnx(tmp_path_factory):
    """y = x_0 + x_1 (float32)."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "sum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        initializer=[numpy_helper.from_array(np.ones((2, 1), np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    path = tmp_path_factory.mktemp("pin") / "sum.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _verify(path, spec_text, tmp_path):
    spec_path = tmp_path / "p.vnnlib"
    spec_path.write_text(spec_text)
    return hybridver.verify_files(path, spec_path, VerifyConfig(timeout_s=10))


def test_a_printed_float_point_constraint_is_sat_end_to_end(sum_onnx, tmp_path):
    """dist_shift's pattern: X_0 fixed to a printed float32.  The exact reading admits no
    input, so before the pin no counterexample could be confirmed (unknown); pinned, the
    counterexample x = (f, 1) with y = f + 1 >= 1.25 is confirmed by onnxruntime."""
    head = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
    box = (f"(assert (>= X_0 {PRINTED}))\n(assert (<= X_0 {PRINTED}))\n"
           "(assert (>= X_1 0))\n(assert (<= X_1 1))\n")
    result = _verify(sum_onnx, head + box + "(assert (>= Y_0 1.25))\n", tmp_path)
    assert result.verdict is Verdict.SAT
    assert result.counterexample.x[0] == float(np.float32(float(PRINTED)))
    # y <= f + 1 < 1.2823529541492463 on the pinned box: never sat
    result = _verify(sum_onnx, head + box + "(assert (>= Y_0 1.2823529541492463))\n", tmp_path)
    assert result.verdict is not Verdict.SAT
