"""The deadline inside bound passes: ``BoundConfig.deadline`` stops IBP, CROWN and
alpha-CROWN with :class:`DeadlineExceeded`, checked at every node of the walk;
``AlphaConfig.deadline`` still only ends the alpha optimization early."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

import hybridver.bounds.backward as backward_mod
from hybridver.bounds import AlphaConfig, BoundConfig, compute_bounds
from hybridver.bounds.backward import RuleTable, walk
from hybridver.bounds.plan import NodeKind, get_plan
from hybridver.errors import DeadlineExceeded, HybridverInputError
from hybridver.frontends.onnx import load_onnx
from hybridver.ir.passes import simplify
from tests.bounds.test_crown import mlp

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MNIST = Path("/work/shared/benchmarks/mnist_fc_2022/onnx/mnist-net_256x6.onnx.gz")


def digits():
    graph = simplify(load_onnx(EXAMPLES / "digits_relu.onnx"))
    n = graph.input_node.size
    rng = np.random.default_rng(0)
    centre = rng.uniform(0.2, 0.8, size=(1, n))
    return graph, centre - 0.05, centre + 0.05


def test_not_an_input_error():
    assert not issubclass(DeadlineExceeded, HybridverInputError)


@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown", "alpha-beta-crown"])
def test_past_deadline_raises_on_a_real_network(method):
    graph, lo, hi = digits()
    config = BoundConfig(method=method, deadline=time.monotonic() - 1.0)
    t0 = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        compute_bounds(graph, lo, hi, config=config)
    assert time.monotonic() - t0 < 5.0   # generous: it stops at the first node


def test_far_deadline_changes_nothing():
    graph, lo, hi = digits()
    plain = compute_bounds(graph, lo, hi, config=BoundConfig(method="alpha-crown"))
    timed = compute_bounds(graph, lo, hi, config=BoundConfig(
        method="alpha-crown", deadline=time.monotonic() + 3600.0))
    assert torch.equal(plain.lower, timed.lower) and torch.equal(plain.upper, timed.upper)


def test_alpha_deadline_still_ends_the_optimization_softly():
    graph, lo, hi = digits()
    crown = compute_bounds(graph, lo, hi)
    past = AlphaConfig(iterations=50, deadline=time.monotonic() - 1.0)
    alpha = compute_bounds(graph, lo, hi, config=BoundConfig(method="alpha-crown", alpha=past))
    assert alpha.stats["alpha_iterations"] <= 1
    assert torch.all(alpha.lower >= crown.lower) and torch.all(alpha.upper <= crown.upper)


@pytest.mark.skipif(not MNIST.exists(), reason="benchmark data absent")
def test_deadline_inside_a_crown_pass_on_mnist():
    """A deadline that passes during CROWN's intermediate passes stops the computation
    there (a full pass takes longer than the deadline by construction of the check)."""
    graph = simplify(load_onnx(MNIST))
    lo = np.full((4, graph.input_node.size), 0.2)
    hi = lo + 0.1
    with pytest.raises(DeadlineExceeded):
        compute_bounds(graph, lo, hi, config=BoundConfig(deadline=time.monotonic() + 0.05))


class _Counting(RuleTable):
    """Counts visits; linear rules pass coefficients through unchanged in shape."""

    def __init__(self, plan, deadline=None):
        super().__init__(plan, {kind: self.visit for kind in NodeKind}, deadline)
        self.visited: list[str] = []

    def visit(self, name, lam):
        self.visited.append(name)
        node = self.plan.graph.node(name)
        return [(src, torch.zeros((1, 1, *self.plan.graph.node(src).shape)))
                for src in node.inputs if src in self.plan.variable]


def test_walk_checks_the_deadline_at_every_node(monkeypatch):
    graph = mlp([3, 5, 5, 2], 1)
    plan = get_plan(graph, torch.float64, torch.device("cpu"))
    clock = iter(range(1000))
    monkeypatch.setattr(backward_mod.time, "monotonic", lambda: float(next(clock)))
    table = _Counting(plan, deadline=2.5)
    start = torch.zeros((1, 1, *graph.output_node.shape))
    with pytest.raises(DeadlineExceeded):
        walk(table, plan.output, start)   # the clock reads 0, 1, 2, then 3
    assert len(table.visited) == 3
    full = _Counting(plan)
    walk(full, plan.output, start)
    assert full.visited == plan.cone(plan.output)


def test_linear_backward_in_pieces(monkeypatch):
    """With a deadline, linear nodes are pushed through in row pieces: the same bounds up
    to summation order (and the deadline is checked between pieces)."""
    graph, lo, hi = digits()
    plain = compute_bounds(graph, lo, hi)
    monkeypatch.setattr(backward_mod, "PIECE_MACS", 1)   # one row per piece
    pieces = compute_bounds(graph, lo, hi, config=BoundConfig(deadline=time.monotonic() + 3600))
    assert torch.allclose(plain.lower, pieces.lower, rtol=1e-5, atol=1e-6)
    assert torch.allclose(plain.upper, pieces.upper, rtol=1e-5, atol=1e-6)
    plan = get_plan(graph, torch.float32, torch.device("cpu"))
    rule = next(plan.rules[n] for n in plan.cone(plan.output)
                if plan.kind[n] is NodeKind.LINEAR)
    clock = iter(range(1000))
    monkeypatch.setattr(backward_mod.time, "monotonic", lambda: float(next(clock)))
    lam = torch.ones((5, 1, *rule.node.shape))
    with pytest.raises(DeadlineExceeded):
        backward_mod.linear_backward(rule, lam, deadline=2.5)   # before the fourth piece
