"""Small ONNX models, one per op the shared benchmarks use, with planted answers.

Each :class:`OpCase` builds a model ``x (1, n_in) -> y (1, 1)`` that mixes the inputs
through fixed weights, applies the op on input-dependent data, and sums back to one
output.  :func:`planted_specs` samples the model densely with onnxruntime over the box
``[-1, 1]^n_in`` and returns two single-case specs (``y >= t`` is the unsafe set):

* ``sat``: ``t`` below the sampled maximum, so a sampled point is a known counterexample;
* ``holds``: ``t`` above the sampled maximum by a margin (a quarter of the sampled range
  plus 0.05), far more than the output can exceed its maximum between grid points for
  these smooth, small-weight models, so the property holds by construction.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from hybridver.specs import InputBox, OutputConstraints, Spec, SpecCase

_RNG = np.random.default_rng(7)
W0 = np.round(_RNG.uniform(-1, 1, (4, 4)), 2)   # the input mixing (1, 4) @ (4, 4)
B0 = np.round(_RNG.uniform(-0.3, 0.3, (1, 4)), 2)


@dataclasses.dataclass(frozen=True)
class OpCase:
    """``nodes(h)``: the op's nodes reading ``h`` (1, 4) and writing ``z`` (any shape),
    plus their initializers; ``opset``: the model's opset."""

    name: str
    body: Callable[[], tuple[list, dict[str, np.ndarray]]]
    opset: int = 13

    def build(self, path: Path) -> Path:
        nodes, inits = self.body()
        head = [helper.make_node("MatMul", ["x", "W0"], ["hw"]),
                helper.make_node("Add", ["hw", "B0"], ["h"])]
        tail = [helper.make_node("Flatten", ["z"], ["zf"], axis=0),
                helper.make_node("ReduceSum", ["zf"], ["y"], keepdims=1, axes=[1])
                if self.opset < 13 else
                helper.make_node("ReduceSum", ["zf", "ax1"], ["y"], keepdims=1)]
        inits = {"W0": W0, "B0": B0, "ax1": np.array([1]), **inits}
        if self.opset < 13:
            inits.pop("ax1")
        graph = helper.make_graph(
            head + nodes + tail, self.name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
            [numpy_helper.from_array(v if v.dtype.kind in "iub" else v.astype(np.float32), k)
             for k, v in inits.items()])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, path)
        return path


def _n(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, **attrs)


def _f(*values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def _i(*values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _unary(op, **attrs):
    return lambda: ([_n(op, ["h"], ["z"], **attrs)], {})


def _as_image():
    """``h`` (1, 4) as an image ``hi`` (1, 1, 2, 2)."""
    return _n("Reshape", ["h", "img"], ["hi"]), {"img": _i(1, 1, 2, 2)}


def _conv():
    r, inits = _as_image()
    w = np.round(_RNG.uniform(-1, 1, (2, 1, 2, 2)), 2)
    return [r, _n("Conv", ["hi", "Wc", "Bc"], ["z"], kernel_shape=[2, 2], pads=[1, 1, 0, 0])], \
        {**inits, "Wc": w, "Bc": _f(0.1, -0.2)}


def _conv_transpose():
    r, inits = _as_image()
    return [r, _n("ConvTranspose", ["hi", "Wt"], ["z"], kernel_shape=[2, 2], strides=[1, 1])], \
        {**inits, "Wt": np.round(_RNG.uniform(-1, 1, (1, 2, 2, 2)), 2)}


def _batch_norm():
    r, inits = _as_image()
    return [r, _n("BatchNormalization", ["hi", "s", "b", "m", "v"], ["z"], epsilon=1e-5)], \
        {**inits, "s": _f(1.5), "b": _f(0.2), "m": _f(0.1), "v": _f(0.5)}


def _max_pool():
    r, inits = _as_image()
    return [r, _n("MaxPool", ["hi"], ["z"], kernel_shape=[2, 2], pads=[0, 0, 1, 1])], inits


def _upsample():
    r, inits = _as_image()
    return [r, _n("Upsample", ["hi", "sc"], ["z"], mode="nearest")], \
        {**inits, "sc": _f(1, 1, 2, 2)}


def _transpose():
    return [_n("Reshape", ["h", "s2"], ["hr"]), _n("Transpose", ["hr"], ["t"], perm=[0, 2, 1]),
            _n("MatMul", ["t", "Wt"], ["z"])], {"s2": _i(1, 2, 2), "Wt": _f([1, -2], [0.5, 1])}


def _softmax():
    return [_n("Softmax", ["h"], ["s"], axis=1), _n("Mul", ["s", "k"], ["z"])], \
        {"k": _f(1, -2, 3, 0.5)}


def _mul_variables():   # x_i * x_j products: h * reversed(h)
    return [_n("Gather", ["h", "rev"], ["g"], axis=1), _n("Mul", ["h", "g"], ["z"])], \
        {"rev": _i(3, 2, 1, 0)}


def _square():
    return [_n("Mul", ["h", "h"], ["z"])], {}


def _quadratic_form():   # h^T P h: a Lyapunov function's shape (hybridver.ir.quadratic)
    a = np.round(_RNG.uniform(-1, 1, (4, 4)), 2)
    p = a @ a.T + 0.3 * np.eye(4) + np.triu(np.full((4, 4), 0.25), 1)  # not symmetric
    return [_n("MatMul", ["h", "Pq"], ["ph"]), _n("Mul", ["h", "ph"], ["z"])], \
        {"Pq": np.round(p, 2)}


def _matmul_variables():   # outer product (2, 1) @ (1, 2) of two variables
    return [_n("Slice", ["h", "st", "en", "axs"], ["h2"]),
            _n("Reshape", ["h2", "col"], ["a"]), _n("MatMul", ["a", "h2"], ["z"])], \
        {"st": _i(0), "en": _i(2), "axs": _i(1), "col": _i(2, 1)}


def _shape_ops():   # Shape -> ConstantOfShape, Equal -> Where on constants, Expand
    return [_n("Shape", ["h"], ["sh"]),
            _n("ConstantOfShape", ["sh"], ["c"],
               value=numpy_helper.from_array(np.array([0.5], np.float32))),
            _n("Equal", ["e1", "e2"], ["eq"]), _n("Where", ["eq", "h", "c"], ["w"]),
            _n("Slice", ["w", "st", "en", "axs"], ["w0"]), _n("Expand", ["w0", "es"], ["ex"]),
            _n("Add", ["ex", "c"], ["z"])], \
        {"e1": _f(1, 0, 1, 0), "e2": _f(1, 1, 1, 1), "st": _i(1), "en": _i(2), "axs": _i(1),
         "es": _i(1, 4)}


def _slicing():   # Split, Slice, Concat, Unsqueeze, Gather, Neg, Sub
    return [_n("Split", ["h"], ["p", "q"], axis=1), _n("Neg", ["q"], ["nq"]),
            _n("Slice", ["h", "st", "en", "axs"], ["sl"]), _n("Sub", ["p", "nq"], ["d"]),
            _n("Concat", ["d", "sl"], ["cc"], axis=1), _n("Unsqueeze", ["cc", "u"], ["uu"]),
            _n("Gather", ["uu", "gi"], ["z"], axis=2)], \
        {"st": _i(0), "en": _i(3), "axs": _i(1), "u": _i(0), "gi": _i(0, 2, 4)}


def _gemm():
    return [_n("Gemm", ["h", "Wg", "Bg"], ["z"], transB=1, alpha=0.5)], \
        {"Wg": np.round(_RNG.uniform(-1, 1, (3, 4)), 2), "Bg": _f(0.1, 0.2, 0.3)}


def _reduce_mean():
    return [_n("Reshape", ["h", "s2"], ["hr"]), _n("ReduceMean", ["hr"], ["z"], axes=[2])], \
        {"s2": _i(1, 2, 2)}


def _constant():
    return [_n("Constant", [], ["k"], value=numpy_helper.from_array(_f(2, -1, 0.5, 1))),
            _n("Mul", ["h", "k"], ["z"])], {}


def _pow(exponent):
    return lambda: ([_n("Pow", ["h", "e"], ["z"])], {"e": _f(exponent)})


#: one case per op type of the shared benchmarks (several ops share a case where one
#: only moves data), plus MaxPool and the products of two variables
CASES = [
    OpCase("relu", _unary("Relu")),
    OpCase("leaky_relu", _unary("LeakyRelu", alpha=0.1)),
    OpCase("sigmoid", _unary("Sigmoid")),
    OpCase("tanh", _unary("Tanh")),
    OpCase("sin", _unary("Sin")),
    OpCase("cos", _unary("Cos")),
    OpCase("neg", _unary("Neg")),
    OpCase("div", lambda: ([_n("Div", ["h", "k"], ["z"])], {"k": _f(2, -4, 0.5, 1)})),
    OpCase("pow2", _pow(2.0)),
    OpCase("pow3", _pow(3.0)),
    OpCase("constant_mul", _constant),
    OpCase("mul_variables", _mul_variables),
    OpCase("square", _square),
    OpCase("quadratic_form", _quadratic_form),
    OpCase("matmul_variables", _matmul_variables),
    OpCase("softmax", _softmax),
    OpCase("max_pool", _max_pool),
    OpCase("conv", _conv),
    OpCase("conv_transpose", _conv_transpose),
    OpCase("batch_norm", _batch_norm),
    OpCase("upsample", _upsample, opset=9),
    OpCase("transpose", _transpose),
    OpCase("gemm", _gemm),
    OpCase("reduce_mean", _reduce_mean),
    OpCase("shape_ops", _shape_ops),
    OpCase("slicing", _slicing),
]


#: ONNX op type -> the case that exercises it (on input-dependent data unless noted)
COVERED = {
    "Add": "relu", "BatchNormalization": "batch_norm", "Concat": "slicing",
    "Constant": "constant_mul", "ConstantOfShape": "shape_ops", "Conv": "conv",
    "ConvTranspose": "conv_transpose", "Cos": "cos", "Div": "div",
    "Equal": "shape_ops",   # on constants; on input-dependent data it is refused
    "Expand": "shape_ops", "Flatten": "relu", "Gather": "slicing", "Gemm": "gemm",
    "LeakyRelu": "leaky_relu", "MatMul": "matmul_variables", "MaxPool": "max_pool",
    "Mul": "mul_variables", "Neg": "neg", "Pow": "pow3", "ReduceMean": "reduce_mean",
    "ReduceSum": "relu", "Relu": "relu", "Reshape": "transpose", "Shape": "shape_ops",
    "Sigmoid": "sigmoid", "Sin": "sin", "Slice": "slicing", "Softmax": "softmax",
    "Split": "slicing", "Sub": "slicing", "Tanh": "tanh", "Transpose": "transpose",
    "Unsqueeze": "slicing", "Upsample": "upsample", "Where": "shape_ops",
}


def sampled_range(path: Path) -> tuple[float, float, np.ndarray]:
    """``(min, max, argmax)`` of the output over a 7^4 grid and 1024 uniform points of
    ``[-1, 1]^4`` (onnxruntime, float32)."""
    grid = np.array(list(itertools.product(np.linspace(-1, 1, 7), repeat=4)))
    points = np.concatenate([grid, np.random.default_rng(0).uniform(-1, 1, (1024, 4))])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ys = np.array([session.run(None, {"x": p[None].astype(np.float32)})[0].reshape(-1)[0]
                   for p in points], dtype=np.float64)
    best = int(np.argmax(ys))
    return float(ys.min()), float(ys.max()), points[best]


def spec_above(threshold: float) -> Spec:
    """The unsafe set ``y >= threshold`` over ``[-1, 1]^4``."""
    box = InputBox(-np.ones(4), np.ones(4))
    unsafe = OutputConstraints(np.array([[-1.0]]), np.array([threshold]))  # t - y <= 0
    return Spec((SpecCase(box, (unsafe,)),), n_inputs=4, n_outputs=1)


@dataclasses.dataclass(frozen=True)
class Planted:
    """A model's sampled output range and its two specs (``*_at``: their thresholds)."""

    lo: float
    hi: float
    sat_at: float
    holds_at: float

    @property
    def sat(self) -> Spec:
        return spec_above(self.sat_at)

    @property
    def holds(self) -> Spec:
        return spec_above(self.holds_at)


def planted_specs(path: Path) -> Planted:
    """The planted answers of the model at ``path`` (see the module docstring)."""
    lo, hi, _ = sampled_range(path)
    sat_at = hi - 0.25 * (hi - lo) if hi > lo else hi - 0.05
    return Planted(lo, hi, sat_at, hi + 0.25 * (hi - lo) + 0.05)
