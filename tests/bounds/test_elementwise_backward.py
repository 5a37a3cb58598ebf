"""The elementwise fast path of linear backward rules (reshape, identity, negation, adds
and subtractions without broadcasting of a variable) gives exactly the vjp's values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import vjp

from hybridver.bounds.plan import get_plan
from hybridver.ir import NetworkGraph, Node, OpKind
from hybridver.ir.evaluate import EVALUATORS


def _graph() -> NetworkGraph:
    rng = np.random.default_rng(0)
    return NetworkGraph([
        Node("x", OpKind.INPUT, shape=(2, 3)),
        Node("s", OpKind.SUB, ("x", "m"), shape=(2, 3)),
        Node("m", OpKind.CONSTANT, consts={"value": rng.normal(size=(2, 3))}, shape=(2, 3)),
        Node("r", OpKind.RESHAPE, ("s",), shape=(6,)),
        Node("n", OpKind.NEG, ("r",), shape=(6,)),
        Node("t", OpKind.SUB, ("n", "r"), shape=(6,)),
        Node("a", OpKind.ADD, ("t", "r"), shape=(6,)),
    ], ["x"], ["a"])


@pytest.mark.parametrize("name", ["s", "r", "n", "t", "a"])
def test_fast_path_equals_vjp(name):
    graph = _graph()
    plan = get_plan(graph, torch.float32, torch.device("cpu"))
    rule = plan.rules[name]
    assert rule._signs is not None
    node = plan.graph.node(name)
    lam = torch.randn((4, 3, *node.shape), generator=torch.Generator().manual_seed(1))
    got = rule.backward(lam)
    consts = {i: plan.constants[s].float() for i, s in enumerate(node.inputs)
              if s not in plan.variable}
    var = [i for i, s in enumerate(node.inputs) if s in plan.variable]

    def f(*xs):
        args = [None] * len(node.inputs)
        for i, x in zip(var, xs):
            args[i] = x
        for i, c in consts.items():
            args[i] = c
        return EVALUATORS[node.op](node, args)

    primals = [torch.zeros((12, *plan.graph.node(node.inputs[i]).shape)) for i in var]
    _, fn = vjp(f, *primals)
    want = fn(lam.reshape(12, *node.shape))
    for g, w in zip(got, want):
        assert torch.equal(g.reshape(w.shape), w)


def test_broadcasting_add_keeps_the_general_path():
    graph = NetworkGraph([
        Node("x", OpKind.INPUT, shape=(1, 3)),
        Node("y", OpKind.LINEAR, ("x",), consts={"weight": np.eye(3), "bias": np.zeros(3)},
             shape=(1, 3)),
        Node("a", OpKind.ADD, ("x", "y"), shape=(1, 3)),
        Node("b", OpKind.ADD, ("a", "c"), shape=(2, 3)),
        Node("c", OpKind.CONSTANT, consts={"value": np.ones((2, 3))}, shape=(2, 3)),
    ], ["x"], ["b"])
    plan = get_plan(graph, torch.float32, torch.device("cpu"))
    assert plan.rules["a"]._signs == (1.0, 1.0)
    assert plan.rules["b"]._signs is None  # its variable operand is broadcast
