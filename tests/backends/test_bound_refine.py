"""LP/MILP tightening of the first ReLU layers' intervals (backends/bound_refine.py):
sound by sampling, never looser than CROWN's, tighter somewhere, and never emptied."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import torch

from hybridver.backends.bound_refine import (RefineConfig, _store, _update,
                                             refine_intermediate_bounds)
from hybridver.bounds import BoundConfig, compute_bounds
from hybridver.bounds.options import BoundMethod
from hybridver.ir import OpKind
from hybridver.ir.evaluate import evaluate_all

pytest.importorskip("highspy")

from tests.bab.test_activation_split import mlp  # noqa: E402  (the same ReLU MLPs)


def crown_intervals(graph, lower, upper) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    res = compute_bounds(graph, lower[None], upper[None], config=BoundConfig(
        method=BoundMethod.CROWN))
    return {k: (v.lower.reshape(-1).double().numpy(), v.upper.reshape(-1).double().numpy())
            for k, v in res.intervals.items() if k in graph}


def sampled_values(graph, lower, upper, n: int, seed: int) -> dict[str, np.ndarray]:
    """Every node's value ``(n + corners, size)`` at uniform samples and box corners
    (one per sign pattern of a random direction set)."""
    rng = np.random.default_rng(seed)
    pts = lower + (upper - lower) * rng.random((n, lower.size))
    corners = np.where(rng.random((200, lower.size)) < 0.5, lower, upper)
    pts = np.concatenate([pts, corners])
    with torch.no_grad():
        values = evaluate_all(graph, torch.as_tensor(pts.reshape(len(pts), 1, -1)),
                              dtype=torch.float64)
    return {k: v.reshape(len(pts), -1).numpy() for k, v in values.items()}


PRE = ("l0", "l1", "l2", "l3")


@pytest.mark.parametrize("seed, milp", [(0, False), (1, False), (2, False),
                                        pytest.param(0, True, marks=pytest.mark.slow),
                                        pytest.param(1, True, marks=pytest.mark.slow)])
def test_tightened_intervals_are_sound_and_never_looser_than_crown(seed, milp):
    graph = mlp([4, 12, 12, 12, 12, 2], seed)
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-1, 1, size=4)
    lower, upper = centre - 0.6, centre + 0.6
    start = crown_intervals(graph, lower, upper)
    new, stats = refine_intermediate_bounds(graph, lower, upper, start, layers=4,
                                            deadline=time.monotonic() + 60, milp=milp,
                                            neuron_time_s=0.5)
    assert stats["empty"] == 0 and stats["complete"]
    values = sampled_values(graph, lower, upper, 20000, seed)
    moved = 0
    for name in PRE:
        lo, hi = new[name]
        lo0, hi0 = start[name]
        assert np.all(lo >= lo0) and np.all(hi <= hi0)          # never looser
        assert np.all(lo <= hi)
        v = values[name]
        assert np.all(v >= lo) and np.all(v <= hi), name        # sound at every sample
        moved += int(np.sum((lo > lo0) | (hi < hi0)))
    for name in ("a0", "a1", "a2"):                             # outputs stay sound
        assert np.all(values[name] >= new[name][0]) and np.all(values[name] <= new[name][1])
    assert stats["lps"] > 0 and moved > 0                        # it did tighten something
    if milp:
        assert stats["milps"] > 0


def test_milp_is_at_least_as_tight_as_lp_on_the_second_layer():
    graph = mlp([3, 10, 10, 10, 2], 4)
    lower, upper = -np.ones(3) * 0.8, np.ones(3) * 0.8
    start = crown_intervals(graph, lower, upper)
    lp, _ = refine_intermediate_bounds(graph, lower, upper, start, layers=2,
                                       deadline=time.monotonic() + 60, milp=False)
    mip, stats = refine_intermediate_bounds(graph, lower, upper, start, layers=2,
                                            deadline=time.monotonic() + 60, milp=True,
                                            neuron_time_s=2.0)
    width_lp = np.sum(lp["l1"][1] - lp["l1"][0])
    width_mip = np.sum(mip["l1"][1] - mip["l1"][0])
    # the MILP bound is widened by its margin (1e-4 and relative 1e-6) but exact otherwise
    assert width_mip <= width_lp + 1e-3 * lp["l1"][0].size
    values = sampled_values(graph, lower, upper, 20000, 4)["l1"]
    assert np.all(values >= mip["l1"][0]) and np.all(values <= mip["l1"][1])


def test_a_bound_that_would_empty_the_interval_is_refused_and_logged(caplog):
    lo, hi = np.array([-1.0, -2.0]), np.array([1.0, 2.0])
    stats = {"empty": 0, "lp_tightened": 0}
    with caplog.at_level(logging.WARNING, logger="hybridver.backends.bound_refine"):
        _update(lo, hi, 0, 1.0, 1.5, stats, "lp")      # lower bound 1.5 > upper 1
        _update(lo, hi, 1, -1.0, 3.0, stats, "lp")     # upper bound -3 < lower -2
    assert stats["empty"] == 2 and stats["lp_tightened"] == 0
    np.testing.assert_array_equal(lo, [-1.0, -2.0])
    np.testing.assert_array_equal(hi, [1.0, 2.0])
    assert "empty" in caplog.text
    _update(lo, hi, 0, 1.0, 0.25, stats, "lp")         # a real tightening is taken
    assert lo[0] == 0.25 and stats["lp_tightened"] == 1
    _update(lo, hi, 0, 1.0, -np.inf, stats, "lp")      # no bound: nothing changes
    assert lo[0] == 0.25


def test_store_never_intersects_to_an_empty_interval(caplog):
    graph = mlp([2, 3, 3, 1], 0)

    class Site:
        operand, node, op = "l0", "a0", OpKind.RELU

    current = {"l0": (np.array([-1.0, 0.0, -3.0]), np.array([1.0, 2.0, -1.0])),
               "a0": (np.zeros(3), np.array([1.0, 2.0, 0.0]))}
    stats = {"empty": 0}
    with caplog.at_level(logging.WARNING, logger="hybridver.backends.bound_refine"):
        _store(graph, current, Site, np.array([-0.5, 3.0, -2.0]),
               np.array([0.5, 4.0, -1.5]), stats)
    assert stats["empty"] == 1 and "empty" in caplog.text
    np.testing.assert_array_equal(current["l0"][0], [-0.5, 0.0, -2.0])
    np.testing.assert_array_equal(current["l0"][1], [0.5, 2.0, -1.5])   # neuron 1 kept
    np.testing.assert_array_equal(current["a0"][1], [0.5, 2.0, 0.0])


def test_config_validates():
    with pytest.raises(ValueError):
        RefineConfig(layers=0)
    with pytest.raises(ValueError):
        RefineConfig(time_share=0.0)
    assert RefineConfig().enabled
