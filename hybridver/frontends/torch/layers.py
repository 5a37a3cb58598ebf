"""torch converters: convolutions, transposed convolutions, batch normalization in eval
mode, max / average / adaptive average pooling (functional and module forms share these)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hybridver.frontends.torch.context import (Conv, TorchContext, Unsupported, Var, arg, as_var,
                                               int_tuple, to_numpy)
from hybridver.ir.ops import OpKind


def conv_op(c: TorchContext, x: Var, weight: Any, bias: Any, stride: Any, padding: Any,
            dilation: Any, groups: Any) -> Var:
    if not isinstance(weight, torch.Tensor) or (bias is not None and
                                                not isinstance(bias, torch.Tensor)):
        raise Unsupported("convolution whose weight depends on the input")
    k = weight.dim() - 2
    dil = int_tuple(dilation, k)
    if isinstance(padding, str):
        if padding == "valid":
            begin = end = (0,) * k
        elif padding == "same":
            total = [d * (w - 1) for d, w in zip(dil, weight.shape[2:])]
            begin = tuple(t // 2 for t in total)
            end = tuple(t - b for t, b in zip(total, begin))
        else:
            raise Unsupported(f"convolution padding {padding!r}")
    else:
        begin = end = int_tuple(padding, k)
    consts = {"weight": to_numpy(weight)}
    if bias is not None:
        consts["bias"] = to_numpy(bias)
    attrs = {"strides": int_tuple(stride, k), "pads": tuple(begin) + tuple(end),
             "dilations": dil, "group": int(groups)}
    return c.emit(OpKind.CONV, [x.name], c.out_shape(), attrs=attrs, consts=consts, final=True)


def conv(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    return conv_op(c, as_var(args[0]), arg(args, kwargs, 1, "weight"),
                   arg(args, kwargs, 2, "bias"), arg(args, kwargs, 3, "stride", 1),
                   arg(args, kwargs, 4, "padding", 0), arg(args, kwargs, 5, "dilation", 1),
                   arg(args, kwargs, 6, "groups", 1))


def conv_transpose_op(c: TorchContext, x: Var, weight: Any, bias: Any, stride: Any,
                      padding: Any, groups: Any, dilation: Any) -> Var:
    if not isinstance(weight, torch.Tensor) or (bias is not None and
                                                not isinstance(bias, torch.Tensor)):
        raise Unsupported("transposed convolution whose weight depends on the input")
    k = weight.dim() - 2
    strides, pads, dil = int_tuple(stride, k), int_tuple(padding, k), int_tuple(dilation, k)
    shape = c.out_shape()
    in_shape = c.shape_of(x)
    # output_padding from the recorded output size (covers output_size= too)
    out_pad = tuple(
        shape[len(shape) - k + i] - ((in_shape[len(in_shape) - k + i] - 1) * strides[i]
                                     - 2 * pads[i] + dil[i] * (weight.shape[2 + i] - 1) + 1)
        for i in range(k))
    attrs = {"strides": strides, "pads": pads + pads, "dilations": dil, "group": int(groups),
             "output_padding": out_pad}
    consts = {"weight": to_numpy(weight)}
    if bias is not None:
        consts["bias"] = to_numpy(bias)
    return c.emit(OpKind.CONV_TRANSPOSE, [x.name], shape, attrs=attrs, consts=consts,
                  final=True)


def conv_transpose(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    return conv_transpose_op(c, as_var(args[0]), arg(args, kwargs, 1, "weight"),
                             arg(args, kwargs, 2, "bias"), arg(args, kwargs, 3, "stride", 1),
                             arg(args, kwargs, 4, "padding", 0),
                             arg(args, kwargs, 6, "groups", 1),
                             arg(args, kwargs, 7, "dilation", 1))


def batch_norm_op(c: TorchContext, x: Var, mean: Any, var: Any, weight: Any, bias: Any,
                  training: bool, eps: float) -> Var:
    if training or not isinstance(mean, torch.Tensor) or not isinstance(var, torch.Tensor):
        raise Unsupported("batch normalization with batch statistics (training mode or "
                          "track_running_stats=False)")
    n = mean.numel()
    consts = {"scale": to_numpy(weight) if isinstance(weight, torch.Tensor) else np.ones(n),
              "bias": to_numpy(bias) if isinstance(bias, torch.Tensor) else np.zeros(n),
              "mean": to_numpy(mean), "var": to_numpy(var)}
    if len(c.shape_of(x)) < 2:
        raise Unsupported("batch normalization of a tensor without a channel axis")
    return c.emit(OpKind.BATCH_NORM, [x.name], c.out_shape(), attrs={"epsilon": float(eps)},
                  consts=consts, final=True)


def batch_norm(c: TorchContext, args: tuple, kwargs: dict) -> Any:
    return batch_norm_op(c, as_var(args[0]), arg(args, kwargs, 1, "running_mean"),
                         arg(args, kwargs, 2, "running_var"), arg(args, kwargs, 3, "weight"),
                         arg(args, kwargs, 4, "bias"),
                         bool(arg(args, kwargs, 5, "training", False)),
                         float(arg(args, kwargs, 7, "eps", 1e-5)))


def max_pool_op(c: TorchContext, x: Var, k: int, kernel: Any, stride: Any, padding: Any,
                dilation: Any, ceil_mode: Any, return_indices: Any) -> Var:
    if return_indices:
        raise Unsupported("max pooling that returns indices")
    kernel = int_tuple(kernel, k)
    strides = int_tuple(stride, k) if stride not in (None, [], ()) else kernel
    pads = int_tuple(padding, k)
    attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads + pads,
             "dilations": int_tuple(dilation, k), "ceil_mode": int(bool(ceil_mode))}
    return c.emit(OpKind.MAX_POOL, [x.name], c.out_shape(), attrs=attrs, final=True)


def avg_pool_op(c: TorchContext, x: Var, k: int, kernel: Any, stride: Any, padding: Any,
                ceil_mode: Any, count_include_pad: Any, divisor_override: Any = None) -> Var:
    if divisor_override is not None:
        raise Unsupported("average pooling with divisor_override")
    kernel = int_tuple(kernel, k)
    strides = int_tuple(stride, k) if stride not in (None, [], ()) else kernel
    pads = int_tuple(padding, k)
    attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads + pads,
             "ceil_mode": int(bool(ceil_mode)), "count_include_pad": int(bool(count_include_pad))}
    return c.emit(OpKind.AVERAGE_POOL, [x.name], c.out_shape(), attrs=attrs, final=True)


def adaptive_avg_pool_op(c: TorchContext, x: Var, k: int) -> Var:
    in_shape = c.shape_of(x)
    out = c.out_shape()
    sizes_in, sizes_out = in_shape[-k:], out[-k:]
    if any(i % o for i, o in zip(sizes_in, sizes_out)):
        raise Unsupported(f"adaptive average pooling from {sizes_in} to {sizes_out} "
                          "(input size not a multiple of the output size)")
    if all(o == 1 for o in sizes_out) and len(in_shape) == k + 2:
        return c.emit(OpKind.GLOBAL_AVERAGE_POOL, [x.name], out, final=True)
    kernel = tuple(i // o for i, o in zip(sizes_in, sizes_out))
    attrs = {"kernel_shape": kernel, "strides": kernel, "pads": (0,) * (2 * k),
             "ceil_mode": 0, "count_include_pad": 0}
    return c.emit(OpKind.AVERAGE_POOL, [x.name], out, attrs=attrs, final=True)


def pool_converter(kind: str, k: int) -> Conv:
    def convert(c: TorchContext, args: tuple, kwargs: dict) -> Any:
        x = as_var(args[0])
        if kind == "max":
            return max_pool_op(c, x, k, arg(args, kwargs, 1, "kernel_size"),
                               arg(args, kwargs, 2, "stride"),
                               arg(args, kwargs, 3, "padding", 0),
                               arg(args, kwargs, 4, "dilation", 1),
                               arg(args, kwargs, 5, "ceil_mode", False),
                               arg(args, kwargs, 6, "return_indices", False))
        if kind == "avg":
            return avg_pool_op(c, x, k, arg(args, kwargs, 1, "kernel_size"),
                               arg(args, kwargs, 2, "stride"),
                               arg(args, kwargs, 3, "padding", 0),
                               arg(args, kwargs, 4, "ceil_mode", False),
                               arg(args, kwargs, 5, "count_include_pad", True),
                               arg(args, kwargs, 6, "divisor_override"))
        return adaptive_avg_pool_op(c, x, k)
    return convert
