"""Graph simplification passes.

Every pass is a free function ``NetworkGraph -> NetworkGraph`` that preserves the graph's
evaluation up to floating-point rounding, keeps the input names and the output names, and
builds new nodes and a new graph (graphs are immutable).  Each pass runs its own rewrite to
a fixed point; :func:`simplify` chains them until nothing changes and validates shapes.

This module holds constant folding, identity removal and :func:`simplify`; the affine
fusions are in :mod:`hybridver.ir.linear_fusion` (re-exported here) and the shared rewrite
machinery in :mod:`hybridver.ir.rewrite`.  Fusions never cross a nonlinearity and never
absorb a node that has several consumers or is a graph output (its value must stay
observable).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from hybridver.ir.evaluate import EVALUATORS
from hybridver.ir.graph import NetworkGraph, Node
from hybridver.ir.linear_fusion import fold_batch_norm, fuse_linear_bias, merge_linear
from hybridver.ir.ops import OpKind
from hybridver.ir.rewrite import Pass, signature

__all__ = ["fold_constants", "drop_identities", "fuse_linear_bias", "fold_batch_norm",
           "merge_linear", "simplify"]


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


# ---------------------------------------------------------------------------- simplify
DEFAULT_PASSES: tuple[Pass, ...] = (fold_constants, drop_identities, fuse_linear_bias,
                                    fold_batch_norm, merge_linear)


def simplify(g: NetworkGraph, passes: Iterable[Pass] = DEFAULT_PASSES,
             max_rounds: int = 100) -> NetworkGraph:
    """Run ``passes`` in order, repeatedly, until the graph stops changing.

    Returns a graph validated with ``check_shapes=True``.
    """
    passes = tuple(passes)
    sig = signature(g)
    for _ in range(max_rounds):
        for p in passes:
            g = p(g)
        new = signature(g)
        if new == sig:
            break
        sig = new
    return NetworkGraph(g.nodes(), g.inputs, g.outputs, name=g.name, check_shapes=True)
