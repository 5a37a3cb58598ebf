"""End to end: VNN-LIB constants that are not float64 numbers never make a wrong sat.

The model is y = x (one float32 input).  Each spec has no counterexample, exactly; read
with float64 rounding to nearest it had one, just outside the exact property."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import hybridver
from hybridver.config import VerifyConfig
from hybridver.result import Verdict

HEAD = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
CASES = {
    # x >= 0.5 + 1e-20 rounds to x >= 0.5 (a float32 number), where y = 0.5 <= 0.5
    "input_sliver": "(assert (>= X_0 0.50000000000000000001))\n(assert (<= X_0 1))\n"
                    "(assert (<= Y_0 0.5))\n",
    # y >= 1 + 1e-20 rounds to y >= 1, which x = 1 gives
    "output_offset": "(assert (>= X_0 0))\n(assert (<= X_0 1))\n"
                     "(assert (>= Y_0 1.00000000000000000001))\n",
}


@pytest.fixture(scope="module")
def identity_onnx(tmp_path_factory):
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        initializer=[numpy_helper.from_array(np.ones((1, 1), np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("exact") / "identity.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_sat_from_a_rounded_constant(identity_onnx, tmp_path, name):
    spec_path = tmp_path / f"{name}.vnnlib"
    spec_path.write_text(HEAD + CASES[name])
    model = hybridver.load_model(identity_onnx)
    spec = hybridver.load_spec(spec_path, model)
    result = hybridver.verify(model, spec, VerifyConfig(timeout_s=3))
    # the exact property holds; over the outward float64 box it cannot be proven (the
    # float sets touch the violating set), so the right answers are unsat or unknown
    assert result.verdict in (Verdict.UNSAT, Verdict.UNKNOWN, Verdict.TIMEOUT), result.message
