"""Affine fusions: MATMUL by a constant into LINEAR, biases and elementwise affine ops into
LINEAR, LINEAR into LINEAR, inference BatchNorm into the CONV / LINEAR before it.

Fusions never cross a nonlinearity and never absorb a node that has several consumers or
is a graph output (its value must stay observable).  Each pass runs to a fixed point.
"""

from __future__ import annotations

import numpy as np

from hybridver.ir.graph import NetworkGraph, Node
from hybridver.ir.ops import OpKind
from hybridver.ir.rewrite import (AFFINE_ELEMENTWISE, Rewriter, fixpoint, linear_parts,
                                  row_vector, split_const_operand, with_linear)

__all__ = ["fuse_linear_bias", "fold_batch_norm", "merge_linear"]


# ---------------------------------------------------------------------------- linear fusions
def _matmul_to_linear(rw: Rewriter, node: Node) -> bool:
    """MATMUL(variable x, CONSTANT W (in, out)) -> LINEAR(weight W.T)."""
    if node.op is not OpKind.MATMUL:
        return False
    x, w_name = node.inputs
    w = rw.const(w_name)
    if w is None or w.ndim != 2 or rw.const(x) is not None:
        return False
    x_shape = rw.node(x).shape
    if not x_shape or x_shape[-1] != w.shape[0] or node.shape != (*x_shape[:-1], w.shape[1]):
        return False
    rw.set(Node(node.name, OpKind.LINEAR, (x,), {}, {"weight": np.ascontiguousarray(w.T)},
                node.shape))
    return True


def _absorb_after_linear(rw: Rewriter, node: Node, ops: tuple[OpKind, ...]) -> bool:
    """LINEAR followed by ADD/SUB/MUL/DIV of a constant row vector (or NEG) -> LINEAR."""
    if node.op not in ops:
        return False
    if node.op is OpKind.NEG:
        lin_name, v, slot = node.inputs[0], None, 1
    else:
        split = split_const_operand(rw, node)
        if split is None:
            return False
        lin_name, c, slot = split
        lin_shape = rw.node(lin_name).shape
        if node.shape != lin_shape:
            return False
        v = row_vector(c, lin_shape)
        if v is None:
            return False
    lin = rw.node(lin_name)
    if lin.op is not OpKind.LINEAR or not rw.absorbable(lin_name):
        return False
    w, b = linear_parts(lin)
    if node.op is OpKind.NEG:
        w, b = -w, -b
    elif node.op is OpKind.ADD:
        b = b + v
    elif node.op is OpKind.SUB:
        w, b = (w, b - v) if slot == 1 else (-w, v - b)
    elif node.op is OpKind.MUL:
        w, b = w * v[:, None], b * v
    elif node.op is OpKind.DIV:
        if slot == 0 or np.any(v == 0):
            return False
        w, b = w / v[:, None], b / v
    rw.set(with_linear(lin, node.name, lin.inputs, w, b, node.shape))
    return True


def fuse_linear_bias(g: NetworkGraph) -> NetworkGraph:
    """MATMUL(x, CONSTANT 2-D W) -> LINEAR(W.T); LINEAR then ADD/SUB constant -> one LINEAR.

    The constant must be the same on every row of the LINEAR's output (a vector over the
    last axis: shapes (n,), (1, n), (1, 1, n), a scalar...).  The LINEAR must have that
    ADD/SUB as its only consumer and must not be a graph output.
    """
    def sweep(g: NetworkGraph) -> NetworkGraph:
        rw = Rewriter(g)
        for name in rw.order:
            node = rw.node(name)
            if not _matmul_to_linear(rw, node):
                _absorb_after_linear(rw, node, (OpKind.ADD, OpKind.SUB))
        return rw.graph()
    return fixpoint(sweep, g)


# ---------------------------------------------------------------------------- batch norm
def _bn_affine(bn: Node) -> tuple[np.ndarray, np.ndarray]:
    scale = np.asarray(bn.consts["scale"], dtype=np.float64)
    factor = scale / np.sqrt(np.asarray(bn.consts["var"], dtype=np.float64)
                             + float(bn.attrs["epsilon"]))
    shift = np.asarray(bn.consts["bias"], dtype=np.float64) - np.asarray(
        bn.consts["mean"], dtype=np.float64) * factor
    return factor, shift


def _fold_bn_into_producer(rw: Rewriter, bn: Node, factor: np.ndarray,
                           shift: np.ndarray) -> bool:
    src = bn.inputs[0]
    p = rw.node(src)
    if not rw.absorbable(src) or p.shape != bn.shape or len(bn.shape) < 2:
        return False
    channels = bn.shape[1]
    if factor.shape != (channels,):
        return False
    if p.op is OpKind.LINEAR:
        if len(p.shape) != 2:  # axis 1 must be the LINEAR's (last) feature axis
            return False
        w, b = linear_parts(p)
        rw.set(with_linear(p, bn.name, p.inputs, w * factor[:, None], b * factor + shift,
                           bn.shape))
        return True
    if p.op not in (OpKind.CONV, OpKind.CONV_TRANSPOSE):
        return False
    w = np.asarray(p.consts["weight"], dtype=np.float64)
    spatial = w.ndim - 2
    if len(p.shape) - spatial - 1 != 1:  # the channel axis must be axis 1
        return False
    b = p.consts.get("bias")
    b = np.zeros(channels) if b is None else np.asarray(b, dtype=np.float64)
    if p.op is OpKind.CONV:
        if w.shape[0] != channels:
            return False
        w = w * factor.reshape(-1, *([1] * (spatial + 1)))
    else:
        group = int(p.attrs.get("group", 1))
        c_in, per_group = w.shape[0], w.shape[1]
        if per_group * group != channels or c_in % group:
            return False
        w = (w.reshape(group, c_in // group, per_group, *w.shape[2:])
             * factor.reshape(group, 1, per_group, *([1] * spatial))).reshape(w.shape)
    consts = {"weight": np.ascontiguousarray(w), "bias": b * factor + shift}
    rw.set(Node(bn.name, p.op, p.inputs, dict(p.attrs), consts, bn.shape))
    return True


def fold_batch_norm(g: NetworkGraph) -> NetworkGraph:
    """Fold inference BATCH_NORM into the CONV / CONV_TRANSPOSE / LINEAR before it.

    The producer must have the BATCH_NORM as its only consumer, not be a graph output, and
    have its channels on axis 1 (for LINEAR: a rank-2 shape ``(1, features)``).  A
    BATCH_NORM that cannot be folded becomes MUL + ADD with per-channel CONSTANTs of shape
    ``(C, 1, ..., 1)`` (the ADD keeps the BATCH_NORM's name).
    """
    def sweep(g: NetworkGraph) -> NetworkGraph:
        rw = Rewriter(g)
        for name in rw.order:
            bn = rw.node(name)
            if bn.op is not OpKind.BATCH_NORM:
                continue
            factor, shift = _bn_affine(bn)
            if _fold_bn_into_producer(rw, bn, factor, shift):
                continue
            rank = len(bn.shape)
            if rank < 2 or bn.shape[1] != factor.shape[0]:
                continue
            trailing = (1,) * (rank - 2)
            scale = rw.new_const(f"{name}_scale_value", factor.reshape(-1, *trailing))
            offset = rw.new_const(f"{name}_shift_value", shift.reshape(-1, *trailing))
            mul = rw.emit(OpKind.MUL, (bn.inputs[0], scale), bn.shape, f"{name}_scale")
            rw.set(Node(name, OpKind.ADD, (mul, offset), shape=bn.shape))
        return rw.graph()
    return fixpoint(sweep, g)


# ---------------------------------------------------------------------------- merge_linear
def _merge_before_linear(rw: Rewriter, lin: Node, max_growth: float) -> Node | None:
    """One fusion into ``lin`` from its operand side, or None."""
    src = lin.inputs[0]
    p = rw.node(src)
    if not rw.absorbable(src):
        return None
    w2, b2 = linear_parts(lin)
    if p.op is OpKind.LINEAR:
        w1, b1 = linear_parts(p)
        if w2.shape[0] * w1.shape[1] > max(max_growth * (w1.size + w2.size), 1_000_000):
            return None  # a bottleneck: the product would be much larger than both
        return with_linear(lin, lin.name, p.inputs, w2 @ w1, w2 @ b1 + b2, lin.shape)
    # an elementwise affine op on a constant, possibly behind a RESHAPE
    reshape = None
    q = p
    if p.op is OpKind.RESHAPE:
        q_name = p.inputs[0]
        if not rw.absorbable(q_name):
            return None
        reshape, q = p, rw.node(q_name)
    if q.op is OpKind.NEG:
        x, c, slot = q.inputs[0], None, 0
    elif q.op in AFFINE_ELEMENTWISE:
        split = split_const_operand(rw, q)
        if split is None:
            return None
        x, c, slot = split
    else:
        return None
    x_node = rw.node(x)
    if x_node.shape != q.shape:  # the constant must not broadcast the variable
        return None
    in_shape = rw.node(src).shape
    if c is None:
        v = -np.ones(in_shape[-1])
        q_op = OpKind.MUL
    else:
        full = np.broadcast_to(c, q.shape) if np.broadcast_shapes(c.shape, q.shape) == \
            tuple(q.shape) else None
        if full is None:
            return None
        v = row_vector(np.asarray(full).reshape(in_shape), in_shape)
        if v is None:
            return None
        q_op = q.op
    if q_op is OpKind.ADD:
        b2 = b2 + w2 @ v
    elif q_op is OpKind.SUB:
        w2, b2 = (w2, b2 - w2 @ v) if slot == 1 else (-w2, b2 + w2 @ v)
    elif q_op is OpKind.MUL:
        w2 = w2 * v[None, :]
    elif q_op is OpKind.DIV:
        if slot == 0 or np.any(v == 0):
            return None
        w2 = w2 / v[None, :]
    new_src = x
    if reshape is not None:
        rw.set(reshape.replace(inputs=(x,)))
        new_src = reshape.name
    return with_linear(lin, lin.name, (new_src,), w2, b2, lin.shape)


def merge_linear(g: NetworkGraph, max_growth: float = 4.0) -> NetworkGraph:
    """Merge affine maps into LINEAR nodes.

    * LINEAR -> LINEAR: one LINEAR (W2 W1, W2 b1 + b2), unless the product is more than
      ``max_growth`` times larger than both factors together (and over 1e6 entries);
    * ADD / SUB / MUL / DIV by a CONSTANT (or NEG) on the variable feeding a LINEAR,
      optionally through one RESHAPE (e.g. ACAS Xu's ``Sub(mean) -> Div(range) -> Flatten
      -> MatMul``), when the constant is the same on every row of the LINEAR's input;
    * a LINEAR followed by ADD / SUB / MUL / DIV by such a constant row (or NEG).

    Every absorbed node must have a single consumer and not be a graph output; nothing is
    merged across a nonlinearity, a constant operand in the divisor's place, or a zero
    divisor.
    """
    def sweep(g: NetworkGraph) -> NetworkGraph:
        rw = Rewriter(g)
        for name in rw.order:
            node = rw.node(name)
            if node.op is OpKind.LINEAR:
                while True:
                    merged = _merge_before_linear(rw, node, max_growth)
                    if merged is None:
                        break
                    # use counts are unchanged: the absorbed node's operands are now read
                    # by the merged node instead
                    rw.set(merged)
                    node = merged
            else:
                _absorb_after_linear(rw, node, (*AFFINE_ELEMENTWISE, OpKind.NEG))
        return rw.graph()
    return fixpoint(sweep, g)
