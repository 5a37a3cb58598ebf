"""Hand-written transposes of the IR's linear ops, for the backward pass of CROWN.

:class:`hybridver.bounds.linear_ops.LinearRule` can transpose any linear node by a
vector-Jacobian product of its evaluator, vectorized with ``vmap``.  That is exact but slow
where ``vmap`` has no batching rule (the input gradient of a transposed convolution is then
computed one coefficient row at a time) and costly in call overhead for the many small
data-movement nodes of an attention block.  :func:`direct_transpose` returns, for the ops
below, a function computing the same map ``lam -> lam J_i`` directly on the whole batch:

* data movement (RESHAPE, IDENTITY, NEG, TRANSPOSE, SLICE with positive steps, GATHER,
  CONCAT, EXPAND, UPSAMPLE by integer factors): the inverse permutation, a scatter-add
  or a sum over the broadcast/repeated positions;
* ADD, SUB, MUL and DIV by a constant, REDUCE_SUM, REDUCE_MEAN: elementwise products and
  sums over the broadcast axes (numpy broadcasting, as the evaluator aligns operands);
* CONV_TRANSPOSE (1-D and 2-D, one group): its transpose is a strided convolution of the
  coefficients (placed in the uncropped output grid) with the same kernel: every entry a
  sum of at most ``C_out * prod(kernel)`` products, the count the rounding analysis of
  :mod:`hybridver.bounds.crown` assumes (``fan`` in :mod:`hybridver.bounds.linear_ops`).
  It is the convolution autograd itself runs for the vjp, without ``vmap``.

Every function maps ``lam: (B, *node.shape)`` to a list, one ``(B, *shape_i)`` per variable
operand ``i`` in input order.  The map equals the vjp's up to the order of float
summation, which the running error bound covers; tests compare both on random
coefficients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from hybridver.ir.graph import Node
from hybridver.ir.ops import OpKind

Tensor = torch.Tensor
Transpose = Callable[[Tensor], list[Tensor]]

def unbroadcast(t: Tensor, shape: Sequence[int], batch_dims: int = 2) -> Tensor:
    """Sum ``t: (*batch, *out)`` down to ``(*batch, *shape)`` (numpy broadcasting of
    ``shape`` onto ``out``); ``batch_dims`` leading dimensions are kept (CROWN's
    coefficients: ``(m, N)``)."""
    lead = t.dim() - batch_dims - len(shape)
    if lead > 0:
        t = t.sum(dim=tuple(range(batch_dims, batch_dims + lead)))
    dims = tuple(batch_dims + i for i, s in enumerate(shape)
                 if s == 1 and t.shape[batch_dims + i] != 1)
    if dims:
        t = t.sum(dim=dims, keepdim=True)
    return t


def _sum_to(t: Tensor, shape: Sequence[int]) -> Tensor:
    """Sum ``t: (B, *out)`` down to ``(B, *shape)`` under numpy broadcasting of ``shape``."""
    return unbroadcast(t, shape, batch_dims=1).reshape(t.shape[0], *shape)


def _aligned(c: Tensor, rank: int, dtype: torch.dtype) -> Tensor:
    """Constant ``(1, *cshape)`` as ``(1, *[1] * k, *cshape)`` with ``rank`` sample axes."""
    missing = rank - (c.dim() - 1)
    if missing > 0:
        c = c.reshape(1, *([1] * missing), *c.shape[1:])
    return c.to(dtype)


def _elementwise(node: Node, shapes, var_pos, constants, dtype) -> Transpose | None:
    rank = len(node.shape)
    op = node.op
    if op in (OpKind.ADD, OpKind.SUB):
        signs = [1.0 if (op is OpKind.ADD or p == 0) else -1.0 for p in var_pos]
        return lambda lam: [_sum_to(lam if s > 0 else -lam, shapes[p])
                            for s, p in zip(signs, var_pos)]
    if len(var_pos) != 1:
        return None
    p = var_pos[0]
    if op is OpKind.MUL:
        c = _aligned(constants[1 - p], rank, dtype)
        return lambda lam: [_sum_to(lam * c, shapes[p])]
    if op is OpKind.DIV and p == 0:
        c = _aligned(constants[1], rank, dtype)
        return lambda lam: [_sum_to(lam / c, shapes[p])]
    return None


def _reduce(node: Node, in_shape: tuple[int, ...]) -> Transpose:
    axes = sorted(int(a) % len(in_shape) for a in node.attrs["axes"])
    keep = bool(node.attrs["keepdims"])
    count = float(np.prod([in_shape[a] for a in axes])) if axes else 1.0
    mean = node.op is OpKind.REDUCE_MEAN and count != 1.0

    def apply(lam: Tensor) -> list[Tensor]:
        if axes and not keep:
            for a in axes:
                lam = lam.unsqueeze(a + 1)
        g = lam.expand(lam.shape[0], *in_shape)
        return [g / count if mean else g]
    return apply


def _slice(node: Node, in_shape: tuple[int, ...]) -> Transpose | None:
    if any(int(s) <= 0 for s in node.attrs["steps"]):
        return None
    index: list = [slice(None)] * (len(in_shape) + 1)
    for start, end, axis, step in zip(node.attrs["starts"], node.attrs["ends"],
                                      node.attrs["axes"], node.attrs["steps"]):
        index[int(axis) + 1] = slice(start, end, step)
    index_t = tuple(index)

    def apply(lam: Tensor) -> list[Tensor]:
        g = lam.new_zeros(lam.shape[0], *in_shape)
        g[index_t] = lam
        return [g]
    return apply


def _gather(node: Node, in_shape: tuple[int, ...], device) -> Transpose:
    axis = int(node.attrs["axis"]) % len(in_shape)
    idx = np.asarray(node.consts["indices"], dtype=np.int64)
    dim = in_shape[axis]
    flat = torch.as_tensor(np.where(idx < 0, idx + dim, idx).reshape(-1), device=device)
    pre, post = in_shape[:axis], in_shape[axis + 1:]

    def apply(lam: Tensor) -> list[Tensor]:
        g = lam.new_zeros(lam.shape[0], *in_shape)
        g.index_add_(axis + 1, flat, lam.reshape(lam.shape[0], *pre, flat.numel(), *post))
        return [g]
    return apply


def _concat(node: Node, shapes, var_pos) -> Transpose:
    axis = int(node.attrs["axis"]) % len(node.shape) + 1
    sizes = [s[axis - 1] for s in shapes]
    return lambda lam: [part for p, part in enumerate(torch.split(lam, sizes, dim=axis))
                        if p in var_pos]


def _upsample(node: Node, in_shape: tuple[int, ...]) -> Transpose | None:
    scales = [float(s) for s in node.attrs["scales"]]
    if any(s != int(s) or s < 1 for s in scales) or len(scales) != len(in_shape):
        return None

    def apply(lam: Tensor) -> list[Tensor]:
        split: list[int] = [lam.shape[0]]
        for n, s in zip(in_shape, scales):
            split += [n, int(s)]
        g = lam.reshape(split).sum(dim=tuple(2 + 2 * i for i in range(len(in_shape))))
        return [g]
    return apply


class _ConvTransposeT:
    """Transpose of a 1-D/2-D, one-group ConvTranspose: ``lam`` placed in the full
    (uncropped) output grid, then a strided convolution with the same weight (which maps
    the ``C_out`` channels back to ``C_in``).  ``lam: (B, *lead, C_out, *out) -> (B, *lead,
    C_in, *in)``."""

    def __init__(self, node: Node, in_shape: tuple[int, ...], dtype, device):
        w = np.asarray(node.consts["weight"], dtype=np.float64)
        spatial = w.ndim - 2
        pads = tuple(int(p) for p in node.attrs.get("pads", (0,) * 2 * spatial))
        strides = tuple(int(s) for s in node.attrs.get("strides", (1,) * spatial))
        dil = tuple(int(d) for d in node.attrs.get("dilations", (1,) * spatial))
        kernel = w.shape[2:]
        in_sp, out_sp = in_shape[-spatial:], tuple(node.shape[-spatial:])
        full = [(i - 1) * s + d * (k - 1) + 1 for i, s, d, k in zip(in_sp, strides, dil, kernel)]
        # lam sits at full positions begin .. begin + out; positions past ``full`` are the
        # zero extension of output_padding (no dependence on the input): cropped
        self.pad_arg: list[int] = []
        for i in reversed(range(spatial)):
            self.pad_arg += [pads[i], full[i] - pads[i] - out_sp[i]]
        self.conv = (F.conv1d, F.conv2d)[spatial - 1]
        self.c_out = w.shape[1]
        self.weight = torch.as_tensor(w, dtype=dtype, device=device)
        self.strides, self.dil = strides, dil
        self.out_sp, self.in_shape = out_sp, in_shape

    def __call__(self, lam: Tensor) -> list[Tensor]:
        x = F.pad(lam.reshape(-1, self.c_out, *self.out_sp), self.pad_arg)  # < 0 crops
        g = self.conv(x, self.weight, stride=self.strides, dilation=self.dil)
        return [g.reshape(lam.shape[0], *self.in_shape)]


def direct_transpose(node: Node, shapes: list[tuple[int, ...]], var_pos: tuple[int, ...],
                     constants: dict[int, Tensor], dtype: torch.dtype,
                     device: torch.device) -> Transpose | None:
    """The direct transpose of ``node`` (see the module docstring), or None where the op
    (or this use of it) has none and the generic vjp is used."""
    op = node.op
    first = shapes[var_pos[0]] if var_pos else ()
    if op in (OpKind.RESHAPE, OpKind.IDENTITY):
        return lambda lam: [lam.reshape(lam.shape[0], *first)]
    if op is OpKind.NEG:
        return lambda lam: [-lam]
    if op is OpKind.TRANSPOSE:
        inverse = np.argsort(np.asarray(node.attrs["perm"]))
        return lambda lam: [lam.permute(0, *(int(i) + 1 for i in inverse))]
    if op is OpKind.EXPAND:
        return lambda lam: [_sum_to(lam, first)]
    if op in (OpKind.ADD, OpKind.SUB, OpKind.MUL, OpKind.DIV):
        return _elementwise(node, shapes, var_pos, constants, dtype)
    if op in (OpKind.REDUCE_SUM, OpKind.REDUCE_MEAN):
        return _reduce(node, first)
    if op is OpKind.SLICE:
        return _slice(node, first)
    if op is OpKind.GATHER:
        return _gather(node, first, device)
    if op is OpKind.CONCAT:
        return _concat(node, shapes, var_pos)
    if op is OpKind.UPSAMPLE:
        return _upsample(node, first)
    if op is OpKind.CONV_TRANSPOSE and int(node.attrs.get("group", 1)) == 1 \
            and np.asarray(node.consts["weight"]).ndim in (3, 4) \
            and not node.attrs.get("output_shape") and not node.attrs.get("auto_pad"):
        return _ConvTransposeT(node, first, dtype, device)
    return None
