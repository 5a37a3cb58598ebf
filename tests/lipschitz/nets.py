"""Small random networks in IR form for the Lipschitz tests, and gradients by torch
autograd through the IR's own evaluator (an independent reference)."""

from __future__ import annotations

import numpy as np
import torch

from hybridver.ir.evaluate import evaluate
from hybridver.ir.graph import NetworkGraph
from hybridver.ir.node import Node
from hybridver.ir.ops import OpKind


def mlp(widths: list[int], seed: int, act: OpKind = OpKind.RELU) -> NetworkGraph:
    """A dense network ``widths[0] -> ... -> widths[-1]`` with ``act`` between layers."""
    rng = np.random.default_rng(seed)
    nodes = [Node("x", OpKind.INPUT, shape=(1, widths[0]))]
    prev = "x"
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        nodes.append(Node(f"l{i}", OpKind.LINEAR, (prev,), consts={
            "weight": rng.normal(size=(b, a)) * 1.5 / np.sqrt(a),
            "bias": rng.normal(size=b) * 0.3}, shape=(1, b)))
        prev = f"l{i}"
        if i < len(widths) - 2:
            nodes.append(Node(f"a{i}", act, (prev,), shape=(1, b)))
            prev = f"a{i}"
    return NetworkGraph(nodes, ["x"], [prev])


def autograd_norms(graph: NetworkGraph, points: np.ndarray, rows: np.ndarray,
                   q: float) -> np.ndarray:
    """``(P, m)``: ``||grad (rows_i . f)(x_p)||_q`` by torch autograd of the evaluator."""
    x = torch.as_tensor(points, dtype=torch.float64).reshape(len(points),
                                                             *graph.input_node.shape)
    x.requires_grad_(True)
    y = evaluate(graph, x).reshape(len(points), -1)
    out = []
    for row in rows:
        g, = torch.autograd.grad((y @ torch.as_tensor(row)).sum(), x, retain_graph=True)
        out.append(torch.linalg.vector_norm(g.reshape(len(points), -1), ord=q, dim=-1))
    return torch.stack(out, 1).detach().numpy()
