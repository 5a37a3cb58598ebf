"""upper >= exact >= lower on random small networks, and no gradient anywhere in the box
exceeds the upper bound (autograd through the IR's evaluator at random points)."""

from __future__ import annotations

import numpy as np
import pytest

from hybridver.ir.ops import OpKind
from hybridver.lipschitz import LipschitzConfig, local_lipschitz
from tests.lipschitz.nets import autograd_norms, mlp

Q = {"inf": 1.0, "2": 2.0, "1": np.inf}
#: the MILP's solution is re-scored exactly, but its optimality is up to HiGHS's gap
GAP = 1e-6


def _box(n: int, seed: int, radius: float):
    centre = np.random.default_rng(seed + 100).normal(size=n)
    return centre - radius, centre + radius


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("norm", ["inf", "1"])
def test_relu_upper_exact_lower_are_ordered(seed, norm):
    graph = mlp([3, 8, 8, 3], seed)
    lo, hi = _box(3, seed, 0.6)
    small = dict(samples=128, ascent_steps=10, local_rounds=5)
    milp = local_lipschitz(graph, lo, hi, norm=norm, timeout_s=20,
                           config=LipschitzConfig(bab=False, vertex_max_varying=0, **small))
    bab = local_lipschitz(graph, lo, hi, norm=norm, timeout_s=20,
                          config=LipschitzConfig(milp=False, bab_max_boxes=64, **small))
    assert milp.exact_source == "milp", milp.exact_status
    exact = milp.exact
    for res in (milp, bab):
        assert res.upper >= exact * (1 - GAP)
        assert exact >= res.lower * (1 - GAP)
        assert res.lower > 0
        assert res.naive >= res.upper * (1 - 1e-9)
    points = lo + (hi - lo) * np.random.default_rng(seed).random((2000, 3))
    norms = autograd_norms(graph, points, np.eye(3), Q[norm])
    assert norms.max() <= bab.upper and norms.max() <= milp.upper
    assert norms.max() <= exact * (1 + GAP)


@pytest.mark.parametrize("act", [OpKind.SIGMOID, OpKind.TANH, OpKind.RELU])
@pytest.mark.parametrize("norm", ["inf", "2", "1"])
def test_sampled_gradients_never_exceed_upper(act, norm):
    graph = mlp([4, 10, 10, 10, 2], 7, act)
    lo, hi = _box(4, 7, 1.0)
    res = local_lipschitz(graph, lo, hi, norm=norm, timeout_s=10,
                          config=LipschitzConfig(samples=64, ascent_steps=5, local_rounds=5,
                                                 bab_max_boxes=32, milp=False))
    points = lo + (hi - lo) * np.random.default_rng(1).random((4000, 4))
    norms = autograd_norms(graph, points, np.eye(2), Q[norm])
    assert norms.max() <= res.upper
    assert res.lower <= res.upper
    assert np.all(np.asarray(res.witness) >= lo) and np.all(np.asarray(res.witness) <= hi)


def test_linear_relaxation_is_never_looser_than_intervals():
    graph = mlp([4, 12, 12, 12, 3], 3, OpKind.TANH)
    lo, hi = _box(4, 3, 0.8)
    plain = dict(bab=False, milp=False, samples=16, ascent_steps=0)
    interval = local_lipschitz(graph, lo, hi, config=LipschitzConfig(
        linear_relaxation=False, **plain))
    linear = local_lipschitz(graph, lo, hi, config=LipschitzConfig(**plain))
    assert linear.upper <= interval.upper
    assert linear.upper >= linear.lower


def test_branch_and_bound_tightens_and_stays_sound():
    graph = mlp([2, 16, 16, 1], 11)
    lo, hi = _box(2, 11, 1.5)
    root = local_lipschitz(graph, lo, hi, config=LipschitzConfig(bab=False, milp=False))
    split = local_lipschitz(graph, lo, hi, timeout_s=20, config=LipschitzConfig(
        bab_max_boxes=256, milp=False))
    exact = local_lipschitz(graph, lo, hi, timeout_s=20, config=LipschitzConfig(
        bab=False, vertex_max_varying=0))
    assert split.boxes > 1
    assert split.upper <= root.upper
    assert exact.exact_source == "milp"
    assert split.upper >= exact.exact * (1 - GAP)
    grid = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], 150),
                                np.linspace(lo[1], hi[1], 150)), -1).reshape(-1, 2)
    assert autograd_norms(graph, grid, np.eye(1), 1.0).max() <= split.upper


def test_margin_and_single_output_rows():
    graph = mlp([3, 8, 3], 5)
    lo, hi = _box(3, 5, 0.5)
    config = LipschitzConfig(samples=64, ascent_steps=5)
    whole = local_lipschitz(graph, lo, hi, config=config)
    one = local_lipschitz(graph, lo, hi, output=1, config=config)
    margin = local_lipschitz(graph, lo, hi, margin=(0, 2), config=config)
    assert one.upper <= whole.upper * (1 + 1e-9)
    points = lo + (hi - lo) * np.random.default_rng(0).random((2000, 3))
    row = np.array([[1.0, 0.0, -1.0]])
    assert autograd_norms(graph, points, row, 1.0).max() <= margin.upper
    assert margin.exact is not None and margin.upper >= margin.exact * (1 - GAP)
    assert margin.exact >= margin.lower * (1 - GAP)


@pytest.mark.parametrize("norm", ["inf", "2", "1"])
def test_affine_network_is_pinned_to_its_row_norms(norm):
    """No activation: the gradient is constant, ``W^T c``; both bounds meet it and the
    constant is reported as pinned by the bounds (not by the MILP)."""
    graph = mlp([5, 3], 2)
    weight = graph.node("l0").consts["weight"]
    lo, hi = _box(5, 2, 1.0)
    res = local_lipschitz(graph, lo, hi, norm=norm, config=LipschitzConfig(samples=8))
    want = np.linalg.norm(weight, ord=Q[norm], axis=1).max()
    assert res.exact_source == "bab" and res.exact == res.lower
    assert res.lower <= want <= res.upper
    assert res.upper <= want * (1 + 1e-9)
