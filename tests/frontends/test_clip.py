"""ONNX Clip: imported as ReLUs that compute the clip exactly (checked against
onnxruntime, old and new opsets), verified end to end; bounds it cannot match refused."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import hybridver
from hybridver.config import Mode, VerifyConfig
from hybridver.errors import HybridverInputError
from hybridver.frontends.onnx import load_onnx
from hybridver.ir.evaluate import evaluate
from hybridver.result import Verdict


def _clip_model(opset: int, lo, hi, variable_bound: bool = False):
    inits, inputs, graph_inputs = [], ["x"], [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 9])]
    if opset >= 11:
        for name, v in (("lo", lo), ("hi", hi)):
            if v is None:
                inputs.append("")
            elif variable_bound:
                inputs.append(name)
                graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, []))
            else:
                inputs.append(name)
                inits.append(numpy_helper.from_array(np.array(v, np.float32), name))
        while inputs[-1] == "":
            inputs.pop()
        node = helper.make_node("Clip", inputs, ["y"])
    else:
        node = helper.make_node("Clip", ["x"], ["y"], **{
            k: v for k, v in (("min", lo), ("max", hi)) if v is not None})
    graph = helper.make_graph([node], "clip", graph_inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 9])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    return model


BOUNDS = [(-0.5, 0.5), (None, 0.25), (0.1, None), (None, None), (0.0, 6.0), (0.3, 0.3)]


@pytest.mark.parametrize("opset", [6, 13])
@pytest.mark.parametrize("lo, hi", BOUNDS)
def test_clip_computes_what_onnxruntime_computes(tmp_path, opset, lo, hi):
    model = _clip_model(opset, lo, hi)
    path = tmp_path / "clip.onnx"
    path.write_bytes(model.SerializeToString())
    graph = load_onnx(path)
    x = np.random.default_rng(0).uniform(-2, 8, (1, 9)).astype(np.float32)
    x[0, :4] = [lo or 0.0, hi or 0.0, -2.0, 8.0]  # the bounds themselves, and beyond
    expected = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = evaluate(graph, torch.as_tensor(x, dtype=torch.float64)[None]).numpy()[0]
    np.testing.assert_array_equal(got, expected.astype(np.float64))


@pytest.mark.parametrize("lo, hi, variable, words", [
    (0.5, -0.5, False, "min 0.5 > max -0.5"),
    (0.0, 1.0, True, "non-constant Clip min"),
])
def test_clip_bounds_it_cannot_match_are_refused(tmp_path, lo, hi, variable, words):
    path = tmp_path / "clip.onnx"
    path.write_bytes(_clip_model(13, lo, hi, variable).SerializeToString())
    with pytest.raises(HybridverInputError, match=words):
        load_onnx(path)


@pytest.mark.parametrize("mode", [Mode.HYBRID, Mode.EXACT])
def test_a_clipped_network_is_verified(tmp_path, mode):
    """y_i = clip(x_i, -0.5, 0.5) on x in [0, 1]^9: y_0 <= 0.5 always (the property
    'y_0 >= 0.5 + 1e-3' is unsat), and y_0 >= 0.49 is reached (sat, x_0 >= 0.49)."""
    path = tmp_path / "clip.onnx"
    path.write_bytes(_clip_model(13, -0.5, 0.5).SerializeToString())
    head = "".join(f"(declare-const X_{i} Real)\n" for i in range(9))
    head += "".join(f"(declare-const Y_{i} Real)\n" for i in range(9))
    head += "".join(f"(assert (>= X_{i} 0))\n(assert (<= X_{i} 1))\n" for i in range(9))
    config = VerifyConfig(timeout_s=20, mode=mode)
    for threshold, verdict in (("0.501", Verdict.UNSAT), ("0.49", Verdict.SAT)):
        spec = tmp_path / f"p{threshold}.vnnlib"
        spec.write_text(head + f"(assert (>= Y_0 {threshold}))\n")
        result = hybridver.verify_files(path, spec, config)
        assert result.verdict is verdict, (threshold, result.message)
