"""The machinery the simplification passes share: fixed points, use counts, a rewriter
holding the current version of every node during one sweep, and helpers for LINEAR nodes
and constant operands.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np

from hybridver.ir.builder import GraphBuilder
from hybridver.ir.graph import NetworkGraph, Node
from hybridver.ir.ops import OpKind

__all__ = ["Pass", "AFFINE_ELEMENTWISE", "signature", "fixpoint", "uses", "Rewriter",
           "row_vector", "linear_parts", "with_linear", "split_const_operand"]

Pass = Callable[[NetworkGraph], NetworkGraph]

AFFINE_ELEMENTWISE = (OpKind.ADD, OpKind.SUB, OpKind.MUL, OpKind.DIV)


def signature(g: NetworkGraph) -> tuple:
    return tuple((n.name, n.op, n.inputs) for n in g.nodes())


def fixpoint(sweep: Pass, g: NetworkGraph, max_rounds: int = 1000) -> NetworkGraph:
    sig = signature(g)
    for _ in range(max_rounds):
        g = sweep(g)
        new = signature(g)
        if new == sig:
            break
        sig = new
    return g


def uses(nodes: Iterable[Node]) -> Counter:
    """How many operand slots read each tensor (a node reading x twice counts twice)."""
    count: Counter = Counter()
    for n in nodes:
        count.update(n.inputs)
    return count


class Rewriter:
    """Current versions of a graph's nodes during one sweep; new nodes (constants, helpers)
    go to a :class:`GraphBuilder` and are placed first (constants) or last (helpers)."""

    def __init__(self, g: NetworkGraph):
        self.g = g
        self.order = list(g.topological_order)
        self.cur: dict[str, Node] = {n.name: n for n in g.nodes()}
        self.uses = uses(self.cur.values())
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


def row_vector(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
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


def linear_parts(node: Node) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(node.consts["weight"], dtype=np.float64)
    b = node.consts.get("bias")
    b = np.zeros(w.shape[0]) if b is None else np.asarray(b, dtype=np.float64)
    return w, b


def with_linear(node: Node, name: str, inputs: tuple[str, ...], w: np.ndarray, b: np.ndarray,
                shape: tuple[int, ...]) -> Node:
    return Node(name, OpKind.LINEAR, inputs, {}, {"weight": np.ascontiguousarray(w),
                                                  "bias": np.ascontiguousarray(b)}, shape)


def split_const_operand(rw: Rewriter, node: Node) -> tuple[str, np.ndarray, int] | None:
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
