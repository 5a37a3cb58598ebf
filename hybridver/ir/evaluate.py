"""Reference evaluation of a NetworkGraph: batched, float64 by default, torch on any device.

Tensors flowing through the graph have shape ``(batch, *node.shape)``.  CONSTANT nodes are
materialized with a batch axis of 1 so broadcasting against variables works unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from hybridver.ir.node import GraphValidationError, Node
from hybridver.ir.ops import OpKind

Tensor = torch.Tensor
OpFn = Callable[[Node, list[Tensor]], Tensor]


class GraphLike(Protocol):
    """What evaluation reads of a graph (a :class:`~hybridver.ir.graph.NetworkGraph`).

    A protocol, not an import: the graph validates its shapes by evaluating, so this module
    must not depend on it.
    """

    @property
    def topological_order(self) -> tuple[str, ...]: ...

    @property
    def input_node(self) -> Node: ...

    @property
    def output_node(self) -> Node: ...

    def node(self, name: str) -> Node: ...


def _const(node: Node, key: str, like: Tensor) -> Tensor:
    return torch.as_tensor(np.asarray(node.consts[key]), dtype=like.dtype, device=like.device)


def _align(t: Tensor, rank: int) -> Tensor:
    """Insert axes after the batch axis so ``t`` has ``rank`` per-sample axes (numpy rule)."""
    missing = rank - (t.dim() - 1)
    if missing <= 0:
        return t
    return t.reshape(t.shape[0], *([1] * missing), *t.shape[1:])


def _broadcasting(fn: Callable[[Tensor, Tensor], Tensor]) -> OpFn:
    def apply(node: Node, args: list[Tensor]) -> Tensor:
        rank = len(node.shape)
        return fn(_align(args[0], rank), _align(args[1], rank))
    return apply


def _per_sample(t: Tensor, spatial: int) -> tuple[Tensor, tuple[int, ...]]:
    """Fold all leading axes but the last ``spatial + 1`` (channel and spatial) into one."""
    lead = tuple(t.shape[: t.dim() - spatial - 1])
    return t.reshape(-1, *t.shape[t.dim() - spatial - 1:]), lead


def _conv(node: Node, args: list[Tensor]) -> Tensor:
    x = args[0]
    w = _const(node, "weight", x)
    spatial = w.dim() - 2
    b = _const(node, "bias", x) if "bias" in node.consts else None
    xs, lead = _per_sample(x, spatial)
    pads = tuple(node.attrs.get("pads", (0,) * 2 * spatial))
    begin, end = pads[:spatial], pads[spatial:]
    conv = (F.conv1d, F.conv2d, F.conv3d)[spatial - 1]
    if begin != end:
        pad_arg: list[int] = []
        for i in reversed(range(spatial)):
            pad_arg += [begin[i], end[i]]
        xs = F.pad(xs, pad_arg)
        padding: tuple[int, ...] = (0,) * spatial
    else:
        padding = begin
    y = conv(xs, w, b, stride=tuple(node.attrs.get("strides", (1,) * spatial)), padding=padding,
             dilation=tuple(node.attrs.get("dilations", (1,) * spatial)),
             groups=int(node.attrs.get("group", 1)))
    return y.reshape(*lead, *y.shape[1:])


def _conv_transpose(node: Node, args: list[Tensor]) -> Tensor:
    x = args[0]
    w = _const(node, "weight", x)
    spatial = w.dim() - 2
    b = _const(node, "bias", x) if "bias" in node.consts else None
    xs, lead = _per_sample(x, spatial)
    pads = tuple(node.attrs.get("pads", (0,) * 2 * spatial))
    begin, end = pads[:spatial], pads[spatial:]
    out_pad = tuple(node.attrs.get("output_padding", (0,) * spatial))
    conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[spatial - 1]
    y = conv(xs, w, None, stride=tuple(node.attrs.get("strides", (1,) * spatial)), padding=0,
             output_padding=0, groups=int(node.attrs.get("group", 1)),
             dilation=tuple(node.attrs.get("dilations", (1,) * spatial)))
    # ONNX: crop begin/end pads, then extend by output_padding (zeros beyond the full output)
    index = [slice(None), slice(None)]
    for i in range(spatial):
        full = y.shape[2 + i]
        stop = full - end[i] + out_pad[i]
        if stop > full:
            y = F.pad(y, [0, 0] * (spatial - 1 - i) + [0, stop - full])
        index.append(slice(begin[i], stop))
    y = y[tuple(index)]
    if b is not None:  # after the extension: the bias covers output_padding positions too
        y = y + b.reshape(-1, *([1] * spatial))
    return y.reshape(*lead, *y.shape[1:])


def _batch_norm(node: Node, args: list[Tensor]) -> Tensor:
    x = args[0]
    shape = [1] * x.dim()
    shape[2] = -1  # ONNX channel axis 1, after our batch axis
    scale, bias = _const(node, "scale", x), _const(node, "bias", x)
    mean, var = _const(node, "mean", x), _const(node, "var", x)
    factor = scale / torch.sqrt(var + float(node.attrs["epsilon"]))
    return (x - mean.reshape(shape)) * factor.reshape(shape) + bias.reshape(shape)


def pool_output_size(padded: tuple[int, ...], begin: tuple[int, ...], end: tuple[int, ...],
                     kernel: tuple[int, ...], strides: tuple[int, ...],
                     dilations: tuple[int, ...], ceil_mode: bool) -> tuple[int, ...]:
    """Output length per spatial axis of an ONNX pool over an input of ``padded`` lengths
    (pads included): ``(padded - d (k - 1) - 1) / s + 1``, rounded down, or up with
    ``ceil_mode``; in ceil mode a last window that starts inside the end padding (at or
    after ``begin + input length``) is dropped, as the ONNX operator, onnxruntime and torch
    do."""
    sizes = []
    for n, b, e, k, s, d in zip(padded, begin, end, kernel, strides, dilations):
        span = n - d * (k - 1) - 1
        out = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (out - 1) * s >= n - e:
            out -= 1
        sizes.append(out)
    return tuple(sizes)


def _pool(node: Node, args: list[Tensor]) -> Tensor:
    x = args[0]
    kernel = tuple(node.attrs["kernel_shape"])
    spatial = len(kernel)
    xs, lead = _per_sample(x, spatial)
    pads = tuple(node.attrs["pads"])
    begin, end = pads[:spatial], pads[spatial:]
    strides = tuple(node.attrs["strides"])
    ceil = bool(node.attrs.get("ceil_mode", 0))
    if node.op is OpKind.MAX_POOL:
        pad_arg: list[int] = []
        for i in reversed(range(spatial)):
            pad_arg += [begin[i], end[i]]
        xs = F.pad(xs, pad_arg, value=-math.inf)
        fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[spatial - 1]
        dilations = tuple(node.attrs.get("dilations", (1,) * spatial))
        y = fn(xs, kernel, strides, 0, dilations, ceil_mode=ceil)
        # the padding is already in ``xs``, so torch's ceil mode would keep a last window
        # that starts inside the end padding: ONNX (and onnxruntime, torch) drop it
        sizes = pool_output_size(xs.shape[-spatial:], begin, end, kernel, strides,
                                 dilations, ceil)
        y = y[(..., *(slice(0, n) for n in sizes))]
    else:
        if begin != end:
            raise GraphValidationError(f"node '{node.name}': asymmetric average-pool padding")
        fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[spatial - 1]
        y = fn(xs, kernel, strides, begin, ceil_mode=ceil,
               count_include_pad=bool(node.attrs.get("count_include_pad", 0)))
    return y.reshape(*lead, *y.shape[1:])


def _matmul(node: Node, args: list[Tensor]) -> Tensor:
    a, b = args
    if a.dim() == 2 and b.dim() == 2:  # two 1-D operands: a dot product per sample
        return (a * b).sum(-1)
    if a.dim() >= 3 and b.dim() >= 3:  # both have >= 2 per-sample axes: align batch dims
        rank = max(a.dim(), b.dim()) - 1
        a, b = _align(a, rank), _align(b, rank)
    elif b.dim() == 2 and b.shape[0] == 1:  # constant 1-D right operand: (1, k)
        return torch.matmul(a, b[0])
    elif a.dim() == 2 and a.shape[0] == 1:  # constant 1-D left operand
        return torch.matmul(a[0], b)
    elif b.dim() >= 3 and a.dim() == 2:  # variable 1-D left operand (B, k) @ (B, ..., k, n)
        return torch.matmul(a.reshape(a.shape[0], *([1] * (b.dim() - 3)), 1, a.shape[1]),
                            b).squeeze(-2)
    elif a.dim() >= 3 and b.dim() == 2:  # variable 1-D right operand
        return torch.matmul(a, b.reshape(b.shape[0], *([1] * (a.dim() - 3)), b.shape[1], 1)
                            ).squeeze(-1)
    return torch.matmul(a, b)


def _reduce(fn: Callable[..., Tensor]) -> OpFn:
    def apply(node: Node, args: list[Tensor]) -> Tensor:
        axes = tuple(a + 1 for a in node.attrs["axes"])
        if not axes:
            return args[0]
        return fn(args[0], dim=axes, keepdim=bool(node.attrs["keepdims"]))
    return apply


def _slice(node: Node, args: list[Tensor]) -> Tensor:
    x = args[0]
    index = [slice(None)] * x.dim()
    steps = node.attrs["steps"]
    for start, end, axis, step in zip(node.attrs["starts"], node.attrs["ends"],
                                      node.attrs["axes"], steps):
        if step <= 0:
            # negative steps: resolve to explicit indices
            dim = x.shape[axis + 1]
            idx = list(range(dim))[slice(start, end if end >= 0 else None, step)]
            x = x.index_select(axis + 1, torch.as_tensor(idx, dtype=torch.long, device=x.device))
            continue
        index[axis + 1] = slice(start, end, step)
    return x[tuple(index)]


def _gather(node: Node, args: list[Tensor]) -> Tensor:
    x = args[0]
    axis = int(node.attrs["axis"]) + 1
    indices = np.asarray(node.consts["indices"], dtype=np.int64)
    dim = x.shape[axis]
    flat = torch.as_tensor(np.where(indices < 0, indices + dim, indices).reshape(-1),
                           dtype=torch.long, device=x.device)
    y = x.index_select(axis, flat)
    return y.reshape(*x.shape[:axis], *indices.shape, *x.shape[axis + 1:])


def _where(node: Node, args: list[Tensor]) -> Tensor:
    rank = len(node.shape)
    cond, a, b = (_align(t, rank) for t in args)
    return torch.where(cond != 0, a, b)


def _upsample(node: Node, args: list[Tensor]) -> Tensor:
    x = args[0]
    for axis, scale in enumerate(node.attrs["scales"]):
        if int(scale) != 1:
            x = torch.repeat_interleave(x, int(scale), dim=axis + 1)
    return x


def _pad(node: Node, args: list[Tensor]) -> Tensor:
    x = args[0]
    pads = list(node.attrs["pads"])
    rank = len(pads) // 2
    pad_arg: list[int] = []
    for i in reversed(range(rank)):
        pad_arg += [pads[i], pads[rank + i]]
    return F.pad(x, pad_arg, value=float(node.attrs["value"]))


def _linear(node: Node, args: list[Tensor]) -> Tensor:
    x = args[0]
    y = torch.matmul(x, _const(node, "weight", x).T)
    if "bias" in node.consts:
        y = y + _const(node, "bias", x)
    return y


def _not_evaluable(node: Node, args: list[Tensor]) -> Tensor:
    raise GraphValidationError(f"node '{node.name}' ({node.op.value}) is not computed by an op")


EVALUATORS: dict[OpKind, OpFn] = {
    OpKind.INPUT: _not_evaluable,
    OpKind.CONSTANT: _not_evaluable,
    OpKind.LINEAR: _linear,
    OpKind.MATMUL: _matmul,
    OpKind.CONV: _conv,
    OpKind.CONV_TRANSPOSE: _conv_transpose,
    OpKind.BATCH_NORM: _batch_norm,
    OpKind.ADD: _broadcasting(torch.add),
    OpKind.SUB: _broadcasting(torch.sub),
    OpKind.MUL: _broadcasting(torch.mul),
    OpKind.DIV: _broadcasting(torch.div),
    OpKind.POW: _broadcasting(torch.pow),
    OpKind.NEG: lambda n, a: -a[0],
    OpKind.REDUCE_SUM: _reduce(torch.sum),
    OpKind.REDUCE_MEAN: _reduce(torch.mean),
    OpKind.RELU: lambda n, a: torch.relu(a[0]),
    OpKind.LEAKY_RELU: lambda n, a: F.leaky_relu(a[0], float(n.attrs["alpha"])),
    OpKind.ABS: lambda n, a: torch.abs(a[0]),
    OpKind.SIGMOID: lambda n, a: torch.sigmoid(a[0]),
    OpKind.TANH: lambda n, a: torch.tanh(a[0]),
    OpKind.SIN: lambda n, a: torch.sin(a[0]),
    OpKind.COS: lambda n, a: torch.cos(a[0]),
    OpKind.EXP: lambda n, a: torch.exp(a[0]),
    OpKind.LOG: lambda n, a: torch.log(a[0]),
    OpKind.SQRT: lambda n, a: torch.sqrt(a[0]),
    OpKind.RECIPROCAL: lambda n, a: torch.reciprocal(a[0]),
    OpKind.ERF: lambda n, a: torch.erf(a[0]),
    OpKind.GELU: lambda n, a: F.gelu(a[0]),
    OpKind.SOFTMAX: lambda n, a: torch.softmax(a[0], dim=int(n.attrs["axis"]) + 1),
    OpKind.MAX_POOL: _pool,
    OpKind.AVERAGE_POOL: _pool,
    OpKind.GLOBAL_AVERAGE_POOL: lambda n, a: a[0].mean(
        dim=tuple(range(3, a[0].dim())), keepdim=True),
    OpKind.UPSAMPLE: _upsample,
    OpKind.RESHAPE: lambda n, a: a[0].reshape(a[0].shape[0], *n.shape),
    OpKind.EXPAND: lambda n, a: _align(a[0], len(n.shape)).expand(a[0].shape[0], *n.shape),
    OpKind.TRANSPOSE: lambda n, a: a[0].permute(0, *(p + 1 for p in n.attrs["perm"])),
    OpKind.CONCAT: lambda n, a: torch.cat(
        [t.expand(max(x.shape[0] for x in a), *t.shape[1:]) for t in a],
        dim=int(n.attrs["axis"]) + 1),
    OpKind.SLICE: _slice,
    OpKind.GATHER: _gather,
    OpKind.WHERE: _where,
    OpKind.PAD: _pad,
    OpKind.IDENTITY: lambda n, a: a[0],
}


def evaluate_all(graph: GraphLike, inputs: Mapping[str, np.ndarray | Tensor] | np.ndarray
                 | Tensor, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None) -> dict[str, Tensor]:
    """Every node's value for a batch.

    ``inputs``: one array ``(batch, *input_shape)`` for single-input graphs, or a mapping
    from input name to such arrays.  Returns ``{node name: (batch or 1, *node.shape)}``;
    nodes that depend only on constants keep a batch axis of 1.
    """
    if not isinstance(inputs, Mapping):
        inputs = {graph.input_node.name: inputs}
    values: dict[str, Tensor] = {}
    for name in graph.topological_order:
        node = graph.node(name)
        if node.op is OpKind.INPUT:
            if name not in inputs:
                raise GraphValidationError(f"no value given for input '{name}'")
            x = torch.as_tensor(inputs[name], dtype=dtype, device=device)
            if tuple(x.shape[1:]) != node.shape:
                raise GraphValidationError(
                    f"input '{name}' expects per-sample shape {node.shape}, got "
                    f"{tuple(x.shape[1:])}")
            values[name] = x
        elif node.op is OpKind.CONSTANT:
            value = np.asarray(node.consts["value"])
            values[name] = torch.as_tensor(value, device=device).to(
                dtype if value.dtype.kind == "f" else torch.as_tensor(value).dtype
            ).reshape(1, *value.shape)
        else:
            values[name] = EVALUATORS[node.op](node, [values[i] for i in node.inputs])
    return values


def evaluate(graph: GraphLike, x: np.ndarray | Tensor, dtype: torch.dtype = torch.float64,
             device: torch.device | str | None = None) -> Tensor:
    """The single output ``(batch, *output_shape)`` for a batch ``x: (batch, *input_shape)``."""
    values = evaluate_all(graph, x, dtype=dtype, device=device)
    out = values[graph.output_node.name]
    batch = torch.as_tensor(x).shape[0] if not isinstance(x, Mapping) else out.shape[0]
    return out.expand(batch, *out.shape[1:])
