"""A small ONNX model and spec, and a planted importer bug that only shows inside the spec.

The model: ``x (1, 2) -> Gemm (identity) 'h' -> Relu 'r' (node 'relu_planted') -> Gemm
(sum) 'y'``, so ``y = relu(x0) + relu(x1)``.  The spec's region is ``[10, 12]^2`` and its
counterexamples are the points with ``y >= 21``: the real model has them (``sat``).

:func:`plant` replaces the importer's Relu handler by one that builds
``relu(t) - 0.5 relu(t - 5)``: equal to ``relu`` for ``t <= 5`` (all of ``[-1, 1]``) and
``0.5 t + 2.5`` above, so on the region the IR computes ``y in [15, 17]`` and bounds prove
the wrong ``unsat`` unless the load-time check refuses the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hybridver.frontends.onnx import importer
from hybridver.ir.ops import OpKind

PLANTED_NODE = "relu_planted"

SPEC = """(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(assert (>= X_0 10.0))
(assert (<= X_0 12.0))
(assert (>= X_1 10.0))
(assert (<= X_1 12.0))
(assert (>= Y_0 21.0))
"""


def write_model(folder: Path) -> tuple[Path, Path]:
    """The ONNX model and the VNN-LIB spec, written into ``folder``."""
    w1 = numpy_helper.from_array(np.eye(2, dtype=np.float32), "w1")
    w2 = numpy_helper.from_array(np.ones((2, 1), dtype=np.float32), "w2")
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h"], name="gemm_in"),
             helper.make_node("Relu", ["h"], ["r"], name=PLANTED_NODE),
             helper.make_node("Gemm", ["r", "w2"], ["y"], name="gemm_out")]
    graph = helper.make_graph(
        nodes, "planted", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], [w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path, spec = folder / "planted.onnx", folder / "planted.vnnlib"
    onnx.save(model, path)
    spec.write_text(SPEC)
    return path, spec


def _wrong_relu(ctx, onode, ins, attrs):
    """``relu(t) - 0.5 relu(t - 5)`` under the Relu's output name."""
    x = ctx.var_input(ins, 0)
    out = onode.output[0]
    r1 = ctx.emit(ctx.fresh(out), OpKind.RELU, [x.node], shape=x.shape)
    five = ctx.value_operand(np.array(-5.0), out)
    shifted = ctx.emit(ctx.fresh(out), OpKind.ADD, [x.node, five], shape=x.shape)
    r2 = ctx.emit(ctx.fresh(out), OpKind.RELU, [shifted.node], shape=x.shape)
    half = ctx.value_operand(np.array(0.5), out)
    scaled = ctx.emit(ctx.fresh(out), OpKind.MUL, [r2.node, half], shape=x.shape)
    return [ctx.emit(out, OpKind.SUB, [r1.node, scaled.node], shape=x.shape)]


def plant(monkeypatch) -> None:
    """Import every Relu with the planted bug (for the rest of the test)."""
    monkeypatch.setitem(importer.HANDLERS, "Relu", _wrong_relu)
