"""Subproblem: the unit of work that flows from branch-and-bound to the scheduler, the
encoders and the exact back ends.

It sits low in the layering (it only needs the IR, the spec types and the relaxations'
traits) so every layer above can create or read one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from hybridver.ir.graph import NetworkGraph
from hybridver.ir.ops import ELEMENTWISE_NONLINEAR, OpKind
from hybridver.relaxations.base import is_piecewise_linear
from hybridver.specs import InputBox, OutputConstraints

NodeBounds = Mapping[str, tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True, eq=False)
class Subproblem:
    """Is there an input ``x`` in ``box`` whose output ``y`` satisfies every row of
    ``constraints`` (``C y + d <= 0``), within the restrictions below?

    ``node_bounds``: sound per-node intervals valid on this subproblem, keyed by node name,
    each ``(lower, upper)`` flattened to ``(node.size,)``; they include the restrictions
    that branching imposed (a split of a general nonlinearity narrows its input's interval).
    ``relu_splits``: for ReLU-like nodes (keyed by the nonlinear node's name), int8
    ``(node.size,)``: ``+1`` the input is constrained ``>= 0``, ``-1`` constrained ``<= 0``,
    ``0`` free.  ``case``/``disjunct`` point back into the Spec.
    """

    graph: NetworkGraph
    box: InputBox
    constraints: OutputConstraints
    node_bounds: NodeBounds = dataclasses.field(default_factory=dict)
    relu_splits: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    case: int = 0
    disjunct: int = 0
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "node_bounds", MappingProxyType(dict(self.node_bounds)))
        object.__setattr__(self, "relu_splits", MappingProxyType(dict(self.relu_splits)))
        n_in = self.graph.input_node.size
        if self.box.lower.size != n_in:
            raise ValueError(f"box has {self.box.lower.size} inputs, the graph {n_in}")
        n_out = self.graph.output_node.size
        if self.constraints.C.shape[1] != n_out:
            raise ValueError(f"constraints have {self.constraints.C.shape[1]} outputs, "
                             f"the graph {n_out}")

    def form(self) -> "SubproblemForm":
        """A structural summary for the scheduler (no solver, no bound computation)."""
        unstable = 0
        smooth: set[str] = set()
        for node in self.graph.nodes():
            if is_piecewise_linear(node.op):
                pre = self.node_bounds.get(node.inputs[0])
                split = self.relu_splits.get(node.name)
                if pre is None:
                    unstable += node.size if split is None else int(np.sum(split == 0))
                    continue
                lo, hi = pre
                free = (lo < 0) & (hi > 0)
                if split is not None:
                    free &= split == 0
                unstable += int(np.sum(free))
            elif node.op in ELEMENTWISE_NONLINEAR or node.op in (OpKind.SOFTMAX, OpKind.POW):
                smooth.add(node.op.value)
            elif node.op in (OpKind.MUL, OpKind.DIV, OpKind.MATMUL) and all(
                    self.graph.node(i).op is not OpKind.CONSTANT for i in node.inputs):
                smooth.add(node.op.value)  # product of two variables
        from hybridver.ir.relu_chain import ReluChain

        return SubproblemForm(n_inputs=self.graph.input_node.size, unstable_relus=unstable,
                              other_nonlinear_ops=frozenset(smooth),
                              n_nodes=len(self.graph), n_rows=self.constraints.C.shape[0],
                              relu_chain=ReluChain.of(self.graph) is not None)


@dataclasses.dataclass(frozen=True)
class SubproblemForm:
    """What a scheduler may read about a subproblem (cf. cvxpy's problem form)."""

    n_inputs: int
    unstable_relus: int
    other_nonlinear_ops: frozenset[str]
    n_nodes: int
    n_rows: int
    relu_chain: bool = False    # a chain of affine layers and ReLUs (ir/relu_chain.py)

    @property
    def piecewise_linear(self) -> bool:
        """True when an exact MILP/SMT encoding exists (ReLU-like ops and max-pool only)."""
        return not self.other_nonlinear_ops
