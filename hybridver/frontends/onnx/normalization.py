"""ONNX handlers: BatchNormalization (inference), Softmax, ReduceSum / ReduceMean.

Old-opset Softmax (< 13, coerce-to-2-D semantics) becomes ``RESHAPE -> SOFTMAX ->
RESHAPE`` when the axis is not the last one.
"""

from __future__ import annotations

import math

from hybridver.frontends.onnx.context import (Handler, OnnxContext, Unsupported, axis_index,
                                              float64, ints)
from hybridver.ir.ops import OpKind


def batch_norm(ctx: OnnxContext, onode, ins, attrs) -> list:
    ctx.require_outputs(onode, 1)
    if attrs.get("training_mode", 0):
        raise Unsupported("training_mode=1")
    x = ctx.var_input(ins)
    consts = {}
    for i, key in enumerate(("scale", "bias", "mean", "var"), start=1):
        v = ctx.const_input(ins, i, key)
        if v is None:
            raise Unsupported(f"missing {key}")
        if v.ndim != 1 or len(x.shape) < 2 or v.shape[0] != x.shape[1]:
            raise Unsupported(f"{key} of shape {v.shape} for input of shape {x.shape}")
        consts[key] = float64(v)
    return [ctx.emit(onode.output[0], OpKind.BATCH_NORM, [x.node],
                     {"epsilon": float(attrs.get("epsilon", 1e-5))}, consts,
                     shape=x.shape)]


def softmax(ctx: OnnxContext, onode, ins, attrs) -> list:
    x = ctx.var_input(ins)
    rank = len(x.shape)
    out = onode.output[0]
    if rank == 0:
        raise Unsupported("softmax of a scalar")
    if ctx.opset >= 13:
        axis = axis_index(attrs.get("axis", -1), rank)
        return [ctx.emit(out, OpKind.SOFTMAX, [x.node], {"axis": axis}, shape=x.shape)]
    # opset < 13: coerce to 2-D at `axis`, i.e. softmax jointly over all axes >= axis
    axis = axis_index(attrs.get("axis", 1), rank)
    if axis == rank - 1:
        return [ctx.emit(out, OpKind.SOFTMAX, [x.node], {"axis": axis}, shape=x.shape)]
    flat = (*x.shape[:axis], math.prod(x.shape[axis:]))
    r = ctx.emit(ctx.fresh(f"{out}/flat"), OpKind.RESHAPE, [x.node], shape=flat)
    s = ctx.emit(ctx.fresh(f"{out}/softmax"), OpKind.SOFTMAX, [r.node], {"axis": axis},
                 shape=flat)
    return [ctx.emit(out, OpKind.RESHAPE, [s.node], shape=x.shape)]


def reduce(op: OpKind, input_axes_from: int) -> Handler:
    def handle(ctx: OnnxContext, onode, ins, attrs) -> list:
        x = ctx.var_input(ins)
        rank = len(x.shape)
        if ctx.opset >= input_axes_from:
            axes_v = ctx.const_input(ins, 1, "axes")
            axes = ints(axes_v) if axes_v is not None else []
            noop = bool(attrs.get("noop_with_empty_axes", 0))
        else:
            axes = ints(attrs.get("axes", []))
            noop = False
        if not axes:
            if noop:
                return [x]
            axes = list(range(rank))
        axes_t = tuple(sorted({axis_index(a, rank) for a in axes}))
        keep = bool(attrs.get("keepdims", 1))
        shape = [1 if i in axes_t else d for i, d in enumerate(x.shape)
                 if keep or i not in axes_t]
        return [ctx.emit(onode.output[0], op, [x.node], {"axes": axes_t, "keepdims": keep},
                         shape=shape)]
    return handle
