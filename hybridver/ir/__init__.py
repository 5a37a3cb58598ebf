"""Graph IR: the op vocabulary (``ops``), nodes (``node``), :class:`NetworkGraph`
(``graph``), reference evaluation in float64 (``evaluate``), the graph builder every
importer, pass and decomposition uses (``builder``), simplification passes (``passes``,
``linear_fusion``, ``rewrite``), decompositions into relaxable ops (``decompose``), a graph
read as affine layers with ReLUs (``relu_chain``).  Importers and the onnxruntime wrapper
are in ``hybridver.frontends``."""

from hybridver.ir.evaluate import evaluate, evaluate_all
from hybridver.ir.graph import GraphValidationError, NetworkGraph, Node
from hybridver.ir.ops import OpKind

__all__ = ["NetworkGraph", "Node", "OpKind", "GraphValidationError", "evaluate", "evaluate_all"]
