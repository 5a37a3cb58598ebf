"""Interval bounds: every sampled output (and every box corner) lies inside the bounds."""

from __future__ import annotations

import itertools
import zlib
import math

import numpy as np
import pytest
import torch

from hybridver.bounds.intervals import (UnsupportedBoundError, interval_bounds,
                                        spec_row_lower_bounds, Interval)
from hybridver.ir import NetworkGraph, Node, OpKind, evaluate_all

UNARY = [OpKind.RELU, OpKind.SIGMOID, OpKind.TANH, OpKind.SIN, OpKind.COS, OpKind.EXP,
         OpKind.ABS, OpKind.ERF, OpKind.GELU, OpKind.NEG]


def _graph(op: OpKind, n: int = 6, **attrs) -> NetworkGraph:
    return NetworkGraph([Node("x", OpKind.INPUT, shape=(n,)),
                         Node("y", op, ("x",), attrs=attrs, shape=(n,))], ["x"], ["y"])


def _check_contains(graph: NetworkGraph, lower: np.ndarray, upper: np.ndarray,
                    n_samples: int = 2000, seed: int = 0) -> None:
    """Sampled points, and the box's endpoints per coordinate, stay inside every node's bounds."""
    rng = np.random.default_rng(seed)
    bounds = interval_bounds(graph, lower[None], upper[None])
    shape = graph.input_node.shape
    xs = lower + rng.random((n_samples, lower.size)) * (upper - lower)
    xs = np.concatenate([xs, lower[None], upper[None]])
    values = evaluate_all(graph, xs.reshape(-1, *shape))
    for name, value in values.items():
        b = bounds[name]
        assert torch.all(value >= b.lower - 0.0), f"{name}: below lower bound"
        assert torch.all(value <= b.upper + 0.0), f"{name}: above upper bound"


@pytest.mark.parametrize("op", UNARY, ids=lambda o: o.value)
@pytest.mark.parametrize("kind", ["narrow", "wide", "negative", "positive", "crossing"])
def test_unary_rules_contain_function(op, kind):
    rng = np.random.default_rng(zlib.crc32(f"{op.value}-{kind}".encode()))
    centre = {"negative": -3.0, "positive": 3.0}.get(kind, 0.0) + rng.normal(size=6)
    radius = {"narrow": 1e-3, "wide": 8.0}.get(kind, 1.0) * rng.random(6)
    _check_contains(_graph(op), centre - radius, centre + radius)


def test_periodic_bounds_hit_extremes():
    g = _graph(OpKind.SIN, n=1)
    b = interval_bounds(g, np.array([[0.0]]), np.array([[math.pi]]))["y"]
    assert float(b.upper) >= 1.0 and float(b.lower) <= 0.0 and float(b.lower) > -1e-9


def test_linear_relu_network_sound_and_corner_tight():
    rng = np.random.default_rng(1)
    nodes = [Node("x", OpKind.INPUT, shape=(1, 4))]
    prev, width = "x", 4
    for i, out in enumerate([16, 16, 3]):
        nodes.append(Node(f"l{i}", OpKind.LINEAR, (prev,), consts={
            "weight": rng.normal(size=(out, width)), "bias": rng.normal(size=out)}, shape=(1, out)))
        prev, width = f"l{i}", out
        if i < 2:
            nodes.append(Node(f"r{i}", OpKind.RELU, (prev,), shape=(1, out)))
            prev = f"r{i}"
    g = NetworkGraph(nodes, ["x"], [prev])
    lo, hi = -np.ones(4) * 0.5, np.ones(4) * 0.5
    _check_contains(g, lo, hi)
    # with a zero-width box the bounds collapse onto the point (up to rounding slack)
    point = rng.normal(size=4)
    b = interval_bounds(g, point[None], point[None])[prev]
    assert torch.allclose(b.lower, b.upper, atol=1e-9)


def test_binary_ops_and_softmax_and_pow():
    nodes = [Node("x", OpKind.INPUT, shape=(5,)),
             Node("c", OpKind.CONSTANT, consts={"value": np.array([0.5, -1.0, 2.0, 3.0, -0.5])},
                  shape=(5,)),
             Node("two", OpKind.CONSTANT, consts={"value": np.array(2.0)}, shape=()),
             Node("m", OpKind.MUL, ("x", "x"), shape=(5,)),
             Node("a", OpKind.ADD, ("m", "c"), shape=(5,)),
             Node("s", OpKind.SUB, ("a", "x"), shape=(5,)),
             Node("p", OpKind.POW, ("s", "two"), shape=(5,)),
             Node("e", OpKind.EXP, ("x",), shape=(5,)),
             Node("q", OpKind.DIV, ("x", "e"), shape=(5,)),
             Node("sm", OpKind.SOFTMAX, ("q",), attrs={"axis": 0}, shape=(5,)),
             Node("sum", OpKind.REDUCE_SUM, ("sm",), attrs={"axes": (0,), "keepdims": True},
                  shape=(1,)),
             Node("out", OpKind.ADD, ("sum", "p"), shape=(5,))]
    g = NetworkGraph(nodes, ["x"], ["out"])
    _check_contains(g, -np.ones(5), np.ones(5) * 2)


def test_division_by_interval_containing_zero_is_unsupported():
    nodes = [Node("x", OpKind.INPUT, shape=(2,)), Node("q", OpKind.DIV, ("x", "x"), shape=(2,))]
    g = NetworkGraph(nodes, ["x"], ["q"])
    with pytest.raises(UnsupportedBoundError):
        interval_bounds(g, -np.ones((1, 2)), np.ones((1, 2)))


def test_spec_row_lower_bounds_is_the_box_minimum():
    y = Interval(torch.tensor([[0.0, -1.0, 2.0]], dtype=torch.float64),
                 torch.tensor([[1.0, 1.0, 3.0]], dtype=torch.float64))
    C = np.array([[1.0, -1.0, 0.0], [0.0, 2.0, -1.0]])
    d = np.array([0.5, 0.0])
    rows = spec_row_lower_bounds(y, C, d)[0].numpy()
    corners = [np.array(c) for c in itertools.product([0.0, 1.0], [-1.0, 1.0], [2.0, 3.0])]
    exact = np.min([C @ c + d for c in corners], axis=0)
    assert np.all(rows <= exact) and np.allclose(rows, exact, atol=1e-12)
