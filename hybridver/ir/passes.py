"""Graph simplification passes.

Every pass is a free function ``NetworkGraph -> NetworkGraph`` that preserves the graph's
evaluation up to floating-point rounding, keeps the input names and the output names, and
builds new nodes and a new graph (graphs are immutable).  Each pass runs its own rewrite to
a fixed point; :func:`simplify` chains them until nothing changes and validates shapes.

Fusions never cross a nonlinearity and never absorb a node that has several consumers or
is a graph output (its value must stay observable).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np
import torch

from hybridver.ir.builder import GraphBuilder
from hybridver.ir.evaluate import EVALUATORS
from hybridver.ir.graph import NetworkGraph, Node
from hybridver.ir.ops import OpKind

__all__ = ["fold_constants", "drop_identities", "fuse_linear_bias", "fold_batch_norm",
           "merge_linear", "simplify"]

Pass = Callable[[NetworkGraph], NetworkGraph]

_AFFINE_ELEMENTWISE = (OpKind.ADD, OpKind.SUB, OpKind.MUL, OpKind.DIV)


# ---------------------------------------------------------------------------- helpers
def _signature(g: NetworkGraph) -> tuple:
    return tuple((n.name, n.op, n.inputs) for n in g.nodes())


def _fixpoint(sweep: Pass, g: NetworkGraph, max_rounds: int = 1000) -> NetworkGraph:
    sig = _signature(g)
    for _ in range(max_rounds):
        g = sweep(g)
        new = _signature(g)
        if new == sig:
            break
        sig = new
    return g


def _uses(nodes: Iterable[Node]) -> Counter:
    """How many operand slots read each tensor (a node reading x twice counts twice)."""
    count: Counter = Counter()
    for n in nodes:
        count.update(n.inputs)
    return count


class _Rewriter:
    """Current versions of a graph's nodes during one sweep; new nodes (constants, helpers)
    go to a :class:`GraphBuilder` and are placed first (constants) or last (helpers)."""

    def __init__(self, g: NetworkGraph):
        self.g = g
        self.order = list(g.topological_order)
        self.cur: dict[str, Node] = {n.name: n for n in g.nodes()}
        self.uses = _uses(self.cur.values())
        self.outputs = set(g.outputs)
        self.extra = GraphBuilder(taken=self.cur)
        self.changed = False

    def node(self, name: str) -> Node:
        return self.cur[name]

    def absorbable(self, name: str) -> bool:
        """``name`` may disappear into its only consumer."""
        return self.uses[name] == 1 and name not in self.outputs and name not in self.g.inputs

    def const(self, name: str) -> np.ndarray | None:
        node = self.cur.get(name)
        if node is None or node.op is not OpKind.CONSTANT:
            return None
        value = np.asarray(node.consts["value"])
        return value.astype(np.float64) if value.dtype.kind in "biuf" else None

    def new_const(self, base: str, value: np.ndarray) -> str:
        return self.extra.constant(np.asarray(value, dtype=np.float64), base=base)

    def emit(self, op: OpKind, inputs: tuple[str, ...], shape: tuple[int, ...], base: str
             ) -> str:
        """A brand-new (non-constant) node; it must only read nodes that precede it."""
        name = self.extra.emit(op, inputs, shape, base=base)
        self.changed = True
        return name

    def set(self, node: Node) -> None:
        self.cur[node.name] = node
        self.changed = True

    def graph(self) -> NetworkGraph:
        if not self.changed:
            return self.g
        extra = self.extra.nodes()
        nodes = [n for n in extra if n.op is OpKind.CONSTANT]
        nodes += [self.cur[name] for name in self.order]
        nodes += [n for n in extra if n.op is not OpKind.CONSTANT]
        return self.g.with_nodes(nodes, check_shapes=False)


def _row_vector(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``value`` broadcast to ``shape`` as one vector over the last axis, if it is one.

    Returns ``v`` (``shape[-1]``,) such that ``broadcast(value, shape) == v`` on every row,
    or None when the constant varies along another axis or does not broadcast to ``shape``.
    """
    if not shape:
        return None
    try:
        full = np.broadcast_to(value, shape)
    except ValueError:
        return None
    if np.broadcast_shapes(value.shape, shape) != tuple(shape):
        return None
    rows = full.reshape(-1, shape[-1])
    if rows.shape[0] and not np.array_equal(rows, np.broadcast_to(rows[:1], rows.shape)):
        return None
    return np.array(rows[0] if rows.shape[0] else np.zeros(shape[-1]), dtype=np.float64)


def _linear_parts(node: Node) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(node.consts["weight"], dtype=np.float64)
    b = node.consts.get("bias")
    b = np.zeros(w.shape[0]) if b is None else np.asarray(b, dtype=np.float64)
    return w, b


def _with_linear(node: Node, name: str, inputs: tuple[str, ...], w: np.ndarray, b: np.ndarray,
                 shape: tuple[int, ...]) -> Node:
    return Node(name, OpKind.LINEAR, inputs, {}, {"weight": np.ascontiguousarray(w),
                                                  "bias": np.ascontiguousarray(b)}, shape)


def _split_const_operand(rw: _Rewriter, node: Node) -> tuple[str, np.ndarray, int] | None:
    """For a binary node with exactly one CONSTANT operand: (variable, constant, its slot)."""
    if len(node.inputs) != 2:
        return None
    a, b = node.inputs
    ca, cb = rw.const(a), rw.const(b)
    if ca is None and cb is not None:
        return a, cb, 1
    if cb is None and ca is not None:
        return b, ca, 0
    return None


# ---------------------------------------------------------------------------- fold_constants
def fold_constants(g: NetworkGraph) -> NetworkGraph:
    """Every non-INPUT node whose operands are all CONSTANT becomes a CONSTANT."""
    values: dict[str, torch.Tensor] = {}
    nodes: list[Node] = []
    changed = False
    for node in g.nodes():
        if node.op is OpKind.CONSTANT:
            value = np.asarray(node.consts["value"])
            t = torch.as_tensor(value)
            values[node.name] = (t.to(torch.float64) if value.dtype.kind == "f" else t
                                 ).reshape(1, *value.shape)
            nodes.append(node)
        elif node.op is not OpKind.INPUT and node.inputs and all(
                i in values for i in node.inputs):
            with torch.no_grad():
                out = EVALUATORS[node.op](node, [values[i] for i in node.inputs])
            out = out.reshape(1, *node.shape)
            values[node.name] = out
            value = out[0].cpu().numpy().copy()
            nodes.append(Node(node.name, OpKind.CONSTANT, consts={"value": value},
                              shape=node.shape))
            changed = True
        else:
            nodes.append(node)
    return g.with_nodes(nodes, check_shapes=False) if changed else g


# ---------------------------------------------------------------------------- drop_identities
def _is_identity(node: Node, src_shape: tuple[int, ...]) -> bool:
    if node.op is OpKind.IDENTITY:
        return True
    if node.op in (OpKind.RESHAPE, OpKind.EXPAND):
        return node.shape == src_shape
    if node.op is OpKind.TRANSPOSE:
        return tuple(node.attrs["perm"]) == tuple(range(len(node.shape)))
    if node.op is OpKind.CONCAT:
        return len(node.inputs) == 1
    if node.op is OpKind.PAD:
        return all(int(p) == 0 for p in node.attrs["pads"])
    if node.op is OpKind.SLICE:
        return node.shape == src_shape and all(int(s) == 1 for s in node.attrs["steps"])
    return False


def drop_identities(g: NetworkGraph) -> NetworkGraph:
    """Remove nodes that return their operand unchanged and collapse RESHAPE chains.

    Identities: IDENTITY, RESHAPE/EXPAND to the operand's shape, TRANSPOSE by the identity
    permutation, single-operand CONCAT, PAD by zeros, full SLICE.  A RESHAPE of a RESHAPE
    reads the inner operand directly.  Output names are kept: an identity that is a graph
    output gives its name to its operand when that is possible (the operand is neither a
    graph input nor another output), otherwise it stays.
    """
    alias: dict[str, str] = {}
    outputs = set(g.outputs)

    def resolve(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    kept: dict[str, Node] = {}
    out_identities: list[str] = []
    for node in g.nodes():
        if any(i in alias for i in node.inputs):
            node = node.replace(inputs=tuple(resolve(i) for i in node.inputs))
        if node.op is OpKind.RESHAPE and kept[node.inputs[0]].op is OpKind.RESHAPE:
            node = node.replace(inputs=kept[node.inputs[0]].inputs)
        if node.inputs and _is_identity(node, kept[node.inputs[0]].shape):
            if node.name not in outputs:
                alias[node.name] = node.inputs[0]
                continue
            out_identities.append(node.name)
        kept[node.name] = node
    rename: dict[str, str] = {}
    for name in out_identities:
        src = kept[name].inputs[0]
        if src in g.inputs or src in outputs or src in rename:
            continue
        rename[src] = name
        del kept[name]
    if rename:
        kept = {rename.get(k, k): n.replace(name=rename.get(n.name, n.name),
                                            inputs=tuple(rename.get(i, i) for i in n.inputs))
                for k, n in kept.items()}
    nodes = list(kept.values())
    if not alias and not rename and len(nodes) == len(g) and all(
            n.inputs == g.node(n.name).inputs for n in nodes):
        return g
    return g.with_nodes(nodes, check_shapes=False)


# ---------------------------------------------------------------------------- linear fusions
def _matmul_to_linear(rw: _Rewriter, node: Node) -> bool:
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


def _absorb_after_linear(rw: _Rewriter, node: Node, ops: tuple[OpKind, ...]) -> bool:
    """LINEAR followed by ADD/SUB/MUL/DIV of a constant row vector (or NEG) -> LINEAR."""
    if node.op not in ops:
        return False
    if node.op is OpKind.NEG:
        lin_name, v, slot = node.inputs[0], None, 1
    else:
        split = _split_const_operand(rw, node)
        if split is None:
            return False
        lin_name, c, slot = split
        lin_shape = rw.node(lin_name).shape
        if node.shape != lin_shape:
            return False
        v = _row_vector(c, lin_shape)
        if v is None:
            return False
    lin = rw.node(lin_name)
    if lin.op is not OpKind.LINEAR or not rw.absorbable(lin_name):
        return False
    w, b = _linear_parts(lin)
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
    rw.set(_with_linear(lin, node.name, lin.inputs, w, b, node.shape))
    return True


def fuse_linear_bias(g: NetworkGraph) -> NetworkGraph:
    """MATMUL(x, CONSTANT 2-D W) -> LINEAR(W.T); LINEAR then ADD/SUB constant -> one LINEAR.

    The constant must be the same on every row of the LINEAR's output (a vector over the
    last axis: shapes (n,), (1, n), (1, 1, n), a scalar...).  The LINEAR must have that
    ADD/SUB as its only consumer and must not be a graph output.
    """
    def sweep(g: NetworkGraph) -> NetworkGraph:
        rw = _Rewriter(g)
        for name in rw.order:
            node = rw.node(name)
            if not _matmul_to_linear(rw, node):
                _absorb_after_linear(rw, node, (OpKind.ADD, OpKind.SUB))
        return rw.graph()
    return _fixpoint(sweep, g)


# ---------------------------------------------------------------------------- batch norm
def _bn_affine(bn: Node) -> tuple[np.ndarray, np.ndarray]:
    scale = np.asarray(bn.consts["scale"], dtype=np.float64)
    factor = scale / np.sqrt(np.asarray(bn.consts["var"], dtype=np.float64)
                             + float(bn.attrs["epsilon"]))
    shift = np.asarray(bn.consts["bias"], dtype=np.float64) - np.asarray(
        bn.consts["mean"], dtype=np.float64) * factor
    return factor, shift


def _fold_bn_into_producer(rw: _Rewriter, bn: Node, factor: np.ndarray,
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
        w, b = _linear_parts(p)
        rw.set(_with_linear(p, bn.name, p.inputs, w * factor[:, None], b * factor + shift,
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
        rw = _Rewriter(g)
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
    return _fixpoint(sweep, g)


# ---------------------------------------------------------------------------- merge_linear
def _merge_before_linear(rw: _Rewriter, lin: Node, max_growth: float) -> Node | None:
    """One fusion into ``lin`` from its operand side, or None."""
    src = lin.inputs[0]
    p = rw.node(src)
    if not rw.absorbable(src):
        return None
    w2, b2 = _linear_parts(lin)
    if p.op is OpKind.LINEAR:
        w1, b1 = _linear_parts(p)
        if w2.shape[0] * w1.shape[1] > max(max_growth * (w1.size + w2.size), 1_000_000):
            return None  # a bottleneck: the product would be much larger than both
        return _with_linear(lin, lin.name, p.inputs, w2 @ w1, w2 @ b1 + b2, lin.shape)
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
    elif q.op in _AFFINE_ELEMENTWISE:
        split = _split_const_operand(rw, q)
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
        v = _row_vector(np.asarray(full).reshape(in_shape), in_shape)
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
    return _with_linear(lin, lin.name, (new_src,), w2, b2, lin.shape)


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
        rw = _Rewriter(g)
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
                _absorb_after_linear(rw, node, (*_AFFINE_ELEMENTWISE, OpKind.NEG))
        return rw.graph()
    return _fixpoint(sweep, g)


# ---------------------------------------------------------------------------- simplify
DEFAULT_PASSES: tuple[Pass, ...] = (fold_constants, drop_identities, fuse_linear_bias,
                                    fold_batch_norm, merge_linear)


def simplify(g: NetworkGraph, passes: Iterable[Pass] = DEFAULT_PASSES,
             max_rounds: int = 100) -> NetworkGraph:
    """Run ``passes`` in order, repeatedly, until the graph stops changing.

    Returns a graph validated with ``check_shapes=True``.
    """
    passes = tuple(passes)
    sig = _signature(g)
    for _ in range(max_rounds):
        for p in passes:
            g = p(g)
        new = _signature(g)
        if new == sig:
            break
        sig = new
    return NetworkGraph(g.nodes(), g.inputs, g.outputs, name=g.name, check_shapes=True)
