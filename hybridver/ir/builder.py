"""GraphBuilder: the node list of a graph under construction, with fresh names.

Shared by everything that makes IR nodes: the importers (``hybridver.frontends``), the
simplification passes (:mod:`hybridver.ir.passes`) and the decompositions
(:mod:`hybridver.ir.decompose`).  It keeps the nodes in the order they were added, the
names no new node may take, and each node's per-sample shape; it can infer the shape of a
new node by evaluating its op once on zeros (constants at their values).

Fresh names are ``base``, then ``base<sep>1``, ``base<sep>2``, ... (``sep`` is ``"_"``
unless the caller picks another; the ONNX importer uses ``"/"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from hybridver.errors import ModelLoadError
from hybridver.ir.evaluate import EVALUATORS
from hybridver.ir.node import Node
from hybridver.ir.ops import OpKind

__all__ = ["GraphBuilder"]


class GraphBuilder:
    """Nodes in insertion order; ``taken``: names a fresh name must avoid (every added
    node's name is added to it)."""

    def __init__(self, taken: Iterable[str] = (), sep: str = "_"):
        self.taken: set[str] = set(taken)
        self.sep = sep
        self._nodes: dict[str, Node] = {}

    # ------------------------------------------------------------------ queries
    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def node(self, name: str) -> Node:
        return self._nodes[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return self._nodes[name].shape

    def nodes(self) -> list[Node]:
        """The nodes, in the order they were added."""
        return list(self._nodes.values())

    # ------------------------------------------------------------------ names
    def fresh(self, base: str) -> str:
        """A name from ``base`` that is neither taken nor a node; it becomes taken."""
        name, i = base, 0
        while name in self.taken or name in self._nodes:
            i += 1
            name = f"{base}{self.sep}{i}"
        self.taken.add(name)
        return name

    # ------------------------------------------------------------------ adding
    def add(self, node: Node) -> Node:
        """Append ``node``; its name must not be a node already."""
        if node.name in self._nodes:
            raise ModelLoadError(f"duplicate IR node name '{node.name}'")
        self._nodes[node.name] = node
        self.taken.add(node.name)
        return node

    def emit(self, op: OpKind, inputs: Sequence[str], shape: Sequence[int] | None = None, *,
             name: str | None = None, base: str | None = None,
             attrs: Mapping[str, Any] | None = None,
             consts: Mapping[str, Any] | None = None) -> str:
        """Add a node named ``name`` (or a fresh name from ``base``); returns its name.

        ``shape``: the per-sample output shape; None infers it (:meth:`infer_shape`).
        """
        if name is None:
            if base is None:
                raise ValueError("emit needs a name or a base")
            name = self.fresh(base)
        node = Node(name, op, tuple(inputs), dict(attrs or {}), dict(consts or {}),
                    tuple(shape) if shape is not None else ())
        if shape is None:
            node = node.replace(shape=self.infer_shape(node))
        return self.add(node).name

    def constant(self, value: Any, *, name: str | None = None, base: str | None = None) -> str:
        """Add a CONSTANT node holding ``value`` as given (callers choose the dtype)."""
        value = np.asarray(value)
        return self.emit(OpKind.CONSTANT, (), value.shape, name=name, base=base,
                         consts={"value": value})

    # ------------------------------------------------------------------ shapes
    def infer_shape(self, node: Node) -> tuple[int, ...]:
        """The per-sample shape ``node`` produces from its operands (already added): its op
        evaluated once, on zeros for variables and on the values of CONSTANT operands."""
        args = []
        for src in node.inputs:
            n = self._nodes[src]
            if n.op is OpKind.CONSTANT:
                v = np.asarray(n.consts["value"])
                t = torch.as_tensor(v)
                if v.dtype.kind == "f":
                    t = t.to(torch.float64)
                args.append(t.reshape(1, *v.shape))
            else:
                args.append(torch.zeros((1, *n.shape), dtype=torch.float64))
        try:
            with torch.no_grad():
                out = EVALUATORS[node.op](node, args)
        except Exception as exc:
            shapes = [tuple(self._nodes[s].shape) for s in node.inputs]
            raise ModelLoadError(
                f"operands of shapes {shapes} do not fit {node.op.value}: {exc}") from exc
        return tuple(int(d) for d in out.shape[1:])
