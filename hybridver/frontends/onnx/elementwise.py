"""ONNX handlers: elementwise ops (activations, broadcast arithmetic, Where) and the ops
that pass their operand through (Identity, inference-mode Dropout, value-preserving Cast).

The IR computes in float64, so a Cast is an identity only when it cannot change a value:
to the same or a wider float type (float16/bfloat16 -> float32 -> float64).  A narrowing
float Cast (float64 -> float32, float32 -> float16/bfloat16, float16 <-> bfloat16, any
float8) and a float -> int Cast round values, and are refused; so is Dropout in training
mode (random).  Casts and Dropouts on constants are folded with their real semantics.

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


#: float type -> the float types it converts to exactly (itself and wider ones)
_EXACT_CASTS = {
    onnx.TensorProto.FLOAT16: FLOAT_TYPES - {onnx.TensorProto.BFLOAT16},
    onnx.TensorProto.BFLOAT16: FLOAT_TYPES - {onnx.TensorProto.FLOAT16},
    onnx.TensorProto.FLOAT: {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE},
    onnx.TensorProto.DOUBLE: {onnx.TensorProto.DOUBLE},
}
_TYPE_NAMES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64",
               onnx.TensorProto.FLOAT16: "float16", onnx.TensorProto.BFLOAT16: "bfloat16"}


def type_name(elem_type: int | None) -> str:
    """``float32`` etc. for an ONNX element type (``unknown type`` for None)."""
    if elem_type is None:
        return "unknown type"
    return _TYPE_NAMES.get(elem_type) or onnx.TensorProto.DataType.Name(elem_type).lower()


def cast(ctx: OnnxContext, onode, ins, attrs) -> list:
    """Identity when the cast cannot change a value; refused when it rounds."""
    x = ctx.var_input(ins)
    to = int(attrs.get("to", onnx.TensorProto.FLOAT))
    src = ctx.elem_type(onode.input[0])
    if src is None:
        raise Unsupported(f"cast to {type_name(to)} of a tensor whose type ONNX shape "
                          "inference cannot tell; hybridver does not import a cast it "
                          "cannot show to keep values")
    if to not in _EXACT_CASTS.get(src, ()):
        raise Unsupported(f"{type_name(src)} -> {type_name(to)} rounds values; hybridver "
                          "does not model narrowing casts")
    return [x]


def dropout(ctx: OnnxContext, onode, ins, attrs) -> list:
    """Inference-mode Dropout is the identity (its ratio is then irrelevant)."""
    check_dropout_mode(ctx, ins, attrs)
    ctx.require_outputs(onode, 1)
    return [ins[0]]


def check_dropout_mode(ctx: OnnxContext, ins, attrs) -> None:
    """Refuse a Dropout that may run in training mode (it drops values at random):
    opset >= 12 ``training_mode`` input true or not constant, opset < 7 ``is_test=0``."""
    if ctx.opset < 7 and not int(attrs.get("is_test", 0)):
        raise Unsupported("training mode (is_test=0) drops values at random; hybridver "
                          "does not model nondeterministic ops")
    mode = ins[2] if len(ins) > 2 else None
    if mode is None:
        return
    if not is_const(mode):
        raise Unsupported("training_mode is not a constant (in training mode Dropout drops "
                          "values at random); hybridver does not model nondeterministic ops")
    if np.any(mode):
        raise Unsupported("training_mode=true drops values at random; hybridver does not "
                          "model nondeterministic ops")


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


def clip(ctx: OnnxContext, onode, ins, attrs) -> list:
    """``Clip(x, lo, hi)`` as ReLUs, which every relaxation and back end handles exactly:
    ``lo + relu(x - lo) - relu(x - hi)`` (``lo + relu(x - lo)`` or ``hi - relu(hi - x)``
    with one bound).  Equal to the clip in real arithmetic for ``lo <= hi``; ``lo > hi``
    (ONNX: every output is ``hi``) is refused.  Bounds are constant scalars (attributes
    before opset 11, inputs after)."""
    ctx.require_outputs(onode, 1)
    x = ctx.var_input(ins)
    if ctx.opset < 11:
        lo, hi = attrs.get("min"), attrs.get("max")
    else:
        lo, hi = (ctx.const_input(ins, i, f"Clip {what}") for i, what in ((1, "min"), (2, "max")))
    lo, hi = (None if v is None else np.asarray(v, dtype=np.float64) for v in (lo, hi))
    for v in (lo, hi):
        if v is not None and v.size != 1:
            raise Unsupported("Clip bounds must be scalars")
    lo, hi = (None if v is None else float(v.reshape(())) for v in (lo, hi))
    if lo is not None and hi is not None and lo > hi:
        raise Unsupported(f"min {lo!r} > max {hi!r} (every output is max)")
    out = onode.output[0]
    if lo is None and hi is None:
        return [x]

    def const(value: float, tag: str) -> str:
        return ctx.emit_const(ctx.fresh(f"{out}/{tag}"), np.array(value))

    def relu_of(a: str, b: str, tag: str) -> str:
        diff = ctx.emit(ctx.fresh(f"{out}/{tag}_diff"), OpKind.SUB, [a, b], shape=x.shape)
        return ctx.emit(ctx.fresh(f"{out}/{tag}_relu"), OpKind.RELU, [diff.node],
                        shape=x.shape).node

    if hi is None:  # lo + relu(x - lo)
        lo_c = const(lo, "min")
        return [ctx.emit(out, OpKind.ADD, [lo_c, relu_of(x.node, lo_c, "low")],
                         shape=x.shape)]
    hi_c = const(hi, "max")
    if lo is None:  # hi - relu(hi - x)
        return [ctx.emit(out, OpKind.SUB, [hi_c, relu_of(hi_c, x.node, "high")],
                         shape=x.shape)]
    lo_c = const(lo, "min")
    low = ctx.emit(ctx.fresh(f"{out}/low"), OpKind.ADD, [lo_c, relu_of(x.node, lo_c, "low")],
                   shape=x.shape)
    return [ctx.emit(out, OpKind.SUB, [low.node, relu_of(x.node, hi_c, "high")],
                     shape=x.shape)]
