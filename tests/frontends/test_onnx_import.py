"""ONNX importer: every shared benchmark model, plus small synthetic models per op family.

Each imported graph is compared with onnxruntime on random inputs.  Largest
``max_rel_diff`` observed on the shared models (seed 0, 20 samples; definition in
:func:`hybridver.frontends.onnx.runtime.compare_ir_with_onnxruntime`):
ACAS Xu (all 45) 2.2e-6, cGAN 1.7e-7, dist_shift 6.0e-6, lsnc 1.9e-7, marabou 2.0e-6,
ml4acopf 3.5e-6, mnist_fc 6.6e-6, nn4sys 1.2e-7, ViT 5.0e-7, vnncomp_test 5.1e-7
(CHECK_TOLERANCE is 1e-3).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hybridver.errors import ModelLoadError, UnsupportedOpError
from hybridver.ir.evaluate import evaluate
from hybridver.frontends.onnx import load_onnx
from hybridver.frontends.onnx import (CHECK_TOLERANCE, OnnxRuntimeModel,
                                       compare_ir_with_onnxruntime)
from hybridver.ir.ops import OpKind
from tests.conftest import SHARED_BENCHMARKS, shared_files

# ----------------------------------------------------------------------------- shared models


def _shared_models() -> list[Path]:
    files = shared_files("**/*.onnx", "**/*.onnx.gz")
    acas = [f for f in files if "acasxu" in f.parts]
    others = [f for f in files if "acasxu" not in f.parts]
    # 45 ACAS Xu networks share one architecture: test the first, one middle and the last
    sample = [acas[0], acas[len(acas) // 2], acas[-1]] if len(acas) > 3 else acas
    return sorted(set(sample)) + others


SHARED = _shared_models()


@pytest.mark.skipif(not SHARED, reason=f"shared benchmarks not found at {SHARED_BENCHMARKS}")
@pytest.mark.parametrize("path", SHARED,
                         ids=[str(p.relative_to(SHARED_BENCHMARKS)) for p in SHARED] or None)
def test_shared_model_matches_onnxruntime(path: Path) -> None:
    graph = load_onnx(path)
    model = onnx.load_from_string(_read(path))
    assert list(graph.outputs) == [o.name for o in model.graph.output]
    initializers = {i.name for i in model.graph.initializer}
    assert list(graph.inputs) == [i.name for i in model.graph.input if i.name not in initializers]
    for node in graph.nodes():
        for value in node.consts.values():
            if np.asarray(value).dtype.kind == "f":
                assert np.asarray(value).dtype == np.float64
    max_abs, max_rel = compare_ir_with_onnxruntime(path, graph, n_samples=20, seed=0)
    assert max_rel <= CHECK_TOLERANCE, (max_abs, max_rel)


def _read(path: Path) -> bytes:
    data = Path(path).read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


# ----------------------------------------------------------------------------- builders

F = TensorProto.FLOAT
_IR_FOR_OPSET = [(15, 7), (18, 8), (20, 9), (99, 10)]


def _save(tmp_path: Path, nodes, inputs, outputs, inits=None, opset=13, name="m.onnx",
          check=True) -> Path:
    """Save a one-graph model: ``inputs``/``outputs`` as {name: shape or None}."""
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, F, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, F, s) for n, s in outputs.items()],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = next(ir for top, ir in _IR_FOR_OPSET if opset <= top)
    if any(s is None for s in outputs.values()):  # let ONNX fill in the output shapes
        model = onnx.shape_inference.infer_shapes(model)
    if check:
        onnx.checker.check_model(model)
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def _rand(*shape, seed=0, low=-1.0, high=1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


def _check(path: Path, n: int = 4, low: float = -1.0, high: float = 1.0, tol: float = 1e-5):
    graph = load_onnx(path)
    _, rel = compare_ir_with_onnxruntime(path, graph, n_samples=n, low=low, high=high)
    assert rel <= tol, rel
    return graph


def _ops(graph) -> set[OpKind]:
    return {n.op for n in graph.nodes()}


def _n(op, inputs, outputs=("y",), **attrs):
    return helper.make_node(op, list(inputs), list(outputs), **attrs)


# ----------------------------------------------------------------------------- linear family


@pytest.mark.parametrize("trans_a,trans_b,alpha,beta,c_shape", [
    (0, 0, 1.0, 1.0, (5,)),
    (0, 1, 0.5, 2.0, (1, 5)),
    (1, 0, 1.5, 0.25, (3, 5)),
    (1, 1, 1.0, 1.0, ()),
    (0, 0, 2.0, 1.0, None),
])
def test_gemm_variants(tmp_path, trans_a, trans_b, alpha, beta, c_shape):
    a_shape = (4, 3) if trans_a else (3, 4)
    b = _rand(*((5, 4) if trans_b else (4, 5)), seed=1)
    inits = {"B": b}
    ins = ["x", "B"]
    if c_shape is not None:
        inits["C"] = _rand(*c_shape, seed=2)
        ins.append("C")
    node = _n("Gemm", ins, transA=trans_a, transB=trans_b, alpha=alpha, beta=beta)
    graph = _check(_save(tmp_path, [node], {"x": a_shape}, {"y": None}, inits, opset=11))
    assert OpKind.LINEAR in _ops(graph)
    assert OpKind.MATMUL not in _ops(graph)
    linear = next(n for n in graph.nodes() if n.op is OpKind.LINEAR)
    assert linear.consts["weight"].shape == (5, 4)
    assert linear.consts["weight"].dtype == np.float64
    if c_shape in ((5,), (1, 5), ()):
        assert "bias" in linear.consts and graph.node("y").op is OpKind.LINEAR


@pytest.mark.parametrize("trans_a,trans_b,alpha", [(0, 0, 1.0), (1, 1, 0.5)])
def test_gemm_with_variable_right_operand(tmp_path, trans_a, trans_b, alpha):
    a = _rand(*((4, 2) if trans_a else (2, 4)), seed=1)
    nodes = [_n("Relu", ["x"], ["b"]),
             _n("Gemm", ["A", "b", "C"], transA=trans_a, transB=trans_b, alpha=alpha)]
    x_shape = (3, 4) if trans_b else (4, 3)
    graph = _check(_save(tmp_path, nodes, {"x": x_shape}, {"y": None},
                         {"A": a, "C": _rand(3, seed=2)}, opset=11))
    assert OpKind.MATMUL in _ops(graph) and graph.node("y").shape == (2, 3)


def test_matmul_variants(tmp_path):
    w = _rand(6, 4, seed=1)
    left = _rand(2, 3, seed=2)
    nodes = [
        _n("MatMul", ["x", "W"], ["lin"]),                  # (2,3,6)@(6,4) -> LINEAR
        _n("MatMul", ["L", "lin"], ["left"]),                # (2,3)@(2,3,4): const left
        _n("Transpose", ["left"], ["lt"], perm=[0, 2, 1]),  # (2,4,3)
        _n("MatMul", ["left", "lt"], ["y"]),                 # variable @ variable
    ]
    graph = _check(_save(tmp_path, nodes, {"x": (2, 3, 6)}, {"y": None}, {"W": w, "L": left}))
    assert graph.node("lin").op is OpKind.LINEAR
    assert graph.node("left").op is OpKind.MATMUL
    assert graph.node("y").op is OpKind.MATMUL


def test_matmul_one_dimensional_input(tmp_path):
    nodes = [_n("MatMul", ["x", "W"], ["h"]), _n("Relu", ["h"]),]
    graph = _check(_save(tmp_path, nodes, {"x": (1,)}, {"y": (3,)}, {"W": _rand(1, 3)}))
    assert graph.input_node.shape == (1,)
    assert graph.output_node.shape == (3,)


# ----------------------------------------------------------------------------- convolutions


@pytest.mark.parametrize("attrs", [
    dict(pads=[1, 0, 2, 1], strides=[2, 1]),
    dict(dilations=[2, 2], group=2),
    dict(auto_pad="SAME_UPPER", strides=[2, 2]),
    dict(auto_pad="SAME_LOWER", strides=[2, 2]),
    dict(auto_pad="VALID"),
])
def test_conv(tmp_path, attrs):
    group = attrs.get("group", 1)
    inits = {"W": _rand(4, 4 // group, 3, 3, seed=1), "b": _rand(4, seed=2)}
    node = _n("Conv", ["x", "W", "b"], kernel_shape=[3, 3], **attrs)
    graph = _check(_save(tmp_path, [node], {"x": (1, 4, 7, 8)}, {"y": None}, inits))
    assert graph.node("y").op is OpKind.CONV


def test_conv_1d_without_bias(tmp_path):
    node = _n("Conv", ["x", "W"], pads=[1, 1])
    _check(_save(tmp_path, [node], {"x": (1, 2, 9)}, {"y": None}, {"W": _rand(3, 2, 3)}))


@pytest.mark.parametrize("attrs", [
    dict(strides=[2, 2]),
    dict(strides=[2, 2], pads=[1, 1, 0, 1], output_padding=[1, 1]),
    dict(strides=[2, 2], output_shape=[9, 10]),
    dict(strides=[3, 2], output_padding=[2, 1], group=2, dilations=[1, 2]),
    dict(strides=[2, 2], auto_pad="SAME_UPPER"),
])
def test_conv_transpose(tmp_path, attrs):
    group = attrs.get("group", 1)
    inits = {"W": _rand(4, 6 // group, 3, 3, seed=1), "b": _rand(6, seed=2)}
    node = _n("ConvTranspose", ["x", "W", "b"], **attrs)
    graph = _check(_save(tmp_path, [node], {"x": (1, 4, 4, 5)}, {"y": None}, inits))
    assert graph.node("y").op is OpKind.CONV_TRANSPOSE


@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (1, 3, 6), (2, 3)])
def test_batch_norm(tmp_path, shape):
    inits = {"s": _rand(3, seed=1), "b": _rand(3, seed=2), "m": _rand(3, seed=3),
             "v": _rand(3, seed=4, low=0.5, high=2.0)}
    node = _n("BatchNormalization", ["x", "s", "b", "m", "v"], epsilon=1e-3)
    graph = _check(_save(tmp_path, [node], {"x": shape}, {"y": None}, inits, opset=9))
    assert graph.node("y").op is OpKind.BATCH_NORM


# ----------------------------------------------------------------------------- elementwise


def test_elementwise_nonlinearities(tmp_path):
    ops = ["Relu", "Sigmoid", "Tanh", "Sin", "Cos", "Exp", "Abs", "Neg", "Erf"]
    nodes = [_n(op, ["x"], [op.lower()]) for op in ops]
    nodes += [
        _n("LeakyRelu", ["x"], ["leaky"], alpha=0.2),
        _n("Sqrt", ["exp"], ["sqrt"]),
        _n("Reciprocal", ["exp"], ["recip"]),
        _n("Log", ["exp"], ["log"]),
        _n("Pow", ["x", "two"], ["pow2"]),
        _n("Pow", ["exp", "half"], ["powh"]),
        _n("Concat", [op.lower() for op in ops]
           + ["leaky", "sqrt", "recip", "log", "pow2", "powh"], ["y"], axis=1),
    ]
    inits = {"two": np.array(2.0, np.float32), "half": np.array([0.5], np.float32)}
    graph = _check(_save(tmp_path, nodes, {"x": (1, 3)}, {"y": None}, inits))
    expected = {OpKind.RELU, OpKind.SIGMOID, OpKind.TANH, OpKind.SIN, OpKind.COS, OpKind.EXP,
                OpKind.ABS, OpKind.NEG, OpKind.ERF, OpKind.LEAKY_RELU, OpKind.SQRT,
                OpKind.RECIPROCAL, OpKind.LOG, OpKind.POW, OpKind.CONCAT}
    assert expected <= _ops(graph)
    assert graph.node("two").op is OpKind.CONSTANT


def test_gelu(tmp_path):
    graph = _check(_save(tmp_path, [_n("Gelu", ["x"])], {"x": (2, 5)}, {"y": None}, opset=20))
    assert graph.node("y").op is OpKind.GELU


def test_arithmetic_with_constant_operands(tmp_path):
    nodes = [
        _n("Add", ["x", "c"], ["a"]),
        _n("Sub", ["c", "a"], ["s"]),
        _n("Mul", ["s", "row"], ["m"]),
        _n("Exp", ["m"], ["e"]),
        _n("Div", ["one", "e"], ["d"]),
        _n("Div", ["d", "x"], ["y"]),
    ]
    inits = {"c": _rand(4, seed=1), "row": _rand(3, 1, seed=2),
             "one": np.array(1.0, np.float32)}
    graph = _check(_save(tmp_path, nodes, {"x": (1, 4)}, {"y": None}, inits), low=0.5)
    assert graph.node("m").shape == (3, 4)
    assert {graph.node(n).op for n in ("c", "row", "one")} == {OpKind.CONSTANT}
    assert graph.node("c").consts["value"].dtype == np.float64


@pytest.mark.parametrize("opset,axis,shape", [
    (13, 1, (1, 3, 4)), (13, -1, (2, 5)), (11, 1, (1, 3, 2, 2)), (9, 2, (2, 3, 4, 2)),
    (11, 0, (2, 3)), (11, -1, (2, 3, 4)),
])
def test_softmax(tmp_path, opset, axis, shape):
    graph = _check(_save(tmp_path, [_n("Softmax", ["x"], axis=axis)], {"x": shape},
                         {"y": None}, opset=opset))
    ops = [n.op for n in graph.nodes()]
    last_axis = axis % len(shape) == len(shape) - 1
    if opset < 13 and not last_axis:  # coerce-to-2-D semantics
        assert ops == [OpKind.INPUT, OpKind.RESHAPE, OpKind.SOFTMAX, OpKind.RESHAPE]
    else:
        assert ops == [OpKind.INPUT, OpKind.SOFTMAX]


# ----------------------------------------------------------------------------- pooling


@pytest.mark.parametrize("op,attrs", [
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("MaxPool", dict(kernel_shape=[2, 3], strides=[1, 2], pads=[0, 1, 1, 0])),
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")),
    ("MaxPool", dict(kernel_shape=[2, 2], dilations=[2, 1])),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("AveragePool", dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=[2, 2])),
])
def test_pooling(tmp_path, op, attrs):
    graph = _check(_save(tmp_path, [_n(op, ["x"], **attrs)], {"x": (1, 2, 7, 8)},
                         {"y": None}))
    assert graph.node("y").op is (OpKind.MAX_POOL if op == "MaxPool" else OpKind.AVERAGE_POOL)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pooling(tmp_path, op):
    _check(_save(tmp_path, [_n(op, ["x"])], {"x": (1, 3, 4, 5)}, {"y": None}))


# ----------------------------------------------------------------------------- resizing


def test_upsample_opset9_scales_input(tmp_path):
    inits = {"sc": np.array([1, 1, 2, 3], np.float32)}
    graph = _check(_save(tmp_path, [_n("Upsample", ["x", "sc"], mode="nearest")],
                         {"x": (1, 2, 3, 4)}, {"y": None}, inits, opset=9))
    assert graph.node("y").op is OpKind.UPSAMPLE
    assert tuple(graph.node("y").attrs["scales"]) == (1, 1, 2, 3)


def test_upsample_opset7_scales_attribute(tmp_path):
    graph = _check(_save(tmp_path, [_n("Upsample", ["x"], scales=[1.0, 1.0, 2.0, 2.0])],
                         {"x": (1, 2, 3, 4)}, {"y": None}, opset=7))
    assert graph.node("y").op is OpKind.UPSAMPLE


@pytest.mark.parametrize("coord,nearest,scales,sizes", [
    ("half_pixel", "round_prefer_floor", [1, 1, 2, 2], None),
    ("asymmetric", "floor", [1, 1, 3, 2], None),
    ("half_pixel", "floor", [1, 1, 2, 2], None),          # not a plain repeat: gathers
    ("align_corners", "round_prefer_ceil", None, [1, 2, 5, 7]),
    ("pytorch_half_pixel", "ceil", [1, 1, 1.5, 0.5], None),
])
def test_resize_nearest(tmp_path, coord, nearest, scales, sizes):
    inits = {}
    ins = ["x", "", ""]
    if scales is not None:
        inits["sc"] = np.array(scales, np.float32)
        ins[2] = "sc"
    else:
        inits["sz"] = np.array(sizes, np.int64)
        ins.append("sz")
    node = _n("Resize", ins, mode="nearest", coordinate_transformation_mode=coord,
              nearest_mode=nearest)
    _check(_save(tmp_path, [node], {"x": (1, 2, 3, 4)}, {"y": None}, inits, opset=13))


# ----------------------------------------------------------------------------- data movement


def test_reshape_zero_and_minus_one(tmp_path):
    nodes = [_n("Reshape", ["x", "s1"], ["r1"]), _n("Reshape", ["r1", "s2"], ["r2"]),
             _n("Flatten", ["r2"], ["y"], axis=2)]
    inits = {"s1": np.array([0, -1, 4], np.int64), "s2": np.array([0, 0, 2, -1], np.int64)}
    graph = _check(_save(tmp_path, nodes, {"x": (2, 3, 8)}, {"y": None}, inits))
    assert graph.node("r1").shape == (2, 6, 4)
    assert graph.node("r2").shape == (2, 6, 2, 2)
    assert graph.node("y").shape == (12, 4)
    assert {graph.node(n).op for n in ("r1", "r2", "y")} == {OpKind.RESHAPE}


def test_reshape_dynamic_batch_and_flatten_default(tmp_path):
    nodes = [_n("Reshape", ["x", "s"], ["r"]), _n("Flatten", ["r"], ["y"])]
    inits = {"s": np.array([-1, 12], np.int64)}
    path = _save(tmp_path, nodes, {"x": ("N", 3, 4)}, {"y": ("N", 12)}, inits)
    graph = _check(path)
    assert graph.input_node.shape == (1, 3, 4)
    runtime = OnnxRuntimeModel(path)
    assert runtime.input_shape == (1, 3, 4) and runtime.output_shape == (1, 12)
    x = _rand(5, 1, 3, 4)
    np.testing.assert_allclose(runtime(x), evaluate(graph, x.astype(np.float64)).numpy(),
                               rtol=1e-6, atol=1e-6)


def test_runtime_falls_back_when_batch_is_hard_coded(tmp_path):
    # declares a dynamic batch but reshapes to batch 1: onnxruntime cannot run batches
    nodes = [_n("Reshape", ["x", "s"], ["r"]), _n("Relu", ["r"], ["y"])]
    path = _save(tmp_path, nodes, {"x": ("N", 3, 4)}, {"y": ("N", 12)},
                 {"s": np.array([1, 12], np.int64)})
    graph = _check(path)
    runtime = OnnxRuntimeModel(path)
    x = _rand(3, 1, 3, 4)
    np.testing.assert_allclose(runtime(x), evaluate(graph, x.astype(np.float64)).numpy(),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_unsqueeze_transpose(tmp_path, opset):
    if opset < 13:
        nodes = [_n("Unsqueeze", ["x"], ["u"], axes=[0, -1]),
                 _n("Squeeze", ["u"], ["s"], axes=[0]),
                 _n("Squeeze", ["s"], ["t"])]
        inits = {}
    else:
        nodes = [_n("Unsqueeze", ["x", "ax"], ["u"]), _n("Squeeze", ["u", "ax0"], ["s"]),
                 _n("Squeeze", ["s"], ["t"])]
        inits = {"ax": np.array([0, -1], np.int64), "ax0": np.array([0], np.int64)}
    nodes.append(_n("Transpose", ["t"], ["y"], perm=[1, 0]))
    graph = _check(_save(tmp_path, nodes, {"x": (3, 1, 4)}, {"y": None}, inits, opset=opset))
    assert graph.node("u").shape == (1, 3, 1, 4, 1)
    assert graph.node("s").shape == (3, 1, 4, 1)
    assert graph.node("t").shape == (3, 4)
    assert graph.node("y").op is OpKind.TRANSPOSE and graph.node("y").shape == (4, 3)


def test_concat_with_constant(tmp_path):
    nodes = [_n("Concat", ["x", "c", "x"], axis=-1)]
    graph = _check(_save(tmp_path, nodes, {"x": (1, 2, 3)}, {"y": None}, {"c": _rand(1, 2, 2)}))
    assert graph.node("y").attrs["axis"] == 2 and graph.node("y").shape == (1, 2, 8)


def test_slice_input_form_negative_indices(tmp_path):
    big = np.iinfo(np.int64).max
    nodes = [_n("Slice", ["x", "st", "en", "ax", "sp"], ["a"]),
             _n("Slice", ["a", "st2", "en2", "ax2", "sp2"], ["y"])]
    inits = {"st": np.array([-3, 1], np.int64), "en": np.array([big, -1], np.int64),
             "ax": np.array([2, -2], np.int64), "sp": np.array([1, 2], np.int64),
             "st2": np.array([-1], np.int64), "en2": np.array([-big], np.int64),
             "ax2": np.array([2], np.int64), "sp2": np.array([-1], np.int64)}
    graph = _check(_save(tmp_path, nodes, {"x": (1, 6, 7)}, {"y": None}, inits))
    a = graph.node("a")
    assert a.attrs["starts"] == (4, 1) and a.attrs["ends"] == (7, 5) and a.attrs["axes"] == (2, 1)
    assert graph.node("y").shape == (1, 2, 3)


def test_slice_attribute_form(tmp_path):
    node = _n("Slice", ["x"], starts=[1, -2], ends=[100, -1], axes=[1, 2])
    graph = _check(_save(tmp_path, [node], {"x": (1, 4, 5)}, {"y": None}, opset=9))
    assert graph.node("y").shape == (1, 3, 1)


def test_gather(tmp_path):
    nodes = [_n("Gather", ["x", "i"], ["g"], axis=1), _n("Gather", ["g", "s"], ["y"], axis=-1)]
    inits = {"i": np.array([[2, -1], [0, 0]], np.int64), "s": np.array(1, np.int64)}
    graph = _check(_save(tmp_path, nodes, {"x": (1, 4, 3)}, {"y": None}, inits))
    assert graph.node("g").shape == (1, 2, 2, 3)
    assert graph.node("y").shape == (1, 2, 2)
    assert graph.node("g").consts["indices"].min() >= 0


@pytest.mark.parametrize("opset,form", [(11, "attr"), (13, "input"), (13, "equal"),
                                        (18, "num_outputs")])
def test_split(tmp_path, opset, form):
    inits = {}
    if form == "attr":
        split = _n("Split", ["x"], ["a", "b", "c"], axis=1, split=[1, 3, 2])
    elif form == "input":
        split = _n("Split", ["x", "sp"], ["a", "b", "c"], axis=-1)
        inits["sp"] = np.array([2, 2, 2], np.int64)
    elif form == "equal":
        split = _n("Split", ["x"], ["a", "b", "c"], axis=1)
    else:
        split = _n("Split", ["x"], ["a", "b", "c"], axis=1, num_outputs=3)
    shape = (1, 6, 6)
    nodes = [split, _n("Relu", ["a"], ["ra"]), _n("Sigmoid", ["b"], ["sb"]),
             _n("Concat", ["c", "sb", "ra"], ["y"], axis=1 if form != "input" else 2)]
    graph = _check(_save(tmp_path, nodes, {"x": shape}, {"y": None}, inits, opset=opset))
    assert {graph.node(n).op for n in ("a", "b", "c")} == {OpKind.SLICE}


def test_where_expand_pad(tmp_path):
    nodes = [_n("Where", ["cond", "x", "c"], ["w"]),
             _n("Expand", ["w", "shape"], ["e"]),
             _n("Pad", ["e", "pads", "val"], ["y"], mode="constant")]
    inits = {"cond": np.array([True, False, True]), "c": _rand(2, 1, seed=3),
             "shape": np.array([3, 1, 1], np.int64),
             "pads": np.array([0, 1, 0, 0, 2, 1], np.int64), "val": np.array(0.5, np.float32)}
    graph = _check(_save(tmp_path, nodes, {"x": (1, 3)}, {"y": None}, inits))
    assert graph.node("w").op is OpKind.WHERE and graph.node("w").shape == (2, 3)
    assert graph.node("e").op is OpKind.EXPAND and graph.node("e").shape == (3, 2, 3)
    assert graph.node("y").op is OpKind.PAD and graph.node("y").shape == (3, 5, 4)


def test_pad_attribute_form(tmp_path):
    node = _n("Pad", ["x"], pads=[0, 1, 2, 0, 0, 1], value=-1.0)
    graph = _check(_save(tmp_path, [node], {"x": (1, 2, 3)}, {"y": None}, opset=2))
    assert graph.node("y").shape == (1, 3, 6)


@pytest.mark.parametrize("op,opset,axes,keepdims,noop", [
    ("ReduceSum", 11, [1, -1], 1, None),
    ("ReduceSum", 13, [2], 0, None),
    ("ReduceSum", 13, None, 0, None),
    ("ReduceSum", 13, None, 1, 1),
    ("ReduceMean", 13, [-1], 0, None),
    ("ReduceMean", 18, [1], 1, None),
])
def test_reductions(tmp_path, op, opset, axes, keepdims, noop):
    attrs = {"keepdims": keepdims}
    inputs = ["x"]
    inits = {}
    input_form = (op == "ReduceSum" and opset >= 13) or opset >= 18
    if axes is not None:
        if input_form:
            inits["ax"] = np.array(axes, np.int64)
            inputs.append("ax")
        else:
            attrs["axes"] = axes
    if noop is not None:
        attrs["noop_with_empty_axes"] = noop
    nodes = [_n(op, inputs, ["r"], **attrs), _n("Relu", ["r"])]
    graph = _check(_save(tmp_path, nodes, {"x": (1, 3, 4)}, {"y": None}, inits, opset=opset))
    if noop:
        assert "r" not in graph


# ----------------------------------------------------------------------------- folding & naming


def test_shape_subgraph_is_folded(tmp_path):
    nodes = [
        _n("Shape", ["x"], ["shp"]),
        _n("Gather", ["shp", "zero"], ["batch"], axis=0),
        _n("Unsqueeze", ["batch", "axis0"], ["b1"]),
        _n("Concat", ["b1", "minus1"], ["target"], axis=0),
        _n("Reshape", ["x", "target"], ["flat"]),
        _n("ConstantOfShape", ["b1"], ["ones"], value=helper.make_tensor("v", F, [1], [1.0])),
        _n("Equal", ["b1", "b1"], ["eq"]),
        _n("Where", ["eq", "ones", "ones"], ["scale"]),
        _n("Constant", [], ["k"], value_float=3.0),
        _n("Cast", ["k"], ["k64"], to=TensorProto.DOUBLE),
        _n("Cast", ["k64"], ["kf"], to=TensorProto.FLOAT),
        _n("Mul", ["scale", "kf"], ["s3"]),
        _n("Mul", ["flat", "s3"], ["y"]),
    ]
    inits = {"zero": np.array(0, np.int64), "minus1": np.array([-1], np.int64),
             "axis0": np.array([0], np.int64)}
    graph = _check(_save(tmp_path, nodes, {"x": ("batch", 2, 3)}, {"y": ("batch", 6)}, inits,
                         opset=13))
    assert graph.op_counts() == {"input": 1, "reshape": 1, "mul": 1, "constant": 1}
    assert graph.node("s3").op is OpKind.CONSTANT
    np.testing.assert_array_equal(graph.node("s3").consts["value"], [3.0])


def test_identity_dropout_cast_removed_and_output_name_kept(tmp_path):
    nodes = [_n("Identity", ["x"], ["i"]), _n("Dropout", ["i"], ["d"]),
             _n("Cast", ["d"], ["c"], to=TensorProto.FLOAT), _n("Relu", ["c"], ["r"]),
             _n("Identity", ["r"], ["y"])]
    graph = _check(_save(tmp_path, nodes, {"x": (1, 3)}, {"y": None}))
    assert graph.outputs == ("y",)
    assert graph.op_counts() == {"input": 1, "relu": 1, "identity": 1}
    assert graph.node("y").inputs == ("r",)


def test_initializer_listed_as_input_is_constant(tmp_path):
    w = _rand(3, 2)
    graph = helper.make_graph(
        [_n("MatMul", ["x", "W"])], "g",
        [helper.make_tensor_value_info("x", F, [1, 3]),
         helper.make_tensor_value_info("W", F, [3, 2])],
        [helper.make_tensor_value_info("y", F, [1, 2])],
        initializer=[numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    model.ir_version = 3
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    imported = _check(path)
    assert imported.inputs == ("x",)
    np.testing.assert_allclose(imported.node("y").consts["weight"], w.T)


def test_dead_branches_are_dropped(tmp_path):
    nodes = [_n("Relu", ["x"], ["y"]), _n("TopK", ["x", "k"], ["vals", "idx"], axis=1)]
    graph = _check(_save(tmp_path, nodes, {"x": (1, 4)}, {"y": None},
                         {"k": np.array([2], np.int64)}))
    assert graph.op_counts() == {"input": 1, "relu": 1}


# ----------------------------------------------------------------------------- errors & files


def test_unsupported_ops_listed_together(tmp_path):
    nodes = [
        _n("TopK", ["x", "k"], ["vals", "idx"], name="my_topk", axis=1),
        _n("NonMaxSuppression", ["boxes", "scores"], ["sel"], name="my_nms"),
        _n("Cast", ["sel"], ["self"], to=TensorProto.FLOAT),
        _n("ReduceSum", ["self"], ["n"], keepdims=0),
        _n("Relu", ["vals"], ["r"]),
        _n("Add", ["r", "n"], ["y"]),
        _n("Reshape", ["x", "shape"], ["boxes"]),
        _n("Reshape", ["x", "shape2"], ["scores"]),
    ]
    # build in topological order
    order = [nodes[6], nodes[7], nodes[0], nodes[1], nodes[2], nodes[3], nodes[4], nodes[5]]
    inits = {"k": np.array([2], np.int64), "shape": np.array([1, 3, 4], np.int64),
             "shape2": np.array([1, 4, 3], np.int64)}
    path = _save(tmp_path, order, {"x": (1, 12)}, {"y": None}, inits, check=False)
    with pytest.raises(UnsupportedOpError) as info:
        load_onnx(path)
    ops = {op for op, _ in info.value.unsupported}
    names = {name for _, name in info.value.unsupported}
    assert ops == {"TopK", "NonMaxSuppression"}
    assert names == {"my_topk", "my_nms"}
    assert "my_topk" in str(info.value) and "NonMaxSuppression" in str(info.value)


def test_unsupported_variant_is_reported(tmp_path):
    nodes = [_n("Pad", ["x", "pads"], ["p"], mode="reflect", name="reflect_pad"),
             _n("Resize", ["p", "", "sc"], ["y"], mode="linear", name="bilinear")]
    inits = {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64),
             "sc": np.array([1, 1, 2, 2], np.float32)}
    path = _save(tmp_path, nodes, {"x": (1, 1, 3, 3)}, {"y": None}, inits)
    with pytest.raises(UnsupportedOpError) as info:
        load_onnx(path)
    assert [name for _, name in info.value.unsupported] == ["reflect_pad"]
    assert "reflect" in info.value.unsupported[0][0]


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_onnx(tmp_path / "nope.onnx")


def test_truncated_file(tmp_path):
    w = _rand(64, 64)
    path = _save(tmp_path, [_n("MatMul", ["x", "W"])], {"x": (1, 64)}, {"y": None}, {"W": w})
    data = path.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError) as info:
        load_onnx(cut)
    assert "cut.onnx" in str(info.value)
    assert "\n" not in str(info.value)


def test_garbage_and_empty_files(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff\xfe this is not a protobuf \x00\x01")
    with pytest.raises(ModelLoadError):
        load_onnx(bad)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError):
        load_onnx(empty)
    gz = tmp_path / "bad.onnx.gz"
    gz.write_bytes(gzip.compress(b"0123456789" * 100)[:40])
    with pytest.raises(ModelLoadError):
        load_onnx(gz)


def test_checker_failure(tmp_path):
    node = _n("Relu", ["undefined_tensor"])
    path = _save(tmp_path, [node], {"x": (1, 3)}, {"y": None}, check=False)
    with pytest.raises(ModelLoadError, match="checker"):
        load_onnx(path)


def test_gzip_model(tmp_path):
    path = _save(tmp_path, [_n("Gemm", ["x", "W", "b"], transB=1)], {"x": (1, 4)}, {"y": None},
                 {"W": _rand(3, 4), "b": _rand(3)})
    gz = tmp_path / "m.onnx.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    graph = _check(gz)
    assert graph.name == "m"
    assert graph.node("y").op is OpKind.LINEAR
    assert OnnxRuntimeModel(gz).output_shape == (1, 3)
