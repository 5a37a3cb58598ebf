"""ONNX handlers: data movement with static shapes.

Flatten / Squeeze / Unsqueeze / Reshape become ``RESHAPE``; Split becomes ``SLICE`` nodes;
Transpose, Concat, Slice, Gather, Expand and constant Pad map to the IR op of the same
name with every axis resolved to a non-negative index.
"""

from __future__ import annotations

import math

import numpy as np

from hybridver.errors import ModelLoadError
from hybridver.frontends.onnx.context import (OnnxContext, Unsupported, Value, axis_index, ints,
                                              shape_of)
from hybridver.ir.ops import OpKind


def reshape(ctx: OnnxContext, onode, ins, attrs) -> list:
    x = ctx.var_input(ins)
    if ctx.opset >= 5:
        target = ctx.const_input(ins, 1, "shape")
        if target is None:
            raise Unsupported("missing shape")
        target = ints(target)
    else:
        target = ints(attrs.get("shape", []))
    allowzero = bool(attrs.get("allowzero", 0))
    shape = []
    for i, d in enumerate(target):
        if d == 0 and not allowzero:
            if i >= len(x.shape):
                raise ModelLoadError(f"reshape target {target} copies missing axis {i}")
            d = x.shape[i]
        shape.append(d)
    if shape.count(-1) > 1:
        raise ModelLoadError(f"reshape target {target} has several -1")
    total = math.prod(x.shape)
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        if known == 0 or total % known:
            raise ModelLoadError(f"cannot reshape {x.shape} to {target}")
        shape[shape.index(-1)] = total // known
    if math.prod(shape) != total:
        raise ModelLoadError(f"cannot reshape {x.shape} to {target}")
    return [ctx.emit(onode.output[0], OpKind.RESHAPE, [x.node], shape=shape)]


def flatten(ctx: OnnxContext, onode, ins, attrs) -> list:
    x = ctx.var_input(ins)
    rank = len(x.shape)
    axis = int(attrs.get("axis", 1))
    axis = axis + rank if axis < 0 else axis
    shape = (math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))
    return [ctx.emit(onode.output[0], OpKind.RESHAPE, [x.node], shape=shape)]


def squeeze(ctx: OnnxContext, onode, ins, attrs) -> list:
    x = ctx.var_input(ins)
    rank = len(x.shape)
    if ctx.opset >= 13:
        axes_v = ctx.const_input(ins, 1, "axes")
        axes = None if axes_v is None else ints(axes_v)
    else:
        axes = ints(attrs["axes"]) if "axes" in attrs else None
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    axes = {axis_index(a, rank) for a in axes}
    if any(x.shape[a] != 1 for a in axes):
        raise ModelLoadError(f"cannot squeeze axes {sorted(axes)} of shape {x.shape}")
    shape = [d for i, d in enumerate(x.shape) if i not in axes]
    return [ctx.emit(onode.output[0], OpKind.RESHAPE, [x.node], shape=shape)]


def unsqueeze(ctx: OnnxContext, onode, ins, attrs) -> list:
    x = ctx.var_input(ins)
    if ctx.opset >= 13:
        axes_v = ctx.const_input(ins, 1, "axes")
        if axes_v is None:
            raise Unsupported("missing axes")
        axes = ints(axes_v)
    else:
        axes = ints(attrs["axes"])
    rank = len(x.shape) + len(axes)
    axes_set = {axis_index(a, rank) for a in axes}
    rest = iter(x.shape)
    shape = [1 if i in axes_set else next(rest) for i in range(rank)]
    return [ctx.emit(onode.output[0], OpKind.RESHAPE, [x.node], shape=shape)]


def transpose(ctx: OnnxContext, onode, ins, attrs) -> list:
    x = ctx.var_input(ins)
    rank = len(x.shape)
    perm = ints(attrs["perm"]) if "perm" in attrs else list(range(rank))[::-1]
    perm = [axis_index(p, rank) for p in perm]
    shape = [x.shape[p] for p in perm]
    return [ctx.emit(onode.output[0], OpKind.TRANSPOSE, [x.node], {"perm": tuple(perm)},
                     shape=shape)]


def concat(ctx: OnnxContext, onode, ins, attrs) -> list:
    present = [(t, v) for t, v in zip(onode.input, ins) if t]
    rank = len(shape_of(present[0][1]))
    axis = axis_index(attrs["axis"], rank)
    operands = [ctx.operand(t) for t, _ in present]
    return [ctx.emit(onode.output[0], OpKind.CONCAT, operands, {"axis": axis})]


def slice(ctx: OnnxContext, onode, ins, attrs) -> list:
    x = ctx.var_input(ins)
    rank = len(x.shape)
    if ctx.opset >= 10:
        starts = ctx.const_input(ins, 1, "starts")
        ends = ctx.const_input(ins, 2, "ends")
        axes_v = ctx.const_input(ins, 3, "axes")
        steps_v = ctx.const_input(ins, 4, "steps")
        starts, ends = ints(starts), ints(ends)
        axes = ints(axes_v) if axes_v is not None else list(range(len(starts)))
        steps = ints(steps_v) if steps_v is not None else [1] * len(starts)
    else:
        starts, ends = ints(attrs["starts"]), ints(attrs["ends"])
        axes = ints(attrs["axes"]) if "axes" in attrs else list(range(len(starts)))
        steps = [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ModelLoadError("starts/ends/axes/steps of different lengths")
    r_starts, r_ends, r_axes, r_steps = [], [], [], []
    shape = list(x.shape)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = axis_index(axis, rank)
        dim = x.shape[axis]
        if step == 0:
            raise ModelLoadError("slice step 0")
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        r_starts.append(start)
        r_ends.append(end)
        r_axes.append(axis)
        r_steps.append(step)
        shape[axis] = len(range(start, end, step))
    return [ctx.emit(onode.output[0], OpKind.SLICE, [x.node],
                     {"starts": tuple(r_starts), "ends": tuple(r_ends),
                      "axes": tuple(r_axes), "steps": tuple(r_steps)}, shape=shape)]


def gather(ctx: OnnxContext, onode, ins, attrs) -> list:
    x = ctx.var_input(ins)
    indices = ctx.const_input(ins, 1, "indices")
    rank = len(x.shape)
    axis = axis_index(attrs.get("axis", 0), rank)
    dim = x.shape[axis]
    idx = np.asarray(indices).astype(np.int64)
    idx = np.where(idx < 0, idx + dim, idx)
    if idx.size and (idx.min() < 0 or idx.max() >= dim):
        raise ModelLoadError(f"gather index out of range for axis of size {dim}")
    shape = (*x.shape[:axis], *idx.shape, *x.shape[axis + 1:])
    return [ctx.emit(onode.output[0], OpKind.GATHER, [x.node], {"axis": axis},
                     {"indices": np.array(idx, dtype=np.int64)}, shape=shape)]


def split(ctx: OnnxContext, onode, ins, attrs) -> list:
    x = ctx.var_input(ins)
    rank = len(x.shape)
    axis = axis_index(attrs.get("axis", 0), rank)
    dim = x.shape[axis]
    n = len(onode.output)
    if ctx.opset >= 13:
        s = ctx.const_input(ins, 1, "split")
        sizes = ints(s) if s is not None and s.size else None
    else:
        sizes = ints(attrs["split"]) if "split" in attrs else None
    if sizes is None:
        if "num_outputs" in attrs:
            chunk = -(-dim // int(attrs["num_outputs"]))
            sizes = [min(chunk, dim - i * chunk) for i in range(int(attrs["num_outputs"]))]
        else:
            if dim % n:
                raise ModelLoadError(f"cannot split axis of size {dim} into {n} equal parts")
            sizes = [dim // n] * n
    if sum(sizes) != dim or len(sizes) != n:
        raise ModelLoadError(f"split sizes {sizes} do not fit axis of size {dim}")
    results: list[Value] = []
    start = 0
    for name, size in zip(onode.output, sizes):
        shape = list(x.shape)
        shape[axis] = size
        if name:
            results.append(ctx.emit(name, OpKind.SLICE, [x.node],
                                    {"starts": (start,), "ends": (start + size,),
                                     "axes": (axis,), "steps": (1,)}, shape=shape))
        else:
            results.append(None)
        start += size
    return results


def expand(ctx: OnnxContext, onode, ins, attrs) -> list:
    x = ctx.var_input(ins)
    target = ints(ctx.const_input(ins, 1, "shape"))
    shape = np.broadcast_shapes(x.shape, tuple(target))
    if tuple(shape) == x.shape:
        return [x]
    return [ctx.emit(onode.output[0], OpKind.EXPAND, [x.node], shape=shape)]


def pad(ctx: OnnxContext, onode, ins, attrs) -> list:
    x = ctx.var_input(ins)
    rank = len(x.shape)
    mode = attrs.get("mode", "constant")
    if mode != "constant":
        raise Unsupported(f"mode={mode}")
    if ctx.opset >= 11:
        pads = ints(ctx.const_input(ins, 1, "pads"))
        v = ctx.const_input(ins, 2, "constant_value")
        value = float(np.asarray(v).reshape(-1)[0]) if v is not None and v.size else 0.0
        axes_v = ctx.const_input(ins, 3, "axes")
        if axes_v is not None:
            axes = [axis_index(a, rank) for a in ints(axes_v)]
            full = [0] * (2 * rank)
            for k, a in enumerate(axes):
                full[a], full[rank + a] = pads[k], pads[len(axes) + k]
            pads = full
    else:
        pads = ints(attrs.get("pads", attrs.get("paddings", [])))
        value = float(attrs.get("value", 0.0))
    if len(pads) != 2 * rank:
        raise ModelLoadError(f"{len(pads)} pads for rank {rank}")
    shape = [x.shape[i] + pads[i] + pads[rank + i] for i in range(rank)]
    return [ctx.emit(onode.output[0], OpKind.PAD, [x.node],
                     {"pads": tuple(pads), "value": value}, shape=shape)]
