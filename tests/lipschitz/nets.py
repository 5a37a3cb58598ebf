"""Small random networks in IR form for the Lipschitz tests, and gradients by torch
autograd through the IR's own evaluator (an independent reference)."""

from __future__ import annotations

import numpy as np
import torch

from hybridver.ir.evaluate import evaluate
from hybridver.ir.graph import NetworkGraph
from tests.bab.test_activation_split import mlp  # noqa: F401 - the dense nets used here




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
