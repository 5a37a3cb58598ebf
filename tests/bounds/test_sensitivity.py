"""Branching sensitivities (a second rule table over the backward walk) against a
dense hand computation on a one-hidden-layer ReLU network."""

from __future__ import annotations

import numpy as np
import torch

from hybridver.bounds import BoundConfig, compute_bounds
from hybridver.bounds.plan import NodeKind, get_plan
from hybridver.bounds.sensitivity import branching_sensitivities
from hybridver.ir import OpKind
from hybridver.relaxations.base import get_relaxation
from tests.bounds.test_crown import mlp


def test_matches_dense_computation():
    graph = mlp([4, 6, 3], 5)
    plan = get_plan(graph, torch.float64, torch.device("cpu"))
    assert plan.kind["a0"] is NodeKind.UNARY and plan.kind["l0"] is NodeKind.LINEAR
    lo, hi = -np.ones((2, 4)), np.ones((2, 4))
    res = compute_bounds(graph, lo, hi)
    C = torch.tensor([[1.0, -1.0, 0.0], [0.0, 2.0, -1.0]], dtype=torch.float64)
    sens = branching_sensitivities(plan, res.intervals, C, ["a0"])
    W0 = torch.as_tensor(graph.node("l0").consts["weight"])
    W1 = torch.as_tensor(graph.node("l1").consts["weight"])
    lam_a = C @ W1                                                    # (N, 6)
    itv = res.intervals["l0"]
    lb = get_relaxation(OpKind.RELU).bounds(itv.lower, itv.upper, {})
    slopes = torch.where(lam_a.reshape(2, 1, 6) >= 0, lb.lower_slope, lb.upper_slope)
    lam_x = (lam_a * slopes.reshape(2, 6)) @ W0                         # (N, 4)
    assert torch.allclose(sens.magnitudes["a0"], lam_a.abs())
    assert torch.allclose(sens.signed_input, lam_x)
    assert torch.allclose(sens.magnitudes["x"], lam_x.abs())


def test_unsupported_node_gives_none(monkeypatch):
    import hybridver.bounds.plan as plan_module

    graph = mlp([3, 4, 2], 21, OpKind.SIGMOID)  # a fresh graph: plans are cached per graph
    intervals = compute_bounds(graph, -np.ones((1, 3)), np.ones((1, 3)),
                               config=BoundConfig(method="ibp")).intervals
    monkeypatch.setattr(plan_module, "get_relaxation", lambda op: None)
    plan = get_plan(graph, torch.float64, torch.device("cpu"))
    assert plan.kind["a0"] is NodeKind.UNSUPPORTED
    rows = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    assert branching_sensitivities(plan, intervals, rows, ["a0"]) is None
