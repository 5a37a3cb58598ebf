"""Graph IR: op vocabulary, NetworkGraph, importers, passes, reference evaluation."""

from hybridver.ir.evaluate import evaluate, evaluate_all
from hybridver.ir.graph import GraphValidationError, NetworkGraph, Node
from hybridver.ir.ops import OpKind

__all__ = ["NetworkGraph", "Node", "OpKind", "GraphValidationError", "evaluate", "evaluate_all"]
