"""NetworkGraph: the IR every other layer reads.

A thin, validated wrapper around a :class:`networkx.DiGraph`.  Each node carries one
:class:`~hybridver.ir.node.Node` (op kind, ordered inputs, attributes, constant tensors,
per-sample output shape).  Edges point from producer to consumer and carry the operand
position ``index``.  Graphs are treated as immutable: passes build new graphs.  Shapes are
validated by evaluating one zero sample with :mod:`hybridver.ir.evaluate`, which works on
nodes and does not import this module.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import networkx as nx
import numpy as np

from hybridver.errors import ModelLoadError
from hybridver.ir.evaluate import evaluate_all
from hybridver.ir.node import GraphValidationError, Node
from hybridver.ir.ops import ARITY, DEFAULT_ARITY, REQUIRED_ATTRS, REQUIRED_CONSTS, OpKind

__all__ = ["GraphValidationError", "Node", "NetworkGraph"]


class NetworkGraph:
    """A validated DAG of :class:`Node` with named, ordered inputs and outputs."""

    def __init__(self, nodes: Iterable[Node], inputs: Iterable[str], outputs: Iterable[str],
                 name: str = "network", check_shapes: bool = True):
        self.name = name
        self.inputs: tuple[str, ...] = tuple(inputs)
        self.outputs: tuple[str, ...] = tuple(outputs)
        self._nodes: dict[str, Node] = {}
        self.nx = nx.DiGraph()
        for node in nodes:
            if node.name in self._nodes:
                raise GraphValidationError(f"duplicate node name '{node.name}'")
            self._nodes[node.name] = node
            self.nx.add_node(node.name, node=node)
        for node in self._nodes.values():
            for index, src in enumerate(node.inputs):
                if src not in self._nodes:
                    raise GraphValidationError(
                        f"node '{node.name}' ({node.op.value}) reads undefined tensor '{src}'")
                if self.nx.has_edge(src, node.name):
                    self.nx.edges[src, node.name]["indices"].append(index)
                else:
                    self.nx.add_edge(src, node.name, indices=[index])
        self._validate_structure()
        self._order: tuple[str, ...] = tuple(nx.lexicographical_topological_sort(self.nx))
        if check_shapes:
            self._validate_shapes()

    # ------------------------------------------------------------------ validation
    def _validate_structure(self) -> None:
        if not self.inputs:
            raise GraphValidationError("graph has no inputs")
        if not self.outputs:
            raise GraphValidationError("graph has no outputs")
        for name in self.inputs:
            if name not in self._nodes or self._nodes[name].op is not OpKind.INPUT:
                raise GraphValidationError(f"graph input '{name}' is not an INPUT node")
        for node in self._nodes.values():
            if node.op is OpKind.INPUT and node.name not in self.inputs:
                raise GraphValidationError(f"INPUT node '{node.name}' is not a graph input")
        for name in self.outputs:
            if name not in self._nodes:
                raise GraphValidationError(f"graph output '{name}' is not a node")
        if not nx.is_directed_acyclic_graph(self.nx):
            cycle = nx.find_cycle(self.nx)
            raise GraphValidationError(f"graph has a cycle through {cycle[0][0]!r}")
        for node in self._nodes.values():
            lo, hi = ARITY.get(node.op, DEFAULT_ARITY)
            n = len(node.inputs)
            if n < lo or (hi is not None and n > hi):
                raise GraphValidationError(
                    f"node '{node.name}' ({node.op.value}) has {n} inputs, expected "
                    f"{lo}{'' if hi == lo else '..' + (str(hi) if hi is not None else '')}")
            for key in REQUIRED_CONSTS.get(node.op, ()):
                if key not in node.consts:
                    raise GraphValidationError(
                        f"node '{node.name}' ({node.op.value}) lacks constant '{key}'")
            for key in REQUIRED_ATTRS.get(node.op, ()):
                if key not in node.attrs:
                    raise GraphValidationError(
                        f"node '{node.name}' ({node.op.value}) lacks attribute '{key}'")

    def _validate_shapes(self) -> None:
        """Evaluate one zero sample and compare every node's result with its shape."""
        zeros = {name: np.zeros((1, *self._nodes[name].shape)) for name in self.inputs}
        try:
            values = evaluate_all(self, zeros)
        except GraphValidationError:
            raise
        except Exception as exc:  # an op given operands it cannot combine
            raise GraphValidationError(f"graph does not evaluate: {exc}") from exc
        for name, value in values.items():
            declared = self._nodes[name].shape
            if tuple(value.shape[1:]) != declared:
                raise GraphValidationError(
                    f"node '{name}' ({self._nodes[name].op.value}) declares shape {declared} "
                    f"but evaluates to {tuple(value.shape[1:])}")

    # ------------------------------------------------------------------ queries
    def node(self, name: str) -> Node:
        return self._nodes[name]

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    @property
    def topological_order(self) -> tuple[str, ...]:
        """Node names, every producer before its consumers (deterministic)."""
        return self._order

    def nodes(self) -> list[Node]:
        """All nodes in topological order."""
        return [self._nodes[n] for n in self._order]

    def successors(self, name: str) -> list[str]:
        return sorted(self.nx.successors(name), key=self._order.index)

    @property
    def input_node(self) -> Node:
        """The single input; an error for multi-input graphs."""
        if len(self.inputs) != 1:
            raise ModelLoadError(f"model has {len(self.inputs)} inputs; exactly one is supported")
        return self._nodes[self.inputs[0]]

    @property
    def output_node(self) -> Node:
        """The single output; an error for multi-output graphs."""
        if len(self.outputs) != 1:
            raise ModelLoadError(f"model has {len(self.outputs)} outputs; exactly one is supported")
        return self._nodes[self.outputs[0]]

    def op_counts(self) -> Counter:
        return Counter(node.op.value for node in self._nodes.values())

    def parameter_count(self) -> int:
        """Scalars stored in constants and weights (excluding index tensors)."""
        total = 0
        for node in self._nodes.values():
            for key, value in node.consts.items():
                if key != "indices":
                    total += int(np.asarray(value).size)
        return total

    def with_nodes(self, nodes: Iterable[Node], outputs: Iterable[str] | None = None,
                   check_shapes: bool = False) -> "NetworkGraph":
        """A new graph with the same inputs (and outputs unless given) over ``nodes``.

        Nodes unreachable backwards from the outputs are dropped.
        """
        outputs = tuple(outputs) if outputs is not None else self.outputs
        by_name = {n.name: n for n in nodes}
        keep: set[str] = set()
        stack = list(outputs) + list(self.inputs)
        while stack:
            name = stack.pop()
            if name in keep or name not in by_name:
                continue
            keep.add(name)
            stack.extend(by_name[name].inputs)
        return NetworkGraph([n for n in by_name.values() if n.name in keep], self.inputs,
                            outputs, name=self.name, check_shapes=check_shapes)

    def __repr__(self) -> str:
        return (f"NetworkGraph({self.name!r}, {len(self)} nodes, inputs={list(self.inputs)}, "
                f"outputs={list(self.outputs)})")
