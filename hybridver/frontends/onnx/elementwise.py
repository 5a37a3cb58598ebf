"""ONNX handlers: elementwise ops (activations, broadcast arithmetic, Where) and the ops
that pass their operand through (Identity, Dropout, float Cast).

Old-opset (< 7) broadcasting with ``broadcast=1`` aligns a constant second operand with
the first one starting at ``axis``; it is reshaped to numpy broadcasting here.
"""

from __future__ import annotations

import numpy as np
import onnx

from hybridver.frontends.onnx.context import (Handler, OnnxContext, Unsupported, FLOAT_TYPES,
                                              is_const, shape_of)
from hybridver.ir.ops import OpKind


def unary(op: OpKind) -> Handler:
    def handle(ctx: OnnxContext, onode, ins, attrs) -> list:
        x = ctx.var_input(ins)
        return [ctx.emit(onode.output[0], op, [x.node], shape=x.shape)]
    return handle


def broadcast(op: OpKind) -> Handler:
    def handle(ctx: OnnxContext, onode, ins, attrs) -> list:
        if len(ins) != 2 or ins[0] is None or ins[1] is None:
            raise Unsupported("expects two operands")
        a, b = ins
        names = [onode.input[0], onode.input[1]]
        if ctx.opset < 7 and attrs.get("broadcast", 0):
            # legacy broadcasting: B is aligned with A starting at `axis`
            if not is_const(b):
                raise Unsupported("legacy broadcast of a variable operand")
            ra, rb = len(shape_of(a)), b.ndim
            axis = attrs.get("axis", ra - rb)
            axis = axis + ra if axis < 0 else axis
            b = b.reshape(*b.shape, *([1] * (ra - axis - rb)))
            operands = [ctx.operand(names[0]),
                        ctx.value_operand(b, onode.output[0] + "/b")]
        else:
            operands = [ctx.operand(names[0]), ctx.operand(names[1])]
        shape = np.broadcast_shapes(shape_of(a), shape_of(b))
        return [ctx.emit(onode.output[0], op, operands, shape=shape)]
    return handle


def identity(ctx: OnnxContext, onode, ins, attrs) -> list:
    ctx.require_outputs(onode, 1)
    return [ins[0]]


def cast(ctx: OnnxContext, onode, ins, attrs) -> list:
    if int(attrs.get("to", onnx.TensorProto.FLOAT)) not in FLOAT_TYPES:
        raise Unsupported("cast of a variable tensor to a non-float type")
    return [ins[0]]


def leaky_relu(ctx: OnnxContext, onode, ins, attrs) -> list:
    x = ctx.var_input(ins)
    return [ctx.emit(onode.output[0], OpKind.LEAKY_RELU, [x.node],
                     {"alpha": float(attrs.get("alpha", 0.01))}, shape=x.shape)]


def gelu(ctx: OnnxContext, onode, ins, attrs) -> list:
    if attrs.get("approximate", "none") != "none":
        raise Unsupported(f"approximate={attrs['approximate']}")
    x = ctx.var_input(ins)
    return [ctx.emit(onode.output[0], OpKind.GELU, [x.node], shape=x.shape)]


def where(ctx: OnnxContext, onode, ins, attrs) -> list:
    shape = np.broadcast_shapes(*(shape_of(v) for v in ins))
    operands = [ctx.operand(t) for t in onode.input]
    return [ctx.emit(onode.output[0], OpKind.WHERE, operands, shape=shape)]
