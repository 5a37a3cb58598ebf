"""Subproblems as plain picklable data, for executors that run jobs in other processes.

:class:`~hybridver.ir.graph.Node` and :class:`~hybridver.problem.Subproblem` keep their
mappings as ``MappingProxyType`` (read-only views), which ``pickle`` refuses.  Rather than
changing how every process pickles mapping proxies (``copyreg`` is process-wide state), an
executor converts a subproblem into nested tuples, dicts and numpy arrays here and back in
the worker.  The graph travels separately from the rest (:func:`pack_graph`), under a key,
so a worker that has already rebuilt a graph skips it for the next subproblem of the same
network.  The rebuilt graph is the same DAG (nodes, inputs, outputs, constants bit for
bit); its shape check is skipped because the sender's graph was already validated.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any

import numpy as np

from hybridver.ir.graph import NetworkGraph, Node
from hybridver.problem import Subproblem
from hybridver.specs import InputBox, OutputConstraints

_keys: "weakref.WeakKeyDictionary[NetworkGraph, str]" = weakref.WeakKeyDictionary()
_counter = itertools.count()


def graph_key(graph: NetworkGraph) -> str:
    """A key naming this graph object for the life of the process (stable across calls)."""
    key = _keys.get(graph)
    if key is None:
        key = f"{graph.name}#{next(_counter)}"
        _keys[graph] = key
    return key


def pack_graph(graph: NetworkGraph) -> dict[str, Any]:
    """The graph as picklable data: one tuple per node, in topological order."""
    nodes = [(n.name, n.op.value, tuple(n.inputs), dict(n.attrs),
              {k: np.asarray(v) for k, v in n.consts.items()}, tuple(n.shape))
             for n in graph.nodes()]
    return {"name": graph.name, "inputs": tuple(graph.inputs), "outputs": tuple(graph.outputs),
            "nodes": nodes}


def unpack_graph(data: dict[str, Any]) -> NetworkGraph:
    nodes = [Node(name, op, inputs, attrs, consts, shape)
             for name, op, inputs, attrs, consts, shape in data["nodes"]]
    return NetworkGraph(nodes, data["inputs"], data["outputs"], name=data["name"],
                        check_shapes=False)


def pack_subproblem(problem: Subproblem) -> dict[str, Any]:
    """Everything of ``problem`` except its graph (see :func:`pack_graph`)."""
    return {"box": (np.asarray(problem.box.lower), np.asarray(problem.box.upper)),
            "constraints": (np.asarray(problem.constraints.C), np.asarray(problem.constraints.d)),
            "node_bounds": {k: (np.asarray(lo), np.asarray(hi))
                            for k, (lo, hi) in problem.node_bounds.items()},
            "relu_splits": {k: np.asarray(v) for k, v in problem.relu_splits.items()},
            "case": problem.case, "disjunct": problem.disjunct, "label": problem.label}


def unpack_subproblem(data: dict[str, Any], graph: NetworkGraph) -> Subproblem:
    return Subproblem(graph, InputBox(*data["box"]), OutputConstraints(*data["constraints"]),
                      data["node_bounds"], data["relu_splits"], case=data["case"],
                      disjunct=data["disjunct"], label=data["label"])
