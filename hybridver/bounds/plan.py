"""The graph plan of the bound passes: every node's kind, linear rule or relaxation.

A :class:`GraphPlan` is built once per (graph, dtype, device) and cached (graphs are
immutable).  It says, for each node that depends on the network input, which
:class:`NodeKind` it is and carries what a backward walk needs there: the transposed
linear rule (:mod:`hybridver.bounds.linear_ops`) or the registered relaxation and its
attributes.  Nodes that do not depend on the input are constants with float64 values.
"""

from __future__ import annotations

import enum
import weakref
from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np
import torch

from hybridver.bounds.linear_ops import LinearRule, is_linear
from hybridver.ir.decompose import decompose_for_bounds
from hybridver.ir.quadratic import find_quadratic_forms
from hybridver.ir.evaluate import EVALUATORS
from hybridver.ir.graph import NetworkGraph
from hybridver.ir.ops import OpKind
from hybridver.relaxations.base import BinaryRelaxation, UnaryRelaxation, get_relaxation

Tensor = torch.Tensor


class NodeKind(enum.Enum):
    """What a backward walk does at a node.

    INPUT: the network input (concretized over its box); LINEAR: a transposed linear rule;
    UNARY / BINARY: an elementwise relaxation of one / two variable operands;
    UNSUPPORTED: none of these (no bound through it); LEAF: an unsupported node cut out of
    one bound computation (``BoundConfig.interval_fallback``) and concretized over its
    interval like the input.  The plan never holds LEAF; a bound state does.
    """

    INPUT = "input"
    LINEAR = "linear"
    UNARY = "unary"
    BINARY = "binary"
    UNSUPPORTED = "unsupported"
    LEAF = "leaf"

    @property
    def nonlinear(self) -> bool:
        """A relaxed node (UNARY or BINARY)."""
        return self in (NodeKind.UNARY, NodeKind.BINARY)


class GraphPlan:
    """What the backward walks need to know about a graph (see the module docstring).

    ``kind[name]``: a :class:`NodeKind` for every node that depends on the input; the
    others are constants, float64 ``(1, *shape)`` in ``constants``.  ``rules`` (LINEAR),
    ``relaxations`` and ``attrs`` (UNARY, BINARY; POW gets ``"exponent"``) and
    ``unsupported`` (UNSUPPORTED: the reason) are keyed by node name.
    """

    def __init__(self, graph: NetworkGraph, dtype: torch.dtype, device: torch.device,
                 direct_rules: bool = True):
        self.graph, self.dtype, self.device = graph, dtype, device
        self.direct_rules = direct_rules
        self.input = graph.input_node.name
        self.output = graph.output_node.name
        self.order = graph.topological_order
        self.position = {name: i for i, name in enumerate(self.order)}
        self.variable: set[str] = set()
        self.constants: dict[str, Tensor] = {}
        self.kind: dict[str, NodeKind] = {}
        self.rules: dict[str, LinearRule] = {}
        self.relaxations: dict[str, UnaryRelaxation | BinaryRelaxation] = {}
        self.attrs: dict[str, Mapping[str, Any]] = {}
        self.unsupported: dict[str, str] = {}
        for name in self.order:
            node = graph.node(name)
            if node.op is OpKind.INPUT or any(i in self.variable for i in node.inputs):
                self.variable.add(name)
            else:
                self.constants[name] = self._constant_value(name)
        for name in self.order:
            if name in self.variable:
                self._classify(name)
        #: variable inputs of nonlinear nodes (their intervals feed relaxations)
        self.pre_activations: set[str] = set()
        for name, kind in self.kind.items():
            if kind.nonlinear:
                self.pre_activations.update(i for i in graph.node(name).inputs
                                            if i in self.variable and i != self.input)
        self._cones: dict[str, list[str]] = {}

    def _constant_value(self, name: str) -> Tensor:
        node = self.graph.node(name)
        if node.op is OpKind.CONSTANT:
            value = np.asarray(node.consts["value"])
            t = torch.as_tensor(value, device=self.device)
            t = t.to(torch.float64) if value.dtype.kind == "f" else t
            return t.reshape(1, *value.shape)
        with torch.no_grad():
            out = EVALUATORS[node.op](node, [self.constants[i] for i in node.inputs])
        return out.reshape(1, *node.shape)

    def _classify(self, name: str) -> None:
        node = self.graph.node(name)
        variable = [i in self.variable for i in node.inputs]
        shapes = [tuple(self.graph.node(i).shape) for i in node.inputs]
        if node.op is OpKind.INPUT:
            self.kind[name] = NodeKind.INPUT
            return
        if is_linear(node, variable):
            constants = {p: self.constants[i] for p, i in enumerate(node.inputs)
                         if not variable[p]}
            try:
                self.rules[name] = LinearRule(node, shapes, variable, constants, self.dtype,
                                              self.device, direct=self.direct_rules)
                self.kind[name] = NodeKind.LINEAR
            except Exception as exc:  # an evaluator that cannot be transposed
                self.kind[name] = NodeKind.UNSUPPORTED
                self.unsupported[name] = f"no backward rule for {node.op.value} ({exc})"
            return
        relaxation = get_relaxation(node.op)
        attrs = dict(node.attrs)
        reason = None
        if isinstance(relaxation, UnaryRelaxation):
            if node.op is OpKind.POW:
                exponent = self.constants.get(node.inputs[1]) if len(node.inputs) == 2 else None
                if not variable[0] or exponent is None or exponent.numel() != 1:
                    reason = "pow with a variable or non-scalar exponent"
                else:
                    attrs["exponent"] = float(exponent.reshape(-1)[0])
            elif variable != [True] or shapes[0] != tuple(node.shape):
                reason = f"{node.op.value} is not elementwise here"
            if reason is None:
                self.kind[name] = NodeKind.UNARY
        elif isinstance(relaxation, BinaryRelaxation) and len(node.inputs) == 2:
            self.kind[name] = NodeKind.BINARY
        else:
            reason = f"no linear rule and no relaxation for {node.op.value}"
        if reason is not None:
            self.kind[name] = NodeKind.UNSUPPORTED
            self.unsupported[name] = reason
            return
        self.relaxations[name] = relaxation
        self.attrs[name] = attrs

    def cone(self, start: str) -> list[str]:
        """``start`` and its variable ancestors, in reverse topological order."""
        if start not in self._cones:
            names = (nx.ancestors(self.graph.nx, start) | {start}) & self.variable
            self._cones[start] = sorted(names, key=self.position.__getitem__, reverse=True)
        return self._cones[start]

    def unary_inputs(self, ops) -> list[str]:
        """Sorted names of the nodes read by the UNARY nodes whose op is in ``ops`` (e.g.
        the pre-activations of ReLU-like nodes).  Like every name here, they are names of
        ``self.graph``, the decomposed graph (``graph_plan.graph``), which may hold nodes
        the graph given to :func:`get_plan` does not."""
        return sorted({self.graph.node(name).inputs[0] for name, kind in self.kind.items()
                       if kind is NodeKind.UNARY and self.graph.node(name).op in ops})

    def max_node_size(self, start: str) -> int:
        return max(self.graph.node(n).size for n in self.cone(start))

    def breakpoints(self, name: str) -> tuple[float, ...] | None:
        """Breakpoints if every consumer of ``name`` is piecewise linear with breakpoints
        (then only neurons whose interval contains one need tighter bounds), else None."""
        points: set[float] = set()
        for consumer in self.graph.successors(name):
            if self.kind.get(consumer) is not NodeKind.UNARY:
                return None
            traits = self.relaxations[consumer].traits
            if not (traits.piecewise_linear and traits.breakpoints):
                return None
            points.update(float(p) for p in traits.breakpoints)
        return tuple(sorted(points))


_PLANS: "weakref.WeakKeyDictionary[NetworkGraph, dict]" = weakref.WeakKeyDictionary()


def get_plan(graph: NetworkGraph, dtype: torch.dtype, device: torch.device,
             direct_rules: bool = True, broadcast_products: bool = True,
             quadratic_forms: bool = True) -> GraphPlan:
    """The cached :class:`GraphPlan` of ``graph`` for this dtype, device, choice of
    linear transposes (``direct_rules``: :class:`~hybridver.bounds.linear_ops.LinearRule`)
    and decompositions (``broadcast_products``, ``quadratic_forms``: :func:`for_bounds`)."""
    per_graph = _PLANS.setdefault(graph, {})
    key = (dtype, str(device), bool(direct_rules), bool(broadcast_products),
           bool(quadratic_forms))
    if key not in per_graph:
        per_graph[key] = GraphPlan(for_bounds(graph, broadcast_products, quadratic_forms),
                                   dtype, device, direct_rules)
    return per_graph[key]


_DECOMPOSED = (OpKind.SOFTMAX, OpKind.MAX_POOL, OpKind.MATMUL)


def for_bounds(graph: NetworkGraph, broadcast_products: bool = True,
               quadratic_forms: bool = True) -> NetworkGraph:
    """``graph`` with softmax, max-pool and products of two matrices decomposed into
    relaxable ops, and (``quadratic_forms``) quadratic forms ``u^T P u`` as weighted
    squares (:mod:`hybridver.ir.quadratic`); names of replaced nodes are kept; ``graph``
    itself if it has none of them.  ``broadcast_products``: see
    :func:`~hybridver.ir.decompose.decompose_matmul_of_variables`."""
    if not any(node.op in _DECOMPOSED for node in graph.nodes()) and not (
            quadratic_forms and find_quadratic_forms(graph)):
        return graph
    return decompose_for_bounds(graph, broadcast_products, quadratic_forms)
