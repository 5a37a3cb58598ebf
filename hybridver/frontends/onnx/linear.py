"""ONNX handlers: MatMul, Gemm, Conv, ConvTranspose.

``MatMul`` / ``Gemm`` with a constant 2-D right operand become ``LINEAR`` (weight
``(out, in)``, Gemm's ``alpha`` folded in, ``beta * C`` folded as bias when it broadcasts
over the last axis); other cases become ``MATMUL`` with the remaining steps as MUL / ADD
nodes.  ``auto_pad`` is resolved to explicit pads.
"""

from __future__ import annotations

import numpy as np

from hybridver.frontends.onnx.context import (OnnxContext, Unsupported, Value, Var, float64, ints,
                                              is_const, same_pads, shape_of)
from hybridver.ir.ops import OpKind


def matmul(ctx: OnnxContext, onode, ins, attrs) -> list:
    a, b = ins[0], ins[1]
    out = onode.output[0]
    if isinstance(a, Var) and is_const(b) and b.ndim == 2 and len(a.shape) >= 1:
        return [ctx.emit(out, OpKind.LINEAR, [a.node], consts={"weight": float64(b.T)})]
    return [ctx.emit(out, OpKind.MATMUL, [ctx.operand(onode.input[0]),
                                           ctx.operand(onode.input[1])])]


def gemm(ctx: OnnxContext, onode, ins, attrs) -> list:
    a, b = ins[0], ins[1]
    c = ins[2] if len(ins) > 2 else None
    out = onode.output[0]
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    trans_a, trans_b = bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0))
    if len(shape_of(a)) != 2 or len(shape_of(b)) != 2:
        raise Unsupported("Gemm operands must be 2-D")

    def oriented(v: Value, transpose: bool, tag: str) -> Value:
        if not transpose:
            return v
        if is_const(v):
            return np.array(v.T)
        return ctx.emit(ctx.fresh(f"{out}/{tag}"), OpKind.TRANSPOSE, [v.node],
                        {"perm": (1, 0)}, shape=v.shape[::-1])

    a_op = oriented(a, trans_a, "transA")
    b_op = oriented(b, trans_b, "transB")
    n_out = shape_of(b_op)[1]
    # what remains to add after the product: None, a bias vector, or an operand
    bias = None
    add: Value | None = None
    if c is not None and beta != 0.0:
        if is_const(c):
            cc = float64(c) * beta
            if cc.ndim <= 1 or (cc.ndim == 2 and cc.shape[0] == 1):
                bias = np.array(np.broadcast_to(cc.reshape(-1), (n_out,)))
            else:
                add = cc
        else:
            add = c
            if beta != 1.0:
                add = ctx.emit(ctx.fresh(f"{out}/beta_c"), OpKind.MUL,
                               [c.node, ctx.emit_const(ctx.fresh(f"{out}/beta"),
                                                       np.array(beta))], shape=c.shape)
    steps_left = (add is not None)
    if isinstance(a_op, Var) and is_const(b_op):
        consts = {"weight": float64(b_op.T) * alpha}
        if bias is not None:
            consts["bias"] = bias
        name = ctx.fresh(f"{out}/linear") if steps_left else out
        y = ctx.emit(name, OpKind.LINEAR, [a_op.node], consts=consts)
    else:
        scaled = alpha != 1.0 or bias is not None
        name = ctx.fresh(f"{out}/matmul") if (steps_left or scaled) else out
        y = ctx.emit(name, OpKind.MATMUL,
                     [ctx.value_operand(a_op, f"{out}/A"),
                      ctx.value_operand(b_op, f"{out}/B")])
        if alpha != 1.0:
            last = not (steps_left or bias is not None)
            y = ctx.emit(out if last else ctx.fresh(f"{out}/alpha"), OpKind.MUL,
                         [y.node, ctx.emit_const(ctx.fresh(f"{out}/alpha_value"),
                                                 np.array(alpha))], shape=y.shape)
        if bias is not None:
            y = ctx.emit(out if not steps_left else ctx.fresh(f"{out}/bias"), OpKind.ADD,
                         [y.node, ctx.emit_const(ctx.fresh(f"{out}/bias_value"), bias)],
                         shape=np.broadcast_shapes(y.shape, bias.shape))
    if add is not None:
        operand = ctx.value_operand(add, f"{out}/C")
        y = ctx.emit(out, OpKind.ADD, [y.node, operand],
                     shape=np.broadcast_shapes(y.shape, shape_of(add)))
    return [y]


def _kernel_operands(ctx: OnnxContext, ins, attrs):
    """Conv / ConvTranspose: input, weight, bias, spatial rank, strides and dilations."""
    x = ctx.var_input(ins)
    w = ctx.const_input(ins, 1, "weight")
    b = ctx.const_input(ins, 2, "bias")
    spatial = w.ndim - 2
    if len(x.shape) != spatial + 2:
        raise Unsupported(f"input of rank {len(x.shape)} for a {spatial}-D kernel")
    strides = ints(attrs.get("strides", [1] * spatial))
    dilations = ints(attrs.get("dilations", [1] * spatial))
    return x, w, b, spatial, strides, dilations


def conv(ctx: OnnxContext, onode, ins, attrs) -> list:
    x, w, b, spatial, strides, dilations = _kernel_operands(ctx, ins, attrs)
    pads = ints(attrs.get("pads", [0] * (2 * spatial)))
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", ""):
        pads = same_pads(x.shape[2:], w.shape[2:], strides, dilations, auto_pad)
    consts = {"weight": float64(w)}
    if b is not None:
        consts["bias"] = float64(b)
    return [ctx.emit(onode.output[0], OpKind.CONV, [x.node],
                     {"strides": tuple(strides), "pads": tuple(pads),
                      "dilations": tuple(dilations), "group": int(attrs.get("group", 1))},
                     consts)]


def conv_transpose(ctx: OnnxContext, onode, ins, attrs) -> list:
    x, w, b, spatial, strides, dilations = _kernel_operands(ctx, ins, attrs)
    out_pad = ints(attrs.get("output_padding", [0] * spatial))
    pads = ints(attrs.get("pads", [0] * (2 * spatial)))
    auto_pad = attrs.get("auto_pad", "NOTSET") or "NOTSET"
    in_sizes = x.shape[2:]
    kernel = w.shape[2:]
    explicit = "output_shape" in attrs
    target = ints(attrs["output_shape"])[-spatial:] if explicit else None
    if target is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        target = [in_sizes[i] * strides[i] for i in range(spatial)]
    if auto_pad == "VALID":
        pads = [0] * (2 * spatial)
    if target is not None:
        begin, end = [], []
        for i in range(spatial):
            total = (strides[i] * (in_sizes[i] - 1) + out_pad[i]
                     + (kernel[i] - 1) * dilations[i] + 1 - target[i])
            if total < 0:
                # onnxruntime grows the output at the end to an explicit output_shape,
                # but not to the SAME target in * stride (the output stays smaller)
                if explicit:
                    out_pad[i] -= total
                total = 0
            half, rest = total // 2, total - total // 2
            if auto_pad == "SAME_UPPER":
                begin.append(half)
                end.append(rest)
            else:
                begin.append(rest)
                end.append(half)
        pads = begin + end
    consts = {"weight": float64(w)}
    if b is not None:
        consts["bias"] = float64(b)
    return [ctx.emit(onode.output[0], OpKind.CONV_TRANSPOSE, [x.node],
                     {"strides": tuple(strides), "pads": tuple(pads),
                      "dilations": tuple(dilations), "group": int(attrs.get("group", 1)),
                      "output_padding": tuple(out_pad)}, consts)]
