"""torch converters: binary arithmetic (add/sub with ``alpha``, mul, div, pow, rsub),
matmul, linear layers, sum and mean."""

from __future__ import annotations

from typing import Any

import torch

from hybridver.frontends.torch.context import (Conv, TorchContext, Unsupported, Var, arg, as_var,
                                               to_numpy)
from hybridver.ir.ops import OpKind


BINARY = {"add": OpKind.ADD, "sub": OpKind.SUB, "mul": OpKind.MUL, "div": OpKind.DIV,
          "pow": OpKind.POW}


def scaled(c: TorchContext, value: Any, alpha: Any) -> Any:
    if alpha is None or alpha == 1:
        return value
    if isinstance(value, Var):
        return c.emit(OpKind.MUL, [value.name, c.operand(alpha, "alpha")],
                      c.shape_of(value), suffix="alpha")
    return value * alpha


def binary(key: str) -> Conv:
    op = BINARY[key]

    def convert(c: TorchContext, args: tuple, kwargs: dict) -> Any:
        a = arg(args, kwargs, 0, "input")
        b = arg(args, kwargs, 1, "other")
        if key == "pow" and b is None:
            b = arg(args, kwargs, 1, "exponent")
        if key == "div" and kwargs.get("rounding_mode") is not None:
            raise Unsupported(f"division with rounding_mode={kwargs['rounding_mode']!r}")
        if key in ("add", "sub"):
            b = scaled(c, b, kwargs.get("alpha"))
        return c.emit(op, [c.operand(a, "lhs"), c.operand(b, "rhs")], c.out_shape(),
                      final=True)
    return convert



def rsub(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    a = scaled(c, arg(args, kwargs, 0, "input"), kwargs.get("alpha"))
    b = arg(args, kwargs, 1, "other")
    return c.emit(OpKind.SUB, [c.operand(b, "lhs"), c.operand(a, "rhs")], c.out_shape(),
                  final=True)


def matmul(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    a = arg(args, kwargs, 0, "input")
    b = arg(args, kwargs, 1, "other")
    if b is None:
        b = kwargs.get("mat2")
    return c.emit(OpKind.MATMUL, [c.operand(a, "lhs"), c.operand(b, "rhs")], c.out_shape(),
                  final=True)


def linear(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    x = as_var(arg(args, kwargs, 0, "input"))
    w = arg(args, kwargs, 1, "weight")
    b = arg(args, kwargs, 2, "bias")
    return linear_op(c, x, w, b)


def linear_op(c: TorchContext, x: Var, w: Any, b: Any) -> Var:
    if not isinstance(w, torch.Tensor) or (b is not None and not isinstance(b, torch.Tensor)):
        raise Unsupported("linear layer whose weight depends on the input")
    consts = {"weight": to_numpy(w)}
    if b is not None:
        consts["bias"] = to_numpy(b)
    return c.emit(OpKind.LINEAR, [x.name], c.out_shape(), consts=consts, final=True)


def reduce(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    x = as_var(args[0])
    rank = len(c.shape_of(x))
    dim = arg(args, kwargs, 1, "dim", None)
    keepdim = bool(arg(args, kwargs, 2, "keepdim", False))
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        axes = tuple(range(rank))
    elif isinstance(dim, (tuple, list)):
        axes = tuple(sorted({int(d) % rank for d in dim}))
    else:
        axes = (int(dim) % rank,)
    op = OpKind.REDUCE_SUM if c.current_key == "sum" else OpKind.REDUCE_MEAN
    return c.emit(op, [x.name], c.out_shape(), attrs={"axes": axes, "keepdims": keepdim},
                  final=True)
