"""The tables of the torch importer: which converter handles which fx node.

* :data:`CONVERTERS`: converter key -> converter (one table for functions and methods);
* :func:`function_key` / :data:`METHOD_KEYS`: the key of a ``call_function`` target (torch,
  ``torch.nn.functional`` and ``operator`` callables, matched by identity) and of a
  ``call_method`` name;
* :data:`MODULES`: ``call_module`` converters, by module class (first match wins).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from hybridver.frontends.torch import activations, arithmetic, layers, shape_ops
from hybridver.frontends.torch.context import Conv, TorchContext, Unsupported, as_var

__all__ = ["CONVERTERS", "METHOD_KEYS", "MODULES", "function_key"]


CONVERTERS: dict[str, Conv] = {
    **{key: activations.unary(op) for key, op in activations.UNARY.items()},
    "alias": activations.alias,
    "dropout": activations.dropout,
    "gelu": activations.gelu,
    "leaky_relu": activations.leaky_relu,
    "softmax": activations.softmax,
    "log_softmax": activations.softmax,
    "silu": activations.silu,
    "clamp": activations.clamp,
    "clamp_min": activations.clamp_min,
    "clamp_max": activations.clamp_max,
    "hardtanh": activations.hardtanh,
    "relu6": activations.relu6,
    **{key: arithmetic.binary(key) for key in arithmetic.BINARY},
    "rsub": arithmetic.rsub,
    "matmul": arithmetic.matmul,
    "linear": arithmetic.linear,
    "sum": arithmetic.reduce,
    "mean": arithmetic.reduce,
    "reshape": shape_ops.reshape,
    "expand": shape_ops.expand,
    "permute": shape_ops.permute,
    "transpose": shape_ops.transpose,
    "t": shape_ops.transpose_2d,
    "T": shape_ops.transpose_all,
    "mT": shape_ops.transpose_last2,
    "cat": shape_ops.cat,
    "stack": shape_ops.stack,
    "split": shape_ops.split,
    "chunk": shape_ops.split,
    "tensor_split": shape_ops.split,
    "unbind": shape_ops.unbind,
    "getitem": shape_ops.getitem,
    "pad": shape_ops.constant_pad,
    "interpolate": shape_ops.interpolate,
    "conv": layers.conv,
    "conv_transpose": layers.conv_transpose,
    "batch_norm": layers.batch_norm,
    **{f"{kind}{k}d": layers.pool_converter(name, k) for k in (1, 2, 3)
       for kind, name in (("max_pool", "max"), ("avg_pool", "avg"),
                          ("adaptive_avg_pool", "adaptive"))},
}


def _function_table() -> dict[Any, str]:
    table: list[tuple[Any, str]] = []

    def add(key: str, *fns: Any) -> None:
        table.extend((fn, key) for fn in fns if fn is not None)

    t, f = torch, F
    g = getattr
    for name in ("relu", "sigmoid", "tanh", "sin", "cos", "exp", "log", "sqrt", "abs", "neg",
                 "reciprocal", "erf"):
        add(name, g(t, name, None), g(t, name + "_", None), g(f, name, None))
    add("relu", g(f, "relu_", None))
    add("neg", operator.neg, g(t, "negative", None))
    add("erf", g(t.special, "erf", None))
    add("gelu", f.gelu)
    add("leaky_relu", f.leaky_relu, g(f, "leaky_relu_", None))
    add("softmax", f.softmax, t.softmax)
    add("log_softmax", f.log_softmax, t.log_softmax)
    add("silu", f.silu)
    add("hardtanh", f.hardtanh)
    add("relu6", f.relu6)
    add("clamp", t.clamp, t.clip)
    add("clamp_min", g(t, "clamp_min", None))
    add("clamp_max", g(t, "clamp_max", None))
    add("add", operator.add, operator.iadd, t.add)
    add("sub", operator.sub, operator.isub, t.sub, t.subtract)
    add("rsub", g(t, "rsub", None))
    add("mul", operator.mul, operator.imul, t.mul, t.multiply)
    add("div", operator.truediv, operator.itruediv, t.div, t.true_divide, t.divide)
    add("pow", operator.pow, t.pow)
    add("matmul", operator.matmul, t.matmul, t.mm, t.bmm)
    add("linear", f.linear)
    add("reshape", t.flatten, t.reshape, t.squeeze, t.unsqueeze, t.ravel,
        g(t, "unflatten", None))
    add("permute", t.permute)
    add("transpose", t.transpose, t.swapaxes)
    add("t", t.t)
    add("expand", g(t, "broadcast_to", None))
    add("cat", t.cat, g(t, "concat", None), g(t, "concatenate", None))
    add("stack", t.stack)
    add("split", t.split)
    add("chunk", t.chunk)
    add("tensor_split", t.tensor_split)
    add("unbind", t.unbind)
    add("sum", t.sum)
    add("mean", t.mean)
    add("getitem", operator.getitem)
    add("pad", f.pad)
    add("interpolate", f.interpolate, g(f, "upsample", None), g(f, "upsample_nearest", None))
    add("conv", f.conv1d, f.conv2d, f.conv3d)
    add("conv_transpose", f.conv_transpose1d, f.conv_transpose2d, f.conv_transpose3d)
    add("batch_norm", f.batch_norm)
    for k in (1, 2, 3):
        add(f"max_pool{k}d", g(f, f"max_pool{k}d"))
        add(f"avg_pool{k}d", g(f, f"avg_pool{k}d"))
        add(f"adaptive_avg_pool{k}d", g(f, f"adaptive_avg_pool{k}d"))
    add("dropout", f.dropout, g(f, "dropout1d", None), f.dropout2d, f.dropout3d,
        f.alpha_dropout, f.feature_alpha_dropout)
    add("alias", t.clone, t.detach)
    return {id(fn): key for fn, key in table}


_FUNCTIONS = _function_table()


def function_key(target: Any) -> str | None:
    return _FUNCTIONS.get(id(target))


METHOD_KEYS: dict[str, str] = {}
for _name in ("relu", "sigmoid", "tanh", "sin", "cos", "exp", "log", "sqrt", "abs", "neg",
              "reciprocal", "erf", "add", "sub", "mul", "div", "pow", "clamp", "clamp_min",
              "clamp_max"):
    METHOD_KEYS[_name] = _name
    METHOD_KEYS[_name + "_"] = _name
METHOD_KEYS.update({
    "negative": "neg", "clip": "clamp", "clip_": "clamp", "subtract": "sub",
    "multiply": "mul", "true_divide": "div", "divide": "div",
    "softmax": "softmax", "log_softmax": "log_softmax", "matmul": "matmul", "mm": "matmul",
    "bmm": "matmul", "flatten": "reshape", "view": "reshape", "reshape": "reshape",
    "view_as": "reshape", "reshape_as": "reshape", "squeeze": "reshape",
    "unsqueeze": "reshape", "ravel": "reshape", "unflatten": "reshape", "squeeze_": "reshape",
    "unsqueeze_": "reshape", "contiguous": "alias", "clone": "alias", "detach": "alias",
    "float": "alias", "double": "alias", "to": "alias", "type_as": "alias", "cpu": "alias",
    "cuda": "alias", "permute": "permute", "transpose": "transpose", "swapaxes": "transpose",
    "t": "t", "expand": "expand", "expand_as": "expand", "broadcast_to": "expand",
    "split": "split", "chunk": "chunk", "tensor_split": "tensor_split", "unbind": "unbind",
    "sum": "sum", "mean": "mean",
})


ModConv = Callable[[TorchContext, nn.Module, tuple, dict], Any]


def _m_linear(c: TorchContext, m: nn.Linear, args: tuple, kwargs: dict) -> Any:
    return arithmetic.linear_op(c, as_var(args[0]), m.weight, m.bias)


def _m_conv(c: TorchContext, m: nn.modules.conv._ConvNd, args: tuple, kwargs: dict) -> Any:
    if m.padding_mode != "zeros":
        raise Unsupported(f"{type(m).__name__} with padding_mode={m.padding_mode!r}")
    return layers.conv_op(c, as_var(args[0]), m.weight, m.bias, m.stride, m.padding, m.dilation,
                          m.groups)


def _m_conv_transpose(c: TorchContext, m: nn.modules.conv._ConvTransposeNd, args: tuple,
                      kwargs: dict) -> Any:
    return layers.conv_transpose_op(c, as_var(args[0]), m.weight, m.bias, m.stride, m.padding,
                                    m.groups, m.dilation)


def _m_batch_norm(c: TorchContext, m: nn.modules.batchnorm._BatchNorm, args: tuple,
                  kwargs: dict) -> Any:
    return layers.batch_norm_op(c, as_var(args[0]), m.running_mean, m.running_var, m.weight, m.bias,
                                m.training or m.running_mean is None, m.eps)


def _m_simple(key: str) -> ModConv:
    def convert(c: TorchContext, m: nn.Module, args: tuple, kwargs: dict) -> Any:
        c.current_key = key
        return CONVERTERS[key](c, args[:1], {})
    return convert


def _m_gelu(c: TorchContext, m: nn.GELU, args: tuple, kwargs: dict) -> Any:
    return activations.gelu_op(c, as_var(args[0]), m.approximate)


def _m_leaky(c: TorchContext, m: nn.LeakyReLU, args: tuple, kwargs: dict) -> Any:
    return CONVERTERS["leaky_relu"](c, (args[0], m.negative_slope), {})


def _m_softmax(c: TorchContext, m: nn.Module, args: tuple, kwargs: dict) -> Any:
    return activations.softmax_op(c, as_var(args[0]), m.dim, log=isinstance(m, nn.LogSoftmax))


def _m_hardtanh(c: TorchContext, m: nn.Hardtanh, args: tuple, kwargs: dict) -> Any:
    if isinstance(m, nn.ReLU6):
        return activations.clamp_op(c, as_var(args[0]), 0, 6.0)
    return activations.clamp_op(c, as_var(args[0]), float(m.min_val), float(m.max_val))


def _m_reshape(c: TorchContext, m: nn.Module, args: tuple, kwargs: dict) -> Any:
    return shape_ops.reshape_to(c, as_var(args[0]), c.out_shape(), final=True)


def _m_identity(c: TorchContext, m: nn.Module, args: tuple, kwargs: dict) -> Any:
    return as_var(args[0])


def _m_dropout(c: TorchContext, m: nn.Module, args: tuple, kwargs: dict) -> Any:
    if m.training:
        raise Unsupported(f"{type(m).__name__} in training mode")
    return as_var(args[0])


def _m_upsample(c: TorchContext, m: nn.Upsample, args: tuple, kwargs: dict) -> Any:
    return shape_ops.upsample_op(c, as_var(args[0]), m.mode)


def _m_pool(k: int) -> ModConv:
    def convert(c: TorchContext, m: nn.Module, args: tuple, kwargs: dict) -> Any:
        x = as_var(args[0])
        if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
            return layers.max_pool_op(c, x, k, m.kernel_size, m.stride, m.padding, m.dilation,
                                      m.ceil_mode, m.return_indices)
        if isinstance(m, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
            return layers.avg_pool_op(c, x, k, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                                      m.count_include_pad, getattr(m, "divisor_override", None))
        return layers.adaptive_avg_pool_op(c, x, k)
    return convert


MODULES: list[tuple[type, ModConv]] = [
    (nn.Linear, _m_linear),
    ((nn.Conv1d, nn.Conv2d, nn.Conv3d), _m_conv),
    ((nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d), _m_conv_transpose),
    ((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d), _m_batch_norm),
    (nn.ReLU, _m_simple("relu")),
    (nn.Sigmoid, _m_simple("sigmoid")),
    (nn.Tanh, _m_simple("tanh")),
    (nn.SiLU, _m_simple("silu")),
    (nn.GELU, _m_gelu),
    (nn.LeakyReLU, _m_leaky),
    ((nn.Softmax, nn.LogSoftmax), _m_softmax),
    (nn.Hardtanh, _m_hardtanh),  # ReLU6 is a Hardtanh subclass
    ((nn.Flatten, nn.Unflatten), _m_reshape),
    (nn.Identity, _m_identity),
    (nn.Upsample, _m_upsample),
    ((nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
      nn.FeatureAlphaDropout), _m_dropout),
    ((nn.MaxPool1d, nn.AvgPool1d, nn.AdaptiveAvgPool1d), _m_pool(1)),
    ((nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d), _m_pool(2)),
    ((nn.MaxPool3d, nn.AvgPool3d, nn.AdaptiveAvgPool3d), _m_pool(3)),
]
