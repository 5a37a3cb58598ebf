"""Ops whose values onnxruntime computes differently from a fixed float64 network are
refused with the op, the node and the reason, never imported as identities:

* a Cast that rounds (float32 -> float16 / bfloat16 / float8, float64 -> float32, float ->
  int) on a value that depends on the input: hybridver once dropped every float Cast;
* Dropout in training mode, and ops that draw random numbers (RandomUniform, RandomNormal,
  their *Like forms, Bernoulli, Multinomial): hybridver once folded a random draw into a
  constant at import, or dropped a training-mode Dropout.

Casts that cannot change a value (same type, float16 -> float32 -> float64) and Dropout in
inference mode stay identities, checked against onnxruntime.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from hybridver.errors import HybridverInputError
from hybridver.frontends.onnx import elementwise, load_onnx
from hybridver.frontends.onnx.context import Unsupported, Var
from hybridver.ir.evaluate import evaluate

F32, F64, F16, BF16 = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, \
    TensorProto.BFLOAT16


def _save(tmp_path, nodes, in_type=F32, out_type=None, inits=(), opset=19, shape=(1, 3)):
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", in_type, list(shape))],
        [helper.make_tensor_value_info("y", out_type or in_type, list(shape))], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return path


def _matches_onnxruntime(path, x):
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    got = evaluate(load_onnx(path), torch.as_tensor(x.astype(np.float64))[None]).numpy()[0]
    np.testing.assert_array_equal(got, expected.astype(np.float64))


# ---------------------------------------------------------------------------- casts
@pytest.mark.parametrize("src, dst, dtype", [(F32, F32, np.float32), (F16, F32, np.float16),
                                             (F32, F64, np.float32), (F16, F64, np.float16),
                                             (F64, F64, np.float64)])
def test_value_preserving_casts_are_identities(tmp_path, src, dst, dtype):
    path = _save(tmp_path, [helper.make_node("Cast", ["x"], ["y"], to=dst)], src, dst)
    x = np.array([[0.1, -2.5, 1e-3]], dtype=dtype)
    _matches_onnxruntime(path, x)


@pytest.mark.parametrize("src, dst, words", [
    (F32, F16, "float32 -> float16"), (F32, BF16, "float32 -> bfloat16"),
    (F64, F32, "float64 -> float32"), (F16, BF16, "float16 -> bfloat16"),
    (F32, TensorProto.FLOAT8E4M3FN, "float32 -> float8e4m3fn"),
    (F32, TensorProto.INT32, "float32 -> int32")])
def test_rounding_casts_are_refused(tmp_path, src, dst, words):
    nodes = [helper.make_node("Cast", ["x"], ["c"], name="c1", to=dst),
             helper.make_node("Cast", ["c"], ["y"], to=src)]
    path = _save(tmp_path, nodes, src)
    with pytest.raises(HybridverInputError) as info:
        load_onnx(path)
    message = str(info.value)
    assert f"Cast ({words} rounds values" in message and "node 'c1'" in message, message


@pytest.mark.parametrize("wide, narrow, wide_np, narrow_np", [
    (F32, F16, np.float32, np.float16), (F64, F32, np.float64, np.float32)])
def test_onnxruntime_rounds_a_narrowing_cast(tmp_path, wide, narrow, wide_np, narrow_np):
    """Why the cast is refused: onnxruntime rounds x = 0.1 to the narrow type (the IR,
    computing in float64, would keep it)."""
    nodes = [helper.make_node("Cast", ["x"], ["c"], to=narrow),
             helper.make_node("Cast", ["c"], ["y"], to=wide)]
    path = _save(tmp_path, nodes, wide)
    y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": np.array([[0.1, 1.0, -2.5]], dtype=wide_np)})[0]
    assert y[0, 0] == wide_np(narrow_np(0.1)) != wide_np(0.1)


def test_a_narrowing_cast_of_a_constant_is_folded(tmp_path):
    """A constant cast to float16 is folded with real rounding, then widened exactly."""
    k = numpy_helper.from_array(np.array([[0.1, 0.2, 0.3]], dtype=np.float32), "k")
    nodes = [helper.make_node("Cast", ["k"], ["k16"], to=F16),
             helper.make_node("Cast", ["k16"], ["k32"], to=F32),
             helper.make_node("Add", ["x", "k32"], ["y"])]
    path = _save(tmp_path, nodes, inits=[k])
    _matches_onnxruntime(path, np.array([[1.0, 2.0, -1.0]], dtype=np.float32))


# ---------------------------------------------------------------------------- dropout
def _dropout(tmp_path, mode, data="x", opset=19):
    inits = [numpy_helper.from_array(np.array(0.5, dtype=np.float32), "ratio")]
    ins = [data, "ratio"]
    if mode is not None:
        inits.append(numpy_helper.from_array(np.array(mode), "mode"))
        ins.append("mode")
    if data != "x":
        inits.append(numpy_helper.from_array(np.ones((1, 3), dtype=np.float32), data))
    nodes = [helper.make_node("Dropout", ins, ["d"], name="drop"),
             helper.make_node("Add", ["x", "d"], ["y"])]
    return _save(tmp_path, nodes, inits=inits, opset=opset)


@pytest.mark.parametrize("mode", [None, False])
def test_inference_mode_dropout_is_the_identity(tmp_path, mode):
    _matches_onnxruntime(_dropout(tmp_path, mode), np.array([[0.5, -1.0, 2.0]], np.float32))


@pytest.mark.parametrize("data", ["x", "k"])
def test_training_mode_dropout_is_refused(tmp_path, data):
    with pytest.raises(HybridverInputError,
                       match=r"Dropout \(training_mode=true .*nondeterministic.*node 'drop'"):
        load_onnx(_dropout(tmp_path, True, data))


def test_dropout_with_a_computed_training_mode_is_refused():
    ctx = SimpleNamespace(opset=13)
    mode = Var("mode", ())
    with pytest.raises(Unsupported, match="training_mode is not a constant"):
        elementwise.check_dropout_mode(ctx, [Var("x", (1, 3)), None, mode], {})


def test_old_opset_dropout_without_is_test_is_refused(tmp_path):
    nodes = [helper.make_node("Dropout", ["x"], ["y"], name="drop")]
    with pytest.raises(HybridverInputError, match=r"is_test=0.*node 'drop'"):
        load_onnx(_save(tmp_path, nodes, opset=6))


# ---------------------------------------------------------------------------- random ops
def _random_model(tmp_path, op):
    k = numpy_helper.from_array(np.full((1, 3), 0.5, dtype=np.float32), "k")
    if op in ("RandomUniform", "RandomNormal"):
        rand = helper.make_node(op, [], ["r"], name="rnd", shape=[1, 3])
    elif op in ("RandomUniformLike", "RandomNormalLike", "Bernoulli"):
        rand = helper.make_node(op, ["k"], ["r"], name="rnd")
    else:  # Multinomial: (batch, classes) log-probabilities -> (batch, samples) int32
        rand = helper.make_node(op, ["k"], ["ri"], name="rnd", sample_size=3)
    nodes = [rand] + ([helper.make_node("Cast", ["ri"], ["r"], to=F32)]
                      if op == "Multinomial" else [])
    nodes.append(helper.make_node("Add", ["x", "r"], ["y"]))
    return _save(tmp_path, nodes, inits=[k])


@pytest.mark.parametrize("op", ["RandomUniform", "RandomNormal", "RandomUniformLike",
                                "RandomNormalLike", "Bernoulli", "Multinomial"])
def test_random_ops_are_refused_even_on_constants(tmp_path, op):
    with pytest.raises(HybridverInputError,
                       match=rf"{op} \(draws random numbers.*\(node 'rnd'\)"):
        load_onnx(_random_model(tmp_path, op))


def test_random_op_on_the_input_is_refused(tmp_path):
    nodes = [helper.make_node("RandomNormalLike", ["x"], ["r"], name="rnd"),
             helper.make_node("Add", ["x", "r"], ["y"])]
    with pytest.raises(HybridverInputError, match=r"RandomNormalLike .*node 'rnd'"):
        load_onnx(_save(tmp_path, nodes))
