"""Hand-written transposes (hybridver/bounds/linear_transposes.py) against the evaluator's
vjp, and CROWN through them sound against onnxruntime.

Two small real networks built here as ONNX: a generator-like CNN (ConvTranspose with pads,
output_padding and dilation, nearest Upsample, a 1-D ConvTranspose, BatchNorm-like
Mul/Add, Conv) and a one-head attention block (MatMul of two variables, Softmax,
Transposes, Reshapes, a residual Add, ReduceMean).  For every linear node with a direct
transpose, the transpose equals the vmap'ed vjp on random coefficients; CROWN bounds with
the direct rules and broadcast products (hybridver/ir/decompose.py) on and off agree, and
hold on sampled points run by onnxruntime; broadcasting needs fewer operand bounds.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from hybridver.bounds import BoundConfig, compute_bounds
from hybridver.bounds.plan import GraphPlan, for_bounds
from hybridver.frontends.onnx import load_onnx

ort.set_default_logger_severity(4)


def _model(nodes, inits, in_shape, out_shape, opset=13) -> bytes:
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        [numpy_helper.from_array(v if v.dtype == np.int64 else v.astype(np.float32), k)
         for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model).SerializeToString()


def _cnn() -> tuple[bytes, tuple[int, ...]]:
    """x (1, 4) -> Gemm -> (1, 3, 2, 2) -> ConvT(s2, pads, output_padding) -> Relu ->
    Resize (nearest) x2 -> ConvT(dilation 2) -> Mul/Add -> Relu -> Conv(s2) -> Reshape -> 1-D
    ConvT -> Gemm (2 outputs)."""
    r = np.random.default_rng(0)
    inits = {
        "w0": r.normal(size=(12, 4)) * 0.5, "b0": r.normal(size=12) * 0.1,
        "s0": np.array([1, 3, 2, 2], dtype=np.int64), "ax": np.array([1], dtype=np.int64),
        "s1": np.array([1, 3, -1], dtype=np.int64),
        "wt1": r.normal(size=(3, 4, 3, 3)) * 0.3, "bt1": r.normal(size=4) * 0.1,
        "scales": np.array([1, 1, 2, 2], dtype=np.float32),
        "wt2": r.normal(size=(4, 2, 2, 2)) * 0.3,
        "k": r.normal(size=(1, 2, 1, 1)), "c": r.normal(size=(1, 2, 1, 1)) * 0.1,
        "wc": r.normal(size=(3, 2, 3, 3)) * 0.3, "bc": r.normal(size=3) * 0.1,
        "wt3": r.normal(size=(3, 2, 3)) * 0.3,
    }
    nodes = [
        helper.make_node("Gemm", ["x", "w0", "b0"], ["h0"], transB=1),
        helper.make_node("Reshape", ["h0", "s0"], ["h1"]),
        helper.make_node("ConvTranspose", ["h1", "wt1", "bt1"], ["h2"], strides=[2, 2],
                         pads=[1, 0, 0, 1], output_padding=[1, 0]),
        helper.make_node("Relu", ["h2"], ["h3"]),
        helper.make_node("Resize", ["h3", "", "scales"], ["h4"], mode="nearest"),
        helper.make_node("ConvTranspose", ["h4", "wt2"], ["h5"], dilations=[2, 2]),
        helper.make_node("Mul", ["h5", "k"], ["h6"]),
        helper.make_node("Add", ["h6", "c"], ["h7"]),
        helper.make_node("Relu", ["h7"], ["h8"]),
        helper.make_node("Conv", ["h8", "wc", "bc"], ["h9"], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["h9", "s1"], ["h10"]),
        helper.make_node("ConvTranspose", ["h10", "wt3"], ["h11"], strides=[2], pads=[1, 0]),
        helper.make_node("Flatten", ["h11"], ["h12"]),
        helper.make_node("ReduceSum", ["h12", "ax"], ["y"], keepdims=1),
    ]
    return _model(nodes, inits, (1, 4), (1, 1)), (1, 4)


def _attention() -> tuple[bytes, tuple[int, ...]]:
    """x (1, 3, 4) tokens -> q, k, v (MatMul by constants) -> softmax(q k^T / 2) v ->
    residual Add -> ReduceMean over tokens -> Gemm (3 outputs)."""
    r = np.random.default_rng(1)
    inits = {name: r.normal(size=(4, 4)) * 0.5 for name in ("wq", "wk", "wv")}
    inits.update({"half": np.array(0.5), "wo": r.normal(size=(3, 4))})
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"]),
        helper.make_node("MatMul", ["x", "wk"], ["k"]),
        helper.make_node("MatMul", ["x", "wv"], ["v"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["s"]),
        helper.make_node("Mul", ["s", "half"], ["s2x"]),
        helper.make_node("Softmax", ["s2x"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["o"]),
        helper.make_node("Add", ["o", "x"], ["res"]),
        helper.make_node("ReduceMean", ["res"], ["m"], axes=[1], keepdims=0),  # opset 13: attr
        helper.make_node("Gemm", ["m", "wo"], ["y"], transB=1),
    ]
    return _model(nodes, inits, (1, 3, 4), (1, 3)), (1, 3, 4)


NETWORKS = {"cnn": _cnn, "attention": _attention}


def _load(tmp_path, name):
    data, shape = NETWORKS[name]()
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(data)
    return load_onnx(path), data, shape


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_direct_transposes_equal_the_vjp(tmp_path, name):
    graph, _, _ = _load(tmp_path, name)
    plans = {d: GraphPlan(for_bounds(graph), torch.float64, torch.device("cpu"), d)
             for d in (True, False)}
    torch.manual_seed(0)
    covered = set()
    for node_name, rule in plans[True].rules.items():
        if rule._direct is None:
            continue
        covered.add(rule.node.op.value)
        lam = torch.randn(3, 2, *rule.node.shape, dtype=torch.float64)
        for got, want in zip(rule.backward(lam), plans[False].rules[node_name].backward(lam)):
            assert got.shape == want.shape, node_name
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    expected = {"cnn": {"conv_transpose", "upsample", "mul", "add", "reshape"},
                "attention": {"transpose", "gather", "sub", "reduce_sum",
                              "reduce_mean", "add", "reshape"}}[name]
    assert expected <= covered, covered


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_crown_through_direct_rules_is_sound(tmp_path, name):
    """CROWN (float32) with direct rules and broadcast products on and off: the same bounds
    up to rounding, and every sampled output of onnxruntime inside them."""
    graph, data, shape = _load(tmp_path, name)
    r = np.random.default_rng(2)
    centre = r.normal(size=shape).astype(np.float32)
    lo, hi = centre - 0.1, centre + 0.1
    res = {}
    for new in (True, False):  # direct rules and broadcast products, on and off
        res[new] = compute_bounds(graph, lo, hi, config=BoundConfig(
            method="crown", direct_linear_rules=new, broadcast_products=new))
    lower, upper = np.asarray(res[True].lower)[0], np.asarray(res[True].upper)[0]
    np.testing.assert_allclose(lower, np.asarray(res[False].lower)[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(upper, np.asarray(res[False].upper)[0], rtol=1e-4, atol=1e-4)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    points = r.uniform(lo, hi, size=(400, *shape[1:])).astype(np.float32)
    corners = np.where(r.integers(0, 2, size=(100, *shape[1:])) == 1, hi, lo)
    for x in np.concatenate([points, corners.astype(np.float32)]):
        y = session.run(None, {"x": x[None]})[0].reshape(-1)
        assert np.all(y >= lower) and np.all(y <= upper), (y, lower, upper)
    assert np.all(upper - lower < 1e3)  # CROWN went through, not a vacuous bound


def test_switch_reachable_from_a_config_file():
    from hybridver.config_file import config_from_dict
    config = config_from_dict({"whole_box": {"direct_linear_rules": False}})
    assert config.whole_box.direct_linear_rules is False
    assert config_from_dict({}).whole_box.direct_linear_rules is True


def test_broadcast_products_bound_fewer_operand_entries(tmp_path):
    graph, _, _ = _load(tmp_path, "attention")
    sizes = {}
    for broadcast in (True, False):
        plan = GraphPlan(for_bounds(graph, broadcast), torch.float32, torch.device("cpu"))
        sizes[broadcast] = sum(plan.graph.node(n).size for n in plan.pre_activations)
    # q k^T and p v: operands of 3x4 and 4x3 (3x3, 3x3) entries instead of 3x4x3 (3x3x3)
    assert sizes[True] < sizes[False]
