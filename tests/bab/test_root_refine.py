"""Activation splitting with LP-tightened root intervals (bab/root_refine.py): a case with
a known counterexample is never proven, proofs agree with dense sampling, the tightening
runs only on the networks it is meant for, and every domain gets the intervals."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from hybridver.bab.activation_split import ActivationSplitConfig, activation_split_bab
from hybridver.bab.root_refine import with_root
from hybridver.bab_core import SearchStatus
from hybridver.backends.bound_refine import RefineConfig
from tests.bab.test_activation_split import mlp, outputs, violated_property

pytest.importorskip("highspy")

#: on for any ReLU network with an open root, whatever its size
FORCED = RefineConfig(min_relu_layers=1, min_unstable=0, time_share=0.5)


def _probe(graph, C, d):
    def probe(points: np.ndarray):
        y = outputs(graph, np.asarray(points, dtype=np.float64))
        bad = np.nonzero(np.all(y @ C.T + d <= 0, axis=1))[0]
        return int(bad[0]) if bad.size else None
    return probe


@pytest.mark.slow
@pytest.mark.parametrize("milp", [False, True])
def test_counterexample_never_proven_with_refined_root(milp):
    ran = 0
    for seed in range(3):
        graph = mlp([8, 16, 16, 16, 3], seed)
        lower, upper, C, d = violated_property(graph, 8, seed)
        config = ActivationSplitConfig(batch_size=64, max_domains=20000,
                                       refine=RefineConfig(min_relu_layers=1, min_unstable=0,
                                                           time_share=0.5, milp=milp))
        for probe in (None, _probe(graph, C, d)):
            out = activation_split_bab(graph, lower, upper, C, d, [slice(0, 1)],
                                       time.monotonic() + 3.0, probe=probe, config=config)
            assert out.status is not SearchStatus.PROVEN
            ran += out.stats.refine.get("lps", 0) > 0
            if probe is None:
                assert out.status in (SearchStatus.TIMEOUT, SearchStatus.EXHAUSTED)
    assert ran >= 1          # the refined path was taken


@pytest.mark.slow
def test_refinement_ran_and_proofs_agree_with_dense_sampling():
    """3-ReLU-layer nets on 2 inputs, thresholds around the sampled minimum: the root is
    refined (LPs solved), and whenever the search proves, the dense grid agrees."""
    proven = refined = 0
    for seed in range(3):
        graph = mlp([2, 10, 10, 10, 3], seed)
        g = np.linspace(-1, 1, 301)
        pts = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
        y = outputs(graph, pts)
        true_min = float((y[:, 0] - y[:, 1]).min())
        # the holding threshold gets time enough on a loaded machine (it returns when
        # proven); the violated one can only run out its 2 s
        for t, seconds in ((true_min - 0.2, 60.0), (true_min + 1e-3, 2.0)):
            out = activation_split_bab(graph, -np.ones(2), np.ones(2),
                                       np.array([[1.0, -1.0, 0.0]]), np.array([-t]),
                                       [slice(0, 1)], time.monotonic() + seconds,
                                       config=ActivationSplitConfig(refine=FORCED))
            refined += out.stats.refine.get("lps", 0) > 0
            if out.status is SearchStatus.PROVEN:
                proven += 1
                assert true_min > t
    assert proven >= 1 and refined >= 1


def test_refinement_only_where_configured():
    graph = mlp([8, 16, 16, 3], 0)        # two ReLU layers: below min_relu_layers
    lower, upper, C, d = violated_property(graph, 8, 0)
    out = activation_split_bab(graph, lower, upper, C, d, [slice(0, 1)],
                               time.monotonic() + 1.0)
    assert "not a ReLU network" in out.stats.refine.get("skipped", "")
    off = ActivationSplitConfig(refine=RefineConfig(enabled=False))
    out = activation_split_bab(graph, lower, upper, C, d, [slice(0, 1)],
                               time.monotonic() + 1.0, config=off)
    assert out.stats.refine == {"skipped": "disabled"}


def test_every_domain_gets_the_root_intervals():
    root = {"p": (torch.tensor([[-1.0, 0.5]]), torch.tensor([[1.0, 2.0]]))}
    restr = {"q": (torch.zeros(3, 1), torch.ones(3, 1)),
             "p": (torch.tensor([[-np.inf, 1.0], [0.0, -np.inf], [-np.inf, -np.inf]],
                                dtype=torch.float64),
                   torch.tensor([[np.inf, np.inf], [np.inf, 1.5], [np.inf, np.inf]],
                                dtype=torch.float64))}
    out = with_root(restr, {"p": (root["p"][0].double(), root["p"][1].double())}, 3)
    assert torch.equal(out["q"][0], restr["q"][0])
    assert out["p"][0].tolist() == [[-1.0, 1.0], [0.0, 0.5], [-1.0, 0.5]]
    assert out["p"][1].tolist() == [[1.0, 2.0], [1.0, 1.5], [1.0, 2.0]]
    only_root = with_root({}, root, 2)
    assert only_root["p"][0].shape == (2, 2)


def test_known_intervals_tighten_without_split_multipliers():
    """``compute_bounds(known=...)``: sound intervals intersected in (the bound is at least
    as tight and still below every sampled output) without beta multipliers."""
    from hybridver.bounds import BoundConfig, compute_bounds
    from hybridver.bounds.options import BoundMethod

    graph = mlp([4, 12, 12, 12, 3], 1)
    lower, upper = -np.ones(4) * 0.7, np.ones(4) * 0.7
    crown = compute_bounds(graph, lower[None], upper[None], config=BoundConfig(
        method=BoundMethod.CROWN))
    from hybridver.backends.bound_refine import refine_intermediate_bounds

    start = {k: (v.lower.reshape(-1).numpy(), v.upper.reshape(-1).numpy())
             for k, v in crown.intervals.items() if k in graph}
    new, _ = refine_intermediate_bounds(graph, lower, upper, start, 3,
                                        time.monotonic() + 30)
    known = {p: (torch.as_tensor(new[p][0])[None], torch.as_tensor(new[p][1])[None])
             for p in ("l1", "l2")}
    C = np.array([[1.0, -1.0, 0.0]])
    config = BoundConfig(method=BoundMethod.ALPHA_BETA_CROWN)
    plain = compute_bounds(graph, lower[None], upper[None], C, config=config,
                           bound_upper=False)
    with_known = compute_bounds(graph, lower[None], upper[None], C, config=config,
                                bound_upper=False, known=known)
    assert with_known.stats["split_nodes"] == 0
    for p in ("l1", "l2"):
        assert torch.all(with_known.intervals[p].lower >= known[p][0])
        assert torch.all(with_known.intervals[p].upper <= known[p][1])
    pts = lower + (upper - lower) * np.random.default_rng(0).random((20000, 4))
    y = outputs(graph, pts) @ C.T
    assert float(with_known.lower[0, 0]) <= y.min() and float(plain.lower[0, 0]) <= y.min()
