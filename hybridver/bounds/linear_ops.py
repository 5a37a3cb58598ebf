"""Backward (transposed) rules for the IR's linear ops, derived generically from the evaluator.

A node is *linear* when its value is an affine function of its variable operands, the
other operands being constants: ``z = sum_i J_i x_i + b`` (LINEAR, CONV, reshapes, ADD of
two variables, MUL by a constant...).  For such a node, CROWN needs

* ``backward(lam)``: ``lam J_i`` for every variable operand, where ``lam: (m, N, *z)`` holds
  the coefficients of ``z`` in a linear bound.  Obtained from the op's own evaluator by a
  vector-Jacobian product (``torch.func.vjp`` at 0, then ``vmap`` over the ``m * N``
  cotangents), so every evaluator is its own transpose and no op needs a hand-written
  backward rule.  LINEAR has a fast path (one matmul).
* ``bias``: ``b = f(0)`` (constants included), evaluated in float64.
* ``magnitude(M)``: ``sum_i |J_i| M_i`` for non-negative ``M_i`` (the op with every constant
  replaced by its absolute value, additive constants by 0, evaluated in float64); the
  rounding analysis in :mod:`hybridver.bounds.crown` bounds the error of ``lam J_i`` by
  ``gamma(fan) * <|lam|, sum_i |J_i| M_i>`` (:func:`hybridver.numerics.gamma`) where
  ``M_i >= |x_i|``.
* ``fan``: the largest number of products summed into one entry of ``lam J_i``, plus the
  roundings of the constants themselves (for that error bound).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.func import vjp, vmap

from hybridver.bounds.linear_transposes import direct_transpose
from hybridver.ir.evaluate import EVALUATORS, _align
from hybridver.ir.graph import Node
from hybridver.ir.ops import OpKind

Tensor = torch.Tensor

#: Ops that are affine in their variable operands whatever they are.
ALWAYS_LINEAR = frozenset({
    OpKind.LINEAR, OpKind.CONV, OpKind.CONV_TRANSPOSE, OpKind.BATCH_NORM, OpKind.NEG,
    OpKind.RESHAPE, OpKind.TRANSPOSE, OpKind.SLICE, OpKind.GATHER, OpKind.PAD, OpKind.EXPAND,
    OpKind.UPSAMPLE, OpKind.REDUCE_SUM, OpKind.REDUCE_MEAN, OpKind.AVERAGE_POOL,
    OpKind.GLOBAL_AVERAGE_POOL, OpKind.IDENTITY, OpKind.CONCAT, OpKind.ADD, OpKind.SUB,
})

#: Constants whose sign matters (replaced by |.|) and constants that only shift (-> 0).
_SCALING_CONSTS = ("weight", "scale")
_SHIFT_CONSTS = ("bias", "mean")
#: Ops whose constant operands multiply the variable one (-> |.| in ``magnitude``).
_MULTIPLICATIVE = (OpKind.MUL, OpKind.DIV, OpKind.MATMUL)


def is_linear(node: Node, variable: Sequence[bool]) -> bool:
    """Whether ``node`` is affine in its operands flagged ``variable`` (others constant)."""
    if node.op in ALWAYS_LINEAR:
        return True
    if node.op in (OpKind.MUL, OpKind.MATMUL):
        return sum(variable) <= 1
    if node.op is OpKind.DIV:
        return not variable[1]
    if node.op is OpKind.WHERE:
        return not variable[0]
    return False


def _size(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _fan(node: Node, shapes: list[tuple[int, ...]], variable: Sequence[bool]) -> int:
    """Products summed per entry of ``lam J_i`` (worst operand), plus constant roundings."""
    op, out = node.op, _size(node.shape)
    var_sizes = [_size(s) for s, v in zip(shapes, variable) if v]
    broadcast = max(1, max(-(-out // max(1, s)) for s in var_sizes))
    if op is OpKind.LINEAR:
        return int(np.asarray(node.consts["weight"]).shape[0]) + 2
    if op in (OpKind.CONV, OpKind.CONV_TRANSPOSE):
        w = np.asarray(node.consts["weight"])
        per = w.shape[0] // int(node.attrs.get("group", 1)) if op is OpKind.CONV else w.shape[1]
        return int(per * _size(w.shape[2:])) + 2
    if op is OpKind.MATMUL:
        pos = list(variable).index(True)
        x = shapes[pos]
        contracted = x[-1] if pos == 0 or len(x) == 1 else x[-2]
        return int(-(-out * contracted // max(1, _size(x)))) + 2
    if op is OpKind.BATCH_NORM:
        return 10  # one product; the factor scale / sqrt(var + eps) costs a few roundings
    if op is OpKind.AVERAGE_POOL:
        return _size(node.attrs["kernel_shape"]) + 3
    if op in (OpKind.REDUCE_MEAN, OpKind.GLOBAL_AVERAGE_POOL, OpKind.DIV):
        return broadcast + 3
    if op is OpKind.GATHER:
        idx = np.asarray(node.consts["indices"]).reshape(-1)
        repeats = int(np.unique(idx, return_counts=True)[1].max()) if idx.size else 1
        return repeats + 2
    return broadcast + 2


def _abs_node(node: Node) -> Node:
    """The op with |scaling constants|, zero shifts: its evaluator computes ``sum |J_i| M_i``."""
    consts = {}
    for key, value in node.consts.items():
        value = np.asarray(value)
        if key in _SCALING_CONSTS:
            consts[key] = np.abs(value)
        elif key in _SHIFT_CONSTS:
            consts[key] = np.zeros_like(value)
        else:
            consts[key] = value
    attrs = dict(node.attrs)
    op = node.op
    if op is OpKind.PAD:
        attrs["value"] = 0.0
    elif op is OpKind.NEG:
        op = OpKind.IDENTITY
    elif op is OpKind.SUB:
        op = OpKind.ADD
    return Node(node.name, op, node.inputs, attrs, consts, node.shape)


class LinearRule:
    """Transposed application of one linear node (see the module docstring).

    ``constants``: value of each constant operand position, float64 ``(1, *shape)`` (or an
    integer tensor for WHERE conditions).  Built once per (graph, dtype, device).
    ``direct``: use the hand-written transpose of :mod:`hybridver.bounds.linear_transposes`
    where the op has one (False: always the evaluator's vjp, for ablation and tests).
    """

    def __init__(self, node: Node, shapes: list[tuple[int, ...]], variable: Sequence[bool],
                 constants: dict[int, Tensor], dtype: torch.dtype, device: torch.device,
                 direct: bool = True):
        self.node = node
        self.var_pos = tuple(i for i, v in enumerate(variable) if v)
        self.shapes = shapes
        self.fan = _fan(node, shapes, variable)
        self._dtype, self._device = dtype, device
        fn = EVALUATORS[node.op]

        def assemble(var_values: Sequence[Tensor], const_values: dict[int, Tensor]) -> list:
            args: list = [None] * len(node.inputs)
            for pos, value in zip(self.var_pos, var_values):
                args[pos] = value
            for pos, value in const_values.items():
                args[pos] = value
            return args

        # bias f(0) in float64, shape (1, *node.shape); None when exactly zero
        zeros64 = [torch.zeros((1, *shapes[p]), dtype=torch.float64, device=device)
                   for p in self.var_pos]
        with torch.no_grad():
            bias = fn(node, assemble(zeros64, constants)).reshape(1, *node.shape)
        self.bias64: Tensor | None = bias if bool((bias != 0).any()) else None
        self.bias: Tensor | None = None if self.bias64 is None else self.bias64.to(dtype)

        # |J| forward for the rounding analysis
        abs_consts = {p: v if (not v.is_floating_point() or (node.op is OpKind.WHERE and p == 0))
                      else v.abs() if node.op in _MULTIPLICATIVE else torch.zeros_like(v)
                      for p, v in constants.items()}
        abs_node = _abs_node(node)
        abs_fn = EVALUATORS[abs_node.op]
        self._magnitude = lambda ms: abs_fn(abs_node, assemble(ms, abs_consts))

        # backward: fast paths for LINEAR and 1-D/2-D CONV, otherwise vmap of the
        # evaluator's vjp at 0
        self._conv = None
        self._direct = None
        if direct and node.op not in (OpKind.LINEAR, OpKind.CONV):
            self._direct = direct_transpose(node, shapes, self.var_pos, constants, dtype, device)
        if node.op is OpKind.CONV and int(node.attrs.get("group", 1)) == 1 \
                and np.asarray(node.consts["weight"]).ndim in (3, 4):
            self._conv = _ConvTranspose(node, shapes[0], dtype, device)
        self._signs = _elementwise_signs(node, shapes, self.var_pos)
        if node.op is OpKind.LINEAR:
            self._weight = torch.as_tensor(np.asarray(node.consts["weight"]), dtype=dtype,
                                           device=device)
            self._weight64 = torch.as_tensor(np.asarray(node.consts["weight"]),
                                             dtype=torch.float64, device=device)
            self._abs_weight64 = self._weight64.abs()
            self._vjp = None
        else:
            work_consts = {p: v.to(dtype) if v.is_floating_point() else v
                           for p, v in constants.items()}
            primals = [torch.zeros((1, *shapes[p]), dtype=dtype, device=device)
                       for p in self.var_pos]

            def f(*xs: Tensor) -> Tensor:
                return fn(node, assemble(xs, work_consts)).reshape(1, *node.shape)

            _, vjp_fn = vjp(f, *primals)
            self._vjp = vmap(vjp_fn)

    def backward(self, lam: Tensor) -> list[Tensor]:
        """``lam J_i`` for each variable operand: ``(m, N, *node.shape) -> (m, N, *shape_i)``."""
        m, n = lam.shape[:2]
        if self._conv is not None:
            return [self._conv(lam).reshape(m, n, *self.shapes[0])]
        if self._signs is not None:  # exact: the vjp's values, without functorch
            return [(lam if sign > 0 else -lam).reshape(m, n, *self.shapes[p])
                    for sign, p in zip(self._signs, self.var_pos)]
        if self._direct is not None:
            grads = self._direct(lam.reshape(m * n, *self.node.shape))
            return [g.reshape(m, n, *self.shapes[p]) for g, p in zip(grads, self.var_pos)]
        if self._vjp is None:
            out = torch.matmul(lam.reshape(-1, lam.shape[-1]), self._weight)
            return [out.reshape(*lam.shape[:-1], out.shape[-1])]
        grads = self._vjp(lam.reshape(m * n, 1, *self.node.shape))
        return [g.reshape(m, n, *self.shapes[p]) for g, p in zip(grads, self.var_pos)]

    def apply64(self, x: Tensor) -> Tensor:
        """LINEAR only: ``J x = x W^T`` in float64 for ``x: (N, *input shape)`` float64."""
        return torch.matmul(x, self._weight64.T)

    def magnitude(self, mags: list[Tensor]) -> Tensor:
        """``sum_i |J_i| M_i`` (float64) for magnitudes ``M_i >= 0`` of the variable operands."""
        if self._vjp is None:
            return torch.matmul(mags[0], self._abs_weight64.T)
        out = self._magnitude(mags)
        return out.expand(max(m.shape[0] for m in mags), *self.node.shape)


def _elementwise_signs(node: Node, shapes: list[tuple[int, ...]], var_pos: tuple[int, ...]
                       ) -> tuple[float, ...] | None:
    """Per variable operand, the sign ``s`` with ``lam J = s * lam`` (reshaped) when the
    node is a reshape, identity or negation, or an addition/subtraction whose variable
    operands have the node's shape (any constant is only added); else None.  These are
    the vjp's exact values, and skip ``torch.func`` (whose first use imports seconds of
    modules)."""
    op = node.op
    if op in (OpKind.RESHAPE, OpKind.IDENTITY, OpKind.NEG) and len(var_pos) == 1:
        return (-1.0 if op is OpKind.NEG else 1.0,)
    if op in (OpKind.ADD, OpKind.SUB) and len(node.inputs) == 2 and all(
            tuple(shapes[p]) == tuple(node.shape) for p in var_pos):
        return tuple(-1.0 if op is OpKind.SUB and p == 1 else 1.0 for p in var_pos)
    return None


class _ConvTranspose:
    """Transpose of a 1-D/2-D convolution with one group, as im2col: a matmul of the
    coefficients with the flattened kernel, then ``fold`` (which sums overlapping windows)
    and a crop of the padding.  Much faster on CPU than ``conv_transpose`` for the large
    kernels of patch embeddings."""

    def __init__(self, node: Node, in_shape: tuple[int, ...], dtype: torch.dtype,
                 device: torch.device):
        w = np.asarray(node.consts["weight"], dtype=np.float64)
        spatial = w.ndim - 2
        pads = tuple(node.attrs.get("pads", (0,) * 2 * spatial))
        strides = tuple(node.attrs.get("strides", (1,) * spatial))
        dilations = tuple(node.attrs.get("dilations", (1,) * spatial))
        if spatial == 1:  # as 2-D with height 1
            w = w[:, :, None, :]
            pads = (0, pads[0], 0, pads[1])
            strides, dilations = (1, *strides), (1, *dilations)
        self.c_out, self.c_in, *self.kernel = w.shape
        self.weight = torch.as_tensor(w.reshape(self.c_out, -1), dtype=dtype, device=device)
        self.begin, self.end = pads[:2], pads[2:]
        self.strides, self.dilations = strides, dilations
        self.in_spatial = tuple(in_shape[-spatial:]) if spatial == 2 else (1, in_shape[-1])
        self.out_spatial = tuple(node.shape[-spatial:]) if spatial == 2 else (1, node.shape[-1])

    def __call__(self, lam: Tensor) -> Tensor:
        """``lam: (..., C_out, *out_spatial) -> (B, C_in * prod(in_spatial))``."""
        lam = lam.reshape(-1, self.c_out, int(np.prod(self.out_spatial)))
        b = lam.shape[0]
        cols = torch.matmul(lam.transpose(1, 2), self.weight)
        reached = tuple((o - 1) * s + d * (k - 1) + 1 for o, s, d, k in zip(
            self.out_spatial, self.strides, self.dilations, self.kernel))
        out = torch.nn.functional.fold(cols.transpose(1, 2), reached, tuple(self.kernel),
                                       dilation=self.dilations, stride=self.strides)
        padded = tuple(i + bg + en for i, bg, en in zip(self.in_spatial, self.begin, self.end))
        out = torch.nn.functional.pad(out, (0, padded[1] - reached[1], 0, padded[0] - reached[0]))
        out = out[:, :, self.begin[0]:self.begin[0] + self.in_spatial[0],
                  self.begin[1]:self.begin[1] + self.in_spatial[1]]
        return out.reshape(b, -1)


def broadcast_operand(t: Tensor, shape: Sequence[int]) -> Tensor:
    """``t: (N, *s)`` aligned (numpy rule) and expanded to ``(N, *shape)``."""
    return _align(t, len(shape)).expand(t.shape[0], *shape)
