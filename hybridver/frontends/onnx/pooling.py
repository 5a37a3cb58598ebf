"""ONNX handlers: MaxPool, AveragePool, the global pools, nearest Upsample / Resize.

Nearest Upsample/Resize becomes ``UPSAMPLE`` (integer scales) or ``GATHER`` nodes, one per
resized axis (any other nearest index map), with the index map onnxruntime computes.
Refused: a map that depends on float rounding, ``half_pixel_symmetric`` (onnxruntime's
rounding of it differs from the definition at boundaries), ``tf_crop_and_resize`` (roi,
extrapolation), ``tf_half_pixel_for_nn``, linear / cubic modes, ``antialias``,
``exclude_outside`` and a ``keep_aspect_ratio_policy`` other than ``stretch``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from hybridver.frontends.onnx.context import (OnnxContext, Unsupported, axis_index, ints,
                                              same_pads)
from hybridver.ir.ops import OpKind
from hybridver.numerics import RESIZE_NEAR_TIE


_NEAR = Fraction(RESIZE_NEAR_TIE)  # exact: a power of two


def _source_coordinate(o: int, in_len: int, out_len: int, scale, coord: str, c):
    """Source coordinate of output position ``o`` with numbers made by ``c`` (float32,
    float64 or exact fractions: the arithmetic decides ties)."""
    s, half, x = c(scale), c(0.5), c(o)
    if coord == "half_pixel":
        return (x + half) / s - half
    if coord == "pytorch_half_pixel":
        return (x + half) / s - half if out_len > 1 else c(0)
    if coord == "align_corners":
        return x * c(in_len - 1) / c(out_len - 1) if out_len > 1 else c(0)
    if coord == "asymmetric":
        return x / s
    raise Unsupported(f"coordinate_transformation_mode={coord}")


def _exact(v) -> Fraction:
    """``v`` (int, float, numpy float or fraction) as an exact fraction."""
    return v if isinstance(v, (int, Fraction)) else Fraction(float(v))


def _float32(v) -> np.float32:
    return np.float32(float(v))


def _nearest_pixel(x, nearest: str, downsampling: bool) -> int:
    x = _exact(x)
    floor = math.floor(x)
    tie = x - floor == Fraction(1, 2)
    away = floor + 1 if x > 0 else floor  # C round() of a tie: away from zero
    if nearest == "round_prefer_floor":
        return floor if tie else math.floor(x + Fraction(1, 2))
    if nearest == "round_prefer_ceil":
        return away if tie else math.floor(x + Fraction(1, 2))
    if nearest == "floor":
        return floor
    if nearest == "ceil":
        return math.ceil(x)
    if nearest == "simple":  # onnxruntime's Upsample / opset-10 Resize rule
        return math.ceil(x) if downsampling else math.trunc(x)
    raise Unsupported(f"nearest_mode={nearest}")


def nearest_index_map(in_len: int, out_len: int, scales: Sequence, coord: str, nearest: str
                      ) -> np.ndarray:
    """Source index of each output position for nearest-neighbour resizing, clipped to
    ``[0, in_len - 1]``.

    Where the source coordinate lands on a rounding boundary (an integer for floor/ceil,
    a half for the round modes), the pixel picked depends on the arithmetic: onnxruntime
    computes in float32, real arithmetic differs by an ulp (``half_pixel`` + ``floor`` at
    scale 0.6 picks pixel 2 in float32, 1 exactly).  The map is therefore computed for
    every candidate scale in ``scales`` (the float32 value, and the exact ratio when the
    output size was given) in float32, float64 and exact arithmetic; if they do not all
    agree the node is refused, since onnxruntime's pick cannot be predicted safely.
    """
    boundary = Fraction(1, 2) if nearest.startswith("round") else Fraction(0)
    maps, near_tie = set(), False
    for scale in scales:
        for c in (_float32, float, _exact):
            coords = [_source_coordinate(o, in_len, out_len, scale, coord, c)
                      for o in range(out_len)]
            maps.add(tuple(min(max(_nearest_pixel(x, nearest, float(scale) < 1), 0),
                               in_len - 1) for x in coords))
        for x in (_source_coordinate(o, in_len, out_len, scale, coord, _exact)
                  for o in range(out_len)):
            # exactly: just off a boundary, where float32 arithmetic could cross it
            off = abs((x - boundary) - round(x - boundary))
            near_tie = near_tie or 0 < off < _NEAR * max(1, abs(x))
    if len(maps) != 1 or near_tie:
        raise Unsupported(
            f"{coord}/{nearest} index map {in_len} -> {out_len} depends on float rounding "
            "(a source coordinate at a rounding boundary)")
    return np.array(maps.pop(), dtype=np.int64)


def _check_same_pooling(in_sizes, kernel, strides, dilations, is_max: bool, mode: str
                        ) -> None:
    """Refuse the ``auto_pad=SAME_*`` pools where onnxruntime departs from the ONNX
    definition (found by tests/fuzz): with dilations it pads as if the kernel were not
    dilated; and when the SAME padding comes out negative (kernel shorter than the stride)
    it is not clamped to 0: onnxruntime's head padding, ``total / 2`` (SAME_UPPER) or
    ``(total + 1) / 2`` (SAME_LOWER) truncated toward zero, shifts an AveragePool's windows
    when negative (a negative tail only drops padding no window reads; onnxruntime rejects
    a negative MaxPool padding itself)."""
    if any(d != 1 for d in dilations):
        raise Unsupported("auto_pad=SAME with dilations (onnxruntime pads as if the kernel "
                          "were not dilated, unlike the ONNX definition)")
    for size, k, s in zip(in_sizes, kernel, strides):
        total = (-(-size // s) - 1) * s + k - size
        head = math.trunc((total + (mode == "SAME_LOWER")) / 2)
        if head < 0 and not is_max:
            raise Unsupported(f"auto_pad={mode} with negative padding (kernel {k} < stride "
                              f"{s}: onnxruntime shifts the windows by it)")


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
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        _check_same_pooling(x.shape[2:], kernel, strides, dilations, is_max, auto_pad)
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
    # options of linear / cubic interpolation (onnxruntime rejects them with nearest):
    # refused rather than dropped
    for name in ("antialias", "exclude_outside"):
        if int(attrs.get(name, 0)):
            raise Unsupported(f"{name}={attrs[name]}")
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
    out_sizes, axes_candidates = [], []
    for i in range(rank):
        n_in = x.shape[i]
        if sizes is not None:
            # onnxruntime: scale = float(out) / float(in) in float32; exactly: out / in
            n_out = sizes[i]
            candidates = [np.float32(n_out) / np.float32(n_in), Fraction(n_out, n_in)]
        else:
            scale = np.float32(scales[i])
            if scale <= 0:
                raise Unsupported(f"scale {float(scale)} on axis {i}")
            n_out = int(scale * np.float32(n_in))  # float32 product, truncated
            if n_out != math.floor(Fraction(float(scale)) * n_in):
                raise Unsupported(f"output size of axis {i} depends on float rounding")
            candidates = [scale]
        if n_out <= 0:
            raise Unsupported(f"output size {n_out} on axis {i}")
        out_sizes.append(n_out)
        axes_candidates.append(candidates)
    if out_sizes == list(x.shape):
        return [x]  # onnxruntime copies the input when the shape does not change
    maps = [nearest_index_map(x.shape[i], out_sizes[i], axes_candidates[i], coord, nearest)
            for i in range(rank)]
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
