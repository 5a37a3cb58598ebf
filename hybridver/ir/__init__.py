"""Graph IR: op vocabulary, nodes, NetworkGraph, the graph builder, passes, reference evaluation.

The importers that produce graphs live in :mod:`hybridver.frontends`.
"""

from hybridver.ir.evaluate import evaluate, evaluate_all
from hybridver.ir.graph import GraphValidationError, NetworkGraph, Node
from hybridver.ir.ops import OpKind

__all__ = ["NetworkGraph", "Node", "OpKind", "GraphValidationError", "evaluate", "evaluate_all"]
