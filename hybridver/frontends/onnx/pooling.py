"""ONNX handlers: MaxPool, AveragePool, the global pools, nearest Upsample / Resize.

Nearest Upsample/Resize becomes ``UPSAMPLE`` (integer scales) or ``GATHER`` nodes, one per
resized axis (any other nearest index map).  Other interpolation modes are unsupported.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hybridver.frontends.onnx.context import (OnnxContext, Unsupported, axis_index, ints,
                                              same_pads)
from hybridver.ir.ops import OpKind


def nearest_index_map(in_len: int, out_len: int, scale: float, coord: str, nearest: str
                      ) -> np.ndarray:
    """Source index of each output position for nearest-neighbour resizing (ONNX Resize)."""
    o = np.arange(out_len, dtype=np.float64)
    if coord == "half_pixel":
        x = (o + 0.5) / scale - 0.5
    elif coord == "half_pixel_symmetric":
        adjustment = out_len / (scale * in_len)
        x = in_len / 2 * (1 - adjustment) + (o + 0.5) / scale - 0.5
    elif coord == "pytorch_half_pixel":
        x = (o + 0.5) / scale - 0.5 if out_len > 1 else np.zeros_like(o)
    elif coord == "align_corners":
        x = o * (in_len - 1) / (out_len - 1) if out_len > 1 else np.zeros_like(o)
    elif coord == "asymmetric":
        x = o / scale
    else:
        raise Unsupported(f"coordinate_transformation_mode={coord}")
    if nearest == "round_prefer_floor":
        idx = np.where(x - np.floor(x) == 0.5, np.floor(x), np.round(x))
    elif nearest == "round_prefer_ceil":
        idx = np.where(x - np.floor(x) == 0.5, np.ceil(x), np.round(x))
    elif nearest == "floor":
        idx = np.floor(x)
    elif nearest == "ceil":
        idx = np.ceil(x)
    elif nearest == "simple":  # onnxruntime's Upsample / opset-10 Resize rule
        idx = np.ceil(x) if scale < 1 else np.floor(x)
    else:
        raise Unsupported(f"nearest_mode={nearest}")
    return np.clip(idx, 0, in_len - 1).astype(np.int64)


def pool(ctx: OnnxContext, onode, ins, attrs) -> list:
    x = ctx.var_input(ins)
    is_max = onode.op_type == "MaxPool"
    ctx.require_outputs(onode, 1)
    kernel = ints(attrs["kernel_shape"])
    spatial = len(kernel)
    if len(x.shape) != spatial + 2:
        raise Unsupported(f"input of rank {len(x.shape)} for a {spatial}-D kernel")
    strides = ints(attrs.get("strides", [1] * spatial))
    dilations = ints(attrs.get("dilations", [1] * spatial))
    pads = ints(attrs.get("pads", [0] * (2 * spatial)))
    auto_pad = attrs.get("auto_pad", "NOTSET") or "NOTSET"
    if auto_pad != "NOTSET":
        pads = same_pads(x.shape[2:], kernel, strides, dilations, auto_pad)
    node_attrs: dict[str, Any] = {"kernel_shape": tuple(kernel), "strides": tuple(strides),
                                  "pads": tuple(pads),
                                  "ceil_mode": int(attrs.get("ceil_mode", 0))}
    if is_max:
        node_attrs["dilations"] = tuple(dilations)
        op = OpKind.MAX_POOL
    else:
        if any(d != 1 for d in dilations):
            raise Unsupported("dilated average pooling")
        if pads[:spatial] != pads[spatial:]:
            raise Unsupported("asymmetric padding")
        node_attrs["count_include_pad"] = int(attrs.get("count_include_pad", 0))
        op = OpKind.AVERAGE_POOL
    return [ctx.emit(onode.output[0], op, [x.node], node_attrs)]


def global_pool(ctx: OnnxContext, onode, ins, attrs) -> list:
    x = ctx.var_input(ins)
    if len(x.shape) < 3:
        raise Unsupported(f"input of rank {len(x.shape)}")
    if onode.op_type == "GlobalAveragePool":
        return [ctx.emit(onode.output[0], OpKind.GLOBAL_AVERAGE_POOL, [x.node])]
    spatial = len(x.shape) - 2
    return [ctx.emit(onode.output[0], OpKind.MAX_POOL, [x.node],
                     {"kernel_shape": tuple(x.shape[2:]), "strides": (1,) * spatial,
                      "pads": (0,) * (2 * spatial), "dilations": (1,) * spatial,
                      "ceil_mode": 0})]


def resize(ctx: OnnxContext, onode, ins, attrs) -> list:
    x = ctx.var_input(ins)
    rank = len(x.shape)
    op = onode.op_type
    mode = attrs.get("mode", "nearest")
    if mode != "nearest":
        raise Unsupported(f"mode={mode}")
    scales: list[float] | None = None
    sizes: list[int] | None = None
    if op == "Upsample":
        if ctx.opset >= 9:
            s = ctx.const_input(ins, 1, "scales")
            scales = None if s is None else [float(v) for v in s.reshape(-1)]
        else:
            scales = [float(v) for v in attrs.get("scales", [])]
        coord, nearest = "asymmetric", "simple"
    else:
        if ctx.opset < 11:
            s = ctx.const_input(ins, 1, "scales")
            scales = None if s is None else [float(v) for v in s.reshape(-1)]
            coord, nearest = "asymmetric", "simple"
        else:
            s = ctx.const_input(ins, 2, "scales")
            z = ctx.const_input(ins, 3, "sizes")
            if s is not None and s.size:
                scales = [float(v) for v in s.reshape(-1)]
            if z is not None and z.size:
                sizes = ints(z)
            coord = attrs.get("coordinate_transformation_mode", "half_pixel")
            nearest = attrs.get("nearest_mode", "round_prefer_floor")
            if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch" and sizes:
                raise Unsupported("keep_aspect_ratio_policy")
        axes = [axis_index(a, rank) for a in attrs.get("axes", range(rank))]
        if scales is not None and len(axes) != rank:
            full = [1.0] * rank
            for a, v in zip(axes, scales):
                full[a] = v
            scales = full
        if sizes is not None and len(axes) != rank:
            full_sizes = list(x.shape)
            for a, v in zip(axes, sizes):
                full_sizes[a] = v
            sizes = full_sizes
    if scales is None and sizes is None:
        raise Unsupported("neither scales nor sizes given")
    if (scales is not None and len(scales) != rank) or (sizes is not None
                                                        and len(sizes) != rank):
        raise Unsupported("scales/sizes do not match the input rank")
    out_sizes, maps = [], []
    for i in range(rank):
        n_in = x.shape[i]
        if sizes is not None:
            n_out, scale = sizes[i], sizes[i] / n_in
        else:
            scale = scales[i]
            n_out = int(math.floor(n_in * scale))
        if scale <= 0 or n_out <= 0:
            raise Unsupported(f"scale {scale} on axis {i}")
        out_sizes.append(n_out)
        maps.append(nearest_index_map(n_in, n_out, scale, coord, nearest))
    out = onode.output[0]
    changed = [i for i in range(rank)
               if not (out_sizes[i] == x.shape[i]
                       and np.array_equal(maps[i], np.arange(x.shape[i])))]
    if not changed:
        return [x]
    factors = []
    for i in range(rank):
        f = out_sizes[i] // x.shape[i]
        if f * x.shape[i] == out_sizes[i] and np.array_equal(
                maps[i], np.arange(out_sizes[i]) // f):
            factors.append(f)
        else:
            factors = []
            break
    if factors:
        return [ctx.emit(out, OpKind.UPSAMPLE, [x.node], {"scales": tuple(factors)},
                         shape=out_sizes)]
    y = x
    for k, i in enumerate(changed):
        name = out if k == len(changed) - 1 else ctx.fresh(f"{out}/axis{i}")
        shape = list(y.shape)
        shape[i] = out_sizes[i]
        y = ctx.emit(name, OpKind.GATHER, [y.node], {"axis": i}, {"indices": maps[i]},
                     shape=shape)
    return [y]
