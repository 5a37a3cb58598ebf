"""The chain form of a network: what is supported, what is refused (with the op and the
node named), the exact convolution matrix, the rows, and the derivative ranges."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hybridver.ir.evaluate import evaluate
from hybridver.ir.graph import NetworkGraph
from hybridver.ir.node import Node
from hybridver.ir.ops import OpKind
from hybridver.lipschitz import LipschitzConfig, LipschitzInputError, local_lipschitz
from hybridver.lipschitz.derivatives import derivative_range
from hybridver.lipschitz.network import Affine, extract_chain, objective_rows
from tests.lipschitz.nets import autograd_norms, mlp


def test_unsupported_activation_is_refused_by_name():
    graph = mlp([3, 4, 2], 0)
    nodes = [n if n.op is not OpKind.RELU else n.replace(op=OpKind.LEAKY_RELU,
                                                          attrs={"alpha": 0.1})
             for n in graph.nodes()]
    leaky = NetworkGraph(nodes, graph.inputs, graph.outputs)
    with pytest.raises(LipschitzInputError, match=r"leaky_relu \(node 'a0'\)"):
        extract_chain(leaky)


def test_residual_graph_is_refused():
    w = np.eye(2)
    nodes = [Node("x", OpKind.INPUT, shape=(1, 2)),
             Node("l", OpKind.LINEAR, ("x",), consts={"weight": w}, shape=(1, 2)),
             Node("r", OpKind.RELU, ("l",), shape=(1, 2)),
             Node("s", OpKind.ADD, ("r", "x"), shape=(1, 2))]
    graph = NetworkGraph(nodes, ["x"], ["s"])
    with pytest.raises(LipschitzInputError, match="node 's' \\(add\\)"):
        extract_chain(graph)


def test_conv_matrix_is_the_convolution():
    rng = np.random.default_rng(0)
    nodes = [Node("x", OpKind.INPUT, shape=(1, 2, 5, 5)),
             Node("c", OpKind.CONV, ("x",), consts={"weight": rng.normal(size=(3, 2, 3, 3)),
                                                    "bias": rng.normal(size=3)},
                  attrs={"strides": (2, 2), "pads": (1, 1, 1, 1), "dilations": (1, 1),
                         "group": 1}, shape=(1, 3, 3, 3)),
             Node("r", OpKind.RELU, ("c",), shape=(1, 3, 3, 3)),
             Node("f", OpKind.RESHAPE, ("r",), shape=(1, 27)),
             Node("o", OpKind.LINEAR, ("f",), consts={"weight": rng.normal(size=(2, 27))},
                  shape=(1, 2))]
    graph = NetworkGraph(nodes, ["x"], ["o"])
    conv = extract_chain(graph).steps[0]
    assert isinstance(conv, Affine)
    x = rng.normal(size=(4, 50))
    want = evaluate(graph.with_nodes(nodes[:2], outputs=["c"]),
                    torch.as_tensor(x.reshape(4, 1, 2, 5, 5))).reshape(4, -1).numpy()
    assert np.allclose(x @ conv.weight.T + conv.bias, want, rtol=1e-12, atol=1e-12)
    lo, hi = -np.ones(50) * 0.1, np.ones(50) * 0.1
    res = local_lipschitz(graph, lo, hi, timeout_s=10, config=LipschitzConfig(
        samples=32, ascent_steps=2, bab_max_boxes=8, milp=False))
    points = lo + (hi - lo) * rng.random((500, 50))
    assert autograd_norms(graph, points, np.eye(2), 1.0).max() \
        <= res.upper


def test_objective_rows_and_bad_indices():
    assert np.array_equal(objective_rows(3), np.eye(3))
    assert np.array_equal(objective_rows(3, output=2), [[0, 0, 1]])
    assert np.array_equal(objective_rows(3, margin=(2, 0)), [[-1, 0, 1]])
    for kwargs in ({"output": 3}, {"output": -1}, {"margin": (1, 1)}, {"margin": (0, 5)},
                   {"output": 0, "margin": (0, 1)}):
        with pytest.raises(LipschitzInputError):
            objective_rows(3, **kwargs)


@pytest.mark.parametrize("op", [OpKind.SIGMOID, OpKind.TANH, OpKind.RELU])
def test_derivative_ranges_contain_every_derivative(op):
    rng = np.random.default_rng(3)
    centre = rng.normal(size=400) * 8
    lo = torch.as_tensor(centre - rng.random(400) * 3)
    hi = torch.as_tensor(centre + rng.random(400) * 3)
    d_lo, d_hi = derivative_range(op, lo, hi)
    # references without cancellation (autograd's sigmoid(1 - sigmoid) loses the digits)
    fn = {OpKind.SIGMOID: lambda z: torch.sigmoid(z) * torch.sigmoid(-z),
          OpKind.TANH: lambda z: 1 / torch.cosh(z) ** 2,
          OpKind.RELU: lambda z: (z > 0).double()}[op]
    for t in np.linspace(0, 1, 101):
        d = fn(lo + (hi - lo) * t)
        assert torch.all(d >= d_lo) and torch.all(d <= d_hi)
    if op is OpKind.RELU:  # both one-sided derivatives at a tie z = 0
        tie_lo, tie_hi = derivative_range(op, torch.zeros(1, dtype=torch.float64),
                                          torch.ones(1, dtype=torch.float64))
        assert tie_lo.item() == 0.0 and tie_hi.item() == 1.0
