"""Random small fully connected networks as ONNX models, for the back-end and bound fuzzers.

A network is ``x: (1, n_in)`` -> [Gemm -> activation] * hidden -> Gemm -> ``y: (1, n_out)``,
float32 weights scaled by ``1/sqrt(fan_in)``.  The activation of each hidden layer is one of
:data:`PIECEWISE_LINEAR` (which the exact back ends encode exactly) or :data:`SMOOTH`
(which only the bound engine and envelopes handle).  ``layers`` keeps the float64 weights
and the activations, so an independent MILP (:func:`tests.fuzz.milp.box_minimum`) can be
built from the same numbers as the ONNX file.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PIECEWISE_LINEAR = ("relu", "leaky_relu", "abs", "maxpool")
SMOOTH = ("sigmoid", "tanh", "sin", "cos", "gelu", "softmax", "product", "exp")


@dataclasses.dataclass
class Network:
    """``model``: serialized ONNX; ``layers``: ``("gemm", W (out, in), b)`` or
    ``("act", name, params)`` in order (the product layer is ``("product", W1, b1, W2, b2)``)."""

    model: bytes
    n_in: int
    n_out: int
    layers: list
    spec: dict


def _gemm(rng, n_in, n_out):
    w = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)
    b = (rng.standard_normal(n_out) * 0.3).astype(np.float32)
    return w, b


def random_network(rng: np.random.Generator, activations=PIECEWISE_LINEAR,
                   n_in: int | None = None) -> Network:
    """2-4 inputs (or ``n_in``), 1-3 hidden layers of 2-6 units, 1-3 outputs; each hidden
    layer's activation drawn from ``activations``."""
    n_in = int(rng.integers(2, 5)) if n_in is None else n_in
    n_out = int(rng.integers(1, 4))
    nodes, inits, layers, acts = [], [], [], []
    current, width = "x", n_in

    def add_gemm(inp, n_from, n_to, tag):
        w, b = _gemm(rng, n_from, n_to)
        inits.extend([numpy_helper.from_array(w, f"W{tag}"), numpy_helper.from_array(b, f"B{tag}")])
        nodes.append(helper.make_node("Gemm", [inp, f"W{tag}", f"B{tag}"], [f"z{tag}"],
                                      transB=1, name=f"gemm{tag}"))
        return f"z{tag}", w.astype(np.float64), b.astype(np.float64)

    for k in range(int(rng.integers(1, 4))):
        hidden = int(rng.integers(2, 7))
        act = str(activations[int(rng.integers(len(activations)))])
        acts.append(act)
        if act == "product":
            za, w1, b1 = add_gemm(current, width, hidden, f"{k}a")
            zb, w2, b2 = add_gemm(current, width, hidden, f"{k}b")
            nodes.append(helper.make_node("Mul", [za, zb], [f"h{k}"], name=f"mul{k}"))
            layers.append(("product", w1, b1, w2, b2))
            current, width = f"h{k}", hidden
            continue
        z, w, b = add_gemm(current, width, hidden, str(k))
        layers.append(("gemm", w, b))
        out = f"h{k}"
        if act == "maxpool":
            kernel = int(rng.integers(2, min(3, hidden) + 1))
            stride = int(rng.integers(1, 3))
            inits.append(numpy_helper.from_array(np.asarray([1, 1, hidden], np.int64), f"r{k}"))
            inits.append(numpy_helper.from_array(np.asarray([1, -1], np.int64), f"f{k}"))
            nodes += [helper.make_node("Reshape", [z, f"r{k}"], [f"{z}r"], name=f"resh{k}"),
                      helper.make_node("MaxPool", [f"{z}r"], [f"{z}p"], kernel_shape=[kernel],
                                       strides=[stride], name=f"pool{k}"),
                      helper.make_node("Reshape", [f"{z}p"], [out], name=f"flat{k}")]
            nodes[-1].input.append(f"f{k}")
            layers.append(("act", "maxpool", {"kernel": kernel, "stride": stride}))
            width = (hidden - kernel) // stride + 1
        elif act == "leaky_relu":
            alpha = float(rng.choice([0.01, 0.1, 0.3]))
            nodes.append(helper.make_node("LeakyRelu", [z], [out], alpha=alpha, name=f"act{k}"))
            layers.append(("act", act, {"alpha": alpha}))
            width = hidden
        elif act == "softmax":
            nodes.append(helper.make_node("Softmax", [z], [out], axis=-1, name=f"act{k}"))
            layers.append(("act", act, {}))
            width = hidden
        else:
            op = {"relu": "Relu", "abs": "Abs", "sigmoid": "Sigmoid", "tanh": "Tanh",
                  "sin": "Sin", "cos": "Cos", "gelu": "Gelu", "exp": "Exp"}[act]
            nodes.append(helper.make_node(op, [z], [out], name=f"act{k}"))
            layers.append(("act", act, {}))
            width = hidden
        current = out
    z, w, b = add_gemm(current, width, n_out, "out")
    layers.append(("gemm", w, b))
    nodes.append(helper.make_node("Identity", [z], ["y"], name="output"))
    graph = helper.make_graph(
        nodes, "fuzznet", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return Network(model.SerializeToString(), n_in, n_out, layers,
                   {"n_in": n_in, "n_out": n_out, "activations": acts})


def random_box(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A box with centre in [-1, 1] and half-widths between 1e-3 and 1 (float32 values)."""
    centre = rng.uniform(-1, 1, n)
    radius = 10.0 ** rng.uniform(-3, 0, n)
    lo = (centre - radius).astype(np.float32).astype(np.float64)
    hi = (centre + radius).astype(np.float32).astype(np.float64)
    return lo, hi


def box_samples(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, n: int
                ) -> np.ndarray:
    """``n`` uniform points of the box plus its centre and every corner (n_in <= 10),
    as float32 values (what onnxruntime runs on), shape ``(m, n_in)``."""
    pts = [rng.uniform(lo, hi, (n, lo.size)), ((lo + hi) / 2)[None]]
    if lo.size <= 10:
        bits = (np.arange(2 ** lo.size)[:, None] >> np.arange(lo.size)) & 1
        pts.append(np.where(bits == 1, hi, lo))
    x = np.concatenate(pts).astype(np.float32)
    return np.clip(x, lo.astype(np.float32), hi.astype(np.float32))
