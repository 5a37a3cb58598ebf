"""torch converters: data movement (reshape, expand, transposes, cat, stack, split,
unbind, indexing), constant padding and nearest upsampling by integer factors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hybridver.frontends.torch.context import (Meta, TorchContext, Unsupported, Var, arg, as_var)
from hybridver.ir.ops import OpKind


def reshape(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    x = as_var(args[0])
    return reshape_to(c, x, c.out_shape(), final=True)


def reshape_to(c: TorchContext, x: Var, shape: tuple[int, ...], final: bool = False) -> Var:
    if c.shape_of(x) == tuple(shape):
        return x
    return c.emit(OpKind.RESHAPE, [x.name], shape, final=final)


def expand(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    x = as_var(args[0])
    shape = c.out_shape()
    if c.shape_of(x) == shape:
        return x
    return c.emit(OpKind.EXPAND, [x.name], shape, final=True)


def transpose_to(c: TorchContext, x: Var, perm: Sequence[int]) -> Var:
    perm = tuple(int(p) for p in perm)
    if perm == tuple(range(len(perm))):
        return x
    return c.emit(OpKind.TRANSPOSE, [x.name], c.out_shape(), attrs={"perm": perm}, final=True)


def permute(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    x = as_var(args[0])
    rank = len(c.shape_of(x))
    dims = kwargs.get("dims", args[1:])
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = dims[0]
    return transpose_to(c, x, [int(d) % rank for d in dims])


def transpose(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    x = as_var(args[0])
    rank = len(c.shape_of(x))
    d0 = int(arg(args, kwargs, 1, "dim0")) % rank
    d1 = int(arg(args, kwargs, 2, "dim1")) % rank
    perm = list(range(rank))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return transpose_to(c, x, perm)


def transpose_2d(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    x = as_var(args[0])
    rank = len(c.shape_of(x))
    return transpose_to(c, x, [1, 0] if rank == 2 else list(range(rank)))


def transpose_all(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    x = as_var(args[0])
    return transpose_to(c, x, list(reversed(range(len(c.shape_of(x))))))


def transpose_last2(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    x = as_var(args[0])
    rank = len(c.shape_of(x))
    perm = list(range(rank))
    perm[-2], perm[-1] = perm[-1], perm[-2]
    return transpose_to(c, x, perm)


def cat(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    tensors = list(arg(args, kwargs, 0, "tensors"))
    shape = c.out_shape()
    axis = int(arg(args, kwargs, 1, "dim", 0)) % len(shape)
    names = [c.operand(t, f"part{i}") for i, t in enumerate(tensors)
             if not (isinstance(t, torch.Tensor) and t.numel() == 0 and t.dim() == 1)]
    if len(names) == 1:
        return Var(names[0])
    return c.emit(OpKind.CONCAT, names, shape, attrs={"axis": axis}, final=True)


def stack(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    tensors = list(arg(args, kwargs, 0, "tensors"))
    shape = c.out_shape()
    axis = int(arg(args, kwargs, 1, "dim", 0)) % len(shape)
    names = []
    for i, t in enumerate(tensors):
        if isinstance(t, Var):
            s = list(c.shape_of(t))
            s.insert(axis, 1)
            names.append(c.emit(OpKind.RESHAPE, [t.name], s, suffix=f"unsqueeze{i}").name)
        else:
            names.append(c.operand(torch.as_tensor(t).unsqueeze(axis), f"part{i}"))
    return c.emit(OpKind.CONCAT, names, shape, attrs={"axis": axis}, final=True)


def slice_pieces(c: TorchContext, x: Var, axis: int, sizes: Sequence[int],
                 drop_axis: bool = False) -> tuple[Var, ...]:
    shape = c.shape_of(x)
    out, start = [], 0
    for i, size in enumerate(sizes):
        s = list(shape)
        s[axis] = size
        piece = c.emit(OpKind.SLICE, [x.name], s, suffix=f"part{i}",
                       attrs={"starts": (start,), "ends": (start + size,), "axes": (axis,),
                              "steps": (1,)})
        if drop_axis:
            del s[axis]
            piece = c.emit(OpKind.RESHAPE, [piece.name], s, suffix=f"squeeze{i}")
        out.append(piece)
        start += size
    return tuple(out)


def pieces_meta(c: TorchContext) -> list[tuple[int, ...]]:
    meta = c.values[c.current]
    if not isinstance(meta, (tuple, list)) or not all(isinstance(m, Meta) for m in meta):
        raise Unsupported("split into something other than a list of tensors")
    return [m.shape for m in meta]


def split(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    x = as_var(args[0])
    rank = len(c.shape_of(x))
    axis = int(arg(args, kwargs, 2, "dim", 0)) % rank
    sizes = [s[axis] for s in pieces_meta(c)]
    return slice_pieces(c, x, axis, sizes)


def unbind(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    x = as_var(args[0])
    shape = c.shape_of(x)
    axis = int(arg(args, kwargs, 1, "dim", 0)) % len(shape)
    return slice_pieces(c, x, axis, [1] * shape[axis], drop_axis=True)


def getitem(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    obj, index = args[0], args[1]
    if isinstance(obj, (tuple, list)):
        if isinstance(index, (Var, torch.Tensor)):
            raise Unsupported("indexing a list with a tensor")
        return obj[index]
    x = as_var(obj)
    return index_tensor(c, x, index)


def index_tensor(c: TorchContext, x: Var, index: Any) -> Var:
    shape = c.shape_of(x)
    items = list(index) if isinstance(index, tuple) else [index]
    for item in items:
        if isinstance(item, Var):
            raise Unsupported("indexing with a tensor computed from the input")
        if isinstance(item, torch.Tensor) and item.dtype == torch.bool or isinstance(item, bool):
            raise Unsupported("boolean-mask indexing")
    consuming = sum(1 for it in items if it is not None and it is not Ellipsis)
    if any(it is Ellipsis for it in items):
        k = next(i for i, it in enumerate(items) if it is Ellipsis)
        items[k:k + 1] = [slice(None)] * (len(shape) - consuming)
    else:
        items += [slice(None)] * (len(shape) - consuming)
    advanced = [i for i, it in enumerate(items)
                if isinstance(it, (list, torch.Tensor)) and not
                (isinstance(it, torch.Tensor) and it.dim() == 0)]
    has_int_or_none = any(it is None or isinstance(it, int) or
                          (isinstance(it, torch.Tensor) and it.dim() == 0) for it in items)
    if len(advanced) > 1 or (advanced and has_int_or_none):
        raise Unsupported("advanced indexing with several index tensors (or mixed with "
                          "integers/None)")
    starts, ends, axes, steps = [], [], [], []
    gather: tuple[int, np.ndarray] | None = None
    axis = 0
    for it in items:
        if it is None:
            continue
        dim = shape[axis]
        if isinstance(it, torch.Tensor) and it.dim() == 0:
            it = int(it)
        if isinstance(it, int):
            i = it % dim
            starts.append(i), ends.append(i + 1), axes.append(axis), steps.append(1)
        elif isinstance(it, slice):
            start, stop, step = it.indices(dim)
            if step <= 0:
                raise Unsupported("slice with a non-positive step")
            if (start, stop, step) != (0, dim, 1):
                stop = max(stop, start)
                starts.append(start), ends.append(stop), axes.append(axis), steps.append(step)
        else:
            idx = np.asarray(it.cpu().numpy() if isinstance(it, torch.Tensor) else it)
            if idx.dtype.kind not in "iu":
                raise Unsupported(f"indexing with a {idx.dtype} array")
            gather = (axis, idx.astype(np.int64) % dim)
        axis += 1
    y = x
    if starts:
        s = list(shape)
        for start, end, ax, step in zip(starts, ends, axes, steps):
            s[ax] = len(range(start, end, step))
        y = c.emit(OpKind.SLICE, [y.name], s, suffix="slice",
                   attrs={"starts": tuple(starts), "ends": tuple(ends), "axes": tuple(axes),
                          "steps": tuple(steps)})
    if gather is not None:
        ax, idx = gather
        s = list(c.shape_of(y))
        s[ax:ax + 1] = idx.shape
        y = c.emit(OpKind.GATHER, [y.name], s, attrs={"axis": ax}, consts={"indices": idx},
                   suffix="gather")
    out = c.out_shape()
    if c.shape_of(y) != out:
        y = c.emit(OpKind.RESHAPE, [y.name], out, suffix="reshape")
    return y


def constant_pad(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    x = as_var(args[0])
    pad = list(arg(args, kwargs, 1, "pad"))
    mode = arg(args, kwargs, 2, "mode", "constant")
    value = arg(args, kwargs, 3, "value", None)
    if mode != "constant":
        raise Unsupported(f"padding mode {mode!r}")
    rank = len(c.shape_of(x))
    begin, end = [0] * rank, [0] * rank
    for i in range(len(pad) // 2):
        begin[rank - 1 - i] = int(pad[2 * i])
        end[rank - 1 - i] = int(pad[2 * i + 1])
    return c.emit(OpKind.PAD, [x.name], c.out_shape(),
                  attrs={"pads": tuple(begin + end), "value": float(value or 0.0)}, final=True)


def interpolate(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    mode = arg(args, kwargs, 3, "mode", "nearest")
    return upsample_op(c, as_var(args[0]), mode)


def upsample_op(c: TorchContext, x: Var, mode: str) -> Var:
    if mode != "nearest":
        raise Unsupported(f"interpolation mode {mode!r} (only 'nearest' is supported)")
    in_shape, out = c.shape_of(x), c.out_shape()
    if len(in_shape) != len(out) or any(o % i for i, o in zip(in_shape, out)):
        raise Unsupported(f"nearest upsampling from {in_shape} to {out} by a non-integer "
                          "factor")
    scales = tuple(o // i for i, o in zip(in_shape, out))
    return c.emit(OpKind.UPSAMPLE, [x.name], out, attrs={"scales": scales}, final=True)
