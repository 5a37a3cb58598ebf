"""torch converters: activations (elementwise functions, GELU, LeakyReLU, softmax and
log-softmax, SiLU, clamps), and the ops that pass their operand through (aliases, dropout
in eval mode).

Clamps become ReLUs: ``max(x, lo) = relu(x - lo) + lo`` and ``min(y, hi) = hi - relu(hi - y)``
(Hardtanh and ReLU6 are clamps).
"""

from __future__ import annotations

from typing import Any

from hybridver.frontends.torch.context import (Conv, Meta, TorchContext, Unsupported, Var, arg,
                                               as_var, softmax_dim)
from hybridver.ir.ops import OpKind


UNARY = {"relu": OpKind.RELU, "sigmoid": OpKind.SIGMOID, "tanh": OpKind.TANH,
         "sin": OpKind.SIN, "cos": OpKind.COS, "exp": OpKind.EXP, "log": OpKind.LOG,
         "sqrt": OpKind.SQRT, "abs": OpKind.ABS, "neg": OpKind.NEG,
         "reciprocal": OpKind.RECIPROCAL, "erf": OpKind.ERF}


def unary(op: OpKind) -> Conv:
    def convert(c: TorchContext, args: tuple, kwargs: dict) -> Any:
        x = as_var(args[0])
        return c.emit(op, [x.name], c.out_shape(), final=True)
    return convert



def alias(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    x = as_var(args[0])
    meta = c.values[c.current]
    if isinstance(meta, Meta) and not meta.dtype.is_floating_point:
        raise Unsupported(f"cast to {meta.dtype}")
    return x


def dropout(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    if arg(args, kwargs, 2, "training", True):
        raise Unsupported("dropout in training mode (pass training=self.training)")
    return as_var(args[0])


def gelu(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    approximate = kwargs.get("approximate", "none")
    return gelu_op(c, as_var(args[0]), approximate)


def gelu_op(c: TorchContext, x: Var, approximate: str) -> Var:
    if approximate != "none":
        raise Unsupported(f"GELU(approximate={approximate!r}): only the exact (erf) GELU, "
                          "approximate='none', is supported")
    return c.emit(OpKind.GELU, [x.name], c.out_shape(), final=True)


def leaky_relu(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    slope = float(arg(args, kwargs, 1, "negative_slope", 0.01))
    return c.emit(OpKind.LEAKY_RELU, [as_var(args[0]).name], c.out_shape(),
                  attrs={"alpha": slope}, final=True)


def softmax(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    x = as_var(args[0])
    dim = arg(args, kwargs, 1, "dim", None)
    return softmax_op(c, x, dim, log=c.current_key == "log_softmax")


def softmax_op(c: TorchContext, x: Var, dim: Any, log: bool) -> Var:
    shape = c.out_shape()
    axis = softmax_dim(dim, len(shape))
    y = c.emit(OpKind.SOFTMAX, [x.name], shape, attrs={"axis": axis}, final=not log)
    if log:
        y = c.emit(OpKind.LOG, [y.name], shape, final=True)
    return y


def silu(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    return silu_op(c, as_var(args[0]))


def silu_op(c: TorchContext, x: Var) -> Var:
    shape = c.out_shape()
    s = c.emit(OpKind.SIGMOID, [x.name], shape)
    return c.emit(OpKind.MUL, [x.name, s.name], shape, final=True)


def clamp_op(c: TorchContext, x: Var, lo: Any, hi: Any) -> Var:
    """clamp through ReLU: max(x, lo) = relu(x - lo) + lo, min(y, hi) = hi - relu(hi - y)."""
    shape = c.out_shape()
    y = x
    if lo is not None:
        if isinstance(lo, (int, float)) and lo == 0:
            y = c.emit(OpKind.RELU, [y.name], shape, final=hi is None)
        else:
            lo_name = c.operand(lo, "min")
            d = c.emit(OpKind.SUB, [y.name, lo_name], shape)
            r = c.emit(OpKind.RELU, [d.name], shape)
            y = c.emit(OpKind.ADD, [r.name, lo_name], shape, final=hi is None)
    if hi is not None:
        hi_name = c.operand(hi, "max")
        d = c.emit(OpKind.SUB, [hi_name, y.name], shape)
        r = c.emit(OpKind.RELU, [d.name], shape)
        y = c.emit(OpKind.SUB, [hi_name, r.name], shape, final=True)
    if lo is None and hi is None:
        return x
    return y


def clamp(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    lo = arg(args, kwargs, 1, "min", None)
    hi = arg(args, kwargs, 2, "max", None)
    return clamp_op(c, as_var(args[0]), lo, hi)


def clamp_min(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    return clamp_op(c, as_var(args[0]), arg(args, kwargs, 1, "min"), None)


def clamp_max(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    return clamp_op(c, as_var(args[0]), None, arg(args, kwargs, 1, "max"))


def hardtanh(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    return clamp_op(c, as_var(args[0]), float(arg(args, kwargs, 1, "min_val", -1.0)),
                    float(arg(args, kwargs, 2, "max_val", 1.0)))


def relu6(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    return clamp_op(c, as_var(args[0]), 0, 6.0)
