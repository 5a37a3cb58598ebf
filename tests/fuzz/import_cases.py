"""Random ONNX graphs of one to three ops for the importer fuzzer.

:func:`import_case` draws one case from a ``numpy`` generator: a model with one float32
input ``x`` of a small random shape, built with ``onnx.helper`` from the op families of
:data:`tests.fuzz.import_ops.FAMILIES` (each ``(rng, in_shape) -> Step``).  Operands other than ``x``
are initializers, so the model has exactly one input, as hybridver requires.  The same seed
always gives the same model: a failing case is reproduced from its seed alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.fuzz.import_ops import FAMILIES, Step, pick

OPSET = 19


@dataclasses.dataclass
class ImportCase:
    """A model (serialized ONNX), its input shape and range, and what was drawn."""

    model: bytes
    input_shape: tuple[int, ...]
    low: float
    high: float
    spec: list[dict]


def _fill(text: str, prefix: str, inp: str, out: str, init_names) -> str:
    if text == "":
        return ""
    if text in init_names:
        return f"{prefix}{text}"
    return text.replace("{in}", inp).replace("{out}", out)


def _build(steps: list[Step], in_shape, final_cast: bool) -> onnx.ModelProto:
    nodes, inits, current = [], [], "x"
    for k, step in enumerate(steps):
        prefix, out = f"s{k}_", f"h{k}"
        for j, (op, ins, outs, attrs) in enumerate(step.nodes):
            nodes.append(helper.make_node(
                op, [_fill(i, prefix, current, out, step.inits) for i in ins],
                [_fill(o, prefix, current, out, step.inits) for o in outs],
                name=f"{prefix}{op}{j or ''}", **attrs))
        inits += [numpy_helper.from_array(v, f"{prefix}{n}") for n, v in step.inits.items()]
        current = out
    graph = helper.make_graph(
        nodes, "fuzz", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT if final_cast
                                       else TensorProto.UNDEFINED, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    return model


def _output_shape(model: onnx.ModelProto) -> tuple[int, ...] | None:
    """The statically inferred shape of the output (None when ONNX cannot infer it)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception:  # noqa: BLE001 - an invalid configuration: the chain stops
        return None
    name = model.graph.output[0].name
    for info in list(inferred.graph.value_info) + list(inferred.graph.output):
        if info.name == name and info.type.tensor_type.HasField("shape"):
            dims = info.type.tensor_type.shape.dim
            if all(d.HasField("dim_value") for d in dims):
                return tuple(int(d.dim_value) for d in dims)
    return None


def _finish(model: onnx.ModelProto) -> onnx.ModelProto:
    """Declare the output's inferred type and shape (the checker wants a shape field; an
    uninferable output gets element type float and an empty shape of unknown rank)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001
        inferred = model
    out = model.graph.output[0]
    for info in inferred.graph.value_info:
        if info.name == out.name and info.type.tensor_type.elem_type:
            out.type.CopyFrom(info.type)
            return model
    out.type.tensor_type.elem_type = TensorProto.FLOAT
    out.type.tensor_type.shape.SetInParent()
    return model


def import_case(rng: np.random.Generator, families: tuple[str, ...] | None = None
                ) -> ImportCase:
    """One random model of 1-3 steps; the first step is from ``families`` (default all),
    later ones from any family, kept only while ONNX can infer a static shape."""
    spatial = int(rng.integers(0, 3))
    if spatial == 0:
        in_shape = tuple(int(rng.integers(1, 5)) for _ in range(int(rng.integers(1, 4))))
    else:
        in_shape = (1, int(rng.integers(1, 5))) + tuple(int(rng.integers(2, 8))
                                                        for _ in range(spatial))
    names = list(families or FAMILIES)
    steps: list[Step] = []
    shape = in_shape
    for k in range(int(pick(rng, [1, 1, 2, 3]))):
        family = pick(rng, names) if k == 0 else pick(rng, list(FAMILIES))
        step = FAMILIES[family](rng, shape)
        trial = _build(steps + [step], in_shape, final_cast=False)
        new_shape = _output_shape(_finish(trial))
        if new_shape is None and steps:
            break
        steps.append(step)
        if new_shape is None or 0 in new_shape or not new_shape:   # no further step on a scalar
            break
        shape = new_shape
    model = _finish(_build(steps, in_shape, final_cast=False))
    scale = float(pick(rng, [1.0, 1.0, 4.0]))
    return ImportCase(model.SerializeToString(), in_shape, -scale, scale,
                      [step.spec for step in steps])
