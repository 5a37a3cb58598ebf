"""Warm-started alphas/betas, filtered smart branching and the memory-sized batches of
activation splitting: sound bounds, valid split choices, and the right verdicts with
every combination of the switches."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hybridver.bab.activation_split import ActivationSplitConfig, activation_split_bab
from hybridver.bab.branching import _candidates, _choose_splits
from hybridver.bab.fsb import fsb_choose
from hybridver.bab.memory import available_memory_bytes, batch_size, domain_bytes
from hybridver.bab.neuron_domains import NeuronBatch, _restrictions
from hybridver.bab.warm_start import WarmStore
from hybridver.bab_core import SearchStatus
from hybridver.bounds import BoundConfig, compute_bounds
from hybridver.bounds.alpha import WarmStart, warm_start
from hybridver.bounds.options import AlphaConfig, BoundMethod
from hybridver.bounds.plan import get_plan
from tests.bab.test_activation_split import ir_probe, mlp, outputs, violated_property

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ABC = BoundConfig(method=BoundMethod.ALPHA_BETA_CROWN,
                  alpha=AlphaConfig(iterations=15, lr=0.3, patience=0))


def _satisfies(graph, points: np.ndarray, decisions, cands) -> np.ndarray:
    """Which points meet every decision (evaluated on the pre-activation nodes)."""
    from hybridver.ir import evaluate_all
    values = evaluate_all(graph, torch.as_tensor(points.reshape(len(points), 1, -1)),
                          dtype=torch.float64)
    ok = np.ones(len(points), dtype=bool)
    for ci, flat, upper, p in decisions:
        z = values[cands[ci].pre].reshape(len(points), -1)[:, flat].numpy()
        ok &= (z <= p) if upper else (z >= p)
    return ok


def test_warm_start_no_looser_than_cold_and_sound():
    """Root bounded once; its children (every unstable neuron of the first layer split
    both ways) bounded cold and warm (from the root's optimized values).  The warm
    bounds are, in sum, no looser than the cold ones, and both hold on sampled inputs
    that meet the children's decisions."""
    graph = mlp([6, 16, 16, 3], 4)
    plan = get_plan(graph, torch.float32, torch.device("cpu"))
    cands = _candidates(graph, plan)
    lower, upper = -np.ones((1, 6)) * 0.6, np.ones((1, 6)) * 0.6
    C = np.array([[1.0, -1.0, 0.0], [1.0, 0.0, -1.0]])
    d = np.array([0.5, 0.5])
    store = WarmStore(1 << 30)
    root = store.batch([None], 2)
    with warm_start(root):
        res = compute_bounds(graph, lower, upper, C, d, config=ABC, bound_upper=False)
    assert root.alphas                                   # the optimized values came back
    record = store.keep(root, torch.tensor([0]))
    assert record is not None and store.live == record.nbytes
    itv = res.intervals[cands[0].pre]
    unstable = torch.nonzero((itv.lower < 0) & (itv.upper > 0))[:, -1].tolist()[:6]
    assert unstable
    domains = [((0, f, side, 0.0),) for f in unstable for side in (True, False)]
    n = len(domains)
    restr = _restrictions(cands, domains, "cpu")
    lo, hi = np.repeat(lower, n, 0), np.repeat(upper, n, 0)
    cold = compute_bounds(graph, lo, hi, C, d, config=ABC, restrictions=restr,
                          bound_upper=False).lower
    warm = store.batch([(record, 0)] * n, 2)
    assert bool(warm.known.all()) and warm.fits(2, n)
    with warm_start(warm):
        hot = compute_bounds(graph, lo, hi, C, d, config=ABC, restrictions=restr,
                             bound_upper=False).lower
    finite = torch.isfinite(cold) & torch.isfinite(hot)
    assert float(hot[finite].sum()) >= float(cold[finite].sum()) - 1e-6
    rng = np.random.default_rng(0)
    pts = rng.uniform(lower, upper, size=(20000, 6))
    rows = outputs(graph, pts) @ C.T + d
    for i, dec in enumerate(domains):
        inside = _satisfies(graph, pts, dec, cands)
        assert inside.any()
        for bound in (cold, hot):
            assert np.all(rows[inside] >= bound[i].numpy() - 1e-5)


def test_warm_store_budget_and_release():
    """Over budget no record is kept (children start cold); a record's bytes are released
    once nothing refers to it."""
    warm = WarmStart(known=torch.zeros(2, dtype=torch.bool), m=1,
                     alphas={"a": (torch.rand(1, 2, 4), torch.rand(1, 2, 4))})
    assert WarmStore(0).keep(warm, torch.tensor([0, 1])) is None
    store = WarmStore(1 << 20)
    record = store.keep(warm, torch.tensor([1]))
    assert record is not None and store.live > 0
    batch = store.batch([None, (record, 0)], 1)
    assert batch.known.tolist() == [False, True]
    assert torch.allclose(batch.alphas["a"][0][:, 1], warm.alphas["a"][0][:, 1], atol=1e-2)
    del record
    import gc
    gc.collect()
    assert store.live == 0


def test_memory_batch_size():
    graph = mlp([6, 16, 16, 3], 0)
    plan = get_plan(graph, torch.float32, torch.device("cpu"))
    per = domain_bytes(plan, 2, True)
    assert per > 0
    assert batch_size(plan, 2, True, 1 << 40, 1000, available=4 * per * 10) == 10
    assert batch_size(plan, 2, True, per * 3, 1000, available=1 << 40) == 3
    assert batch_size(plan, 2, True, 1, 1000, available=1) == 1
    assert batch_size(plan, 2, True, 1 << 40, 7, available=1 << 40) == 7
    avail = available_memory_bytes()
    assert avail is None or avail > 0


def test_fsb_picks_a_valid_neuron_among_the_top_candidates():
    graph = mlp([6, 16, 16, 3], 2)
    plan = get_plan(graph, torch.float32, torch.device("cpu"))
    cands = _candidates(graph, plan)
    lower, upper = -np.ones((1, 6)) * 0.8, np.ones((1, 6)) * 0.8
    C, d = np.array([[1.0, -1.0, 0.0]]), np.array([0.0])
    config = ActivationSplitConfig(branching="fsb", fsb_candidates=4, probe_every=0)
    from hybridver.bab.activation_split import ActivationSplitting
    strat = ActivationSplitting(graph, lower[0], upper[0], C, d, [slice(0, 1)],
                                 time.monotonic() + 60, config, "cpu")
    b = strat.bound(NeuronBatch([(), ((0, 0, True, 0.0),)], [None, None], [-np.inf] * 2))
    assert b is not None and b.open_idx.numel() > 0
    ci, fi, pt = fsb_choose(graph, plan, cands, b, b.sens, C, d, [slice(0, 1)],
                            strat.bconfig, 4, 1e-9, "cpu")
    ci1, fi1, _ = _choose_splits(plan, b.res.intervals, cands, b.sens, len(b.domains), 1e-9)
    for i in b.open_idx.tolist():
        assert int(ci[i]) >= 0
        itv = b.res.intervals[cands[int(ci[i])].pre]
        lo = float(itv.lower.reshape(len(b.domains), -1)[i, int(fi[i])])
        hi = float(itv.upper.reshape(len(b.domains), -1)[i, int(fi[i])])
        assert lo < float(pt[i]) < hi                    # unstable, split inside
        assert int(ci1[i]) >= 0                          # BaBSR also had a choice


COMBOS = list(itertools.product((True, False), ("babsr", "fsb"), (None, 8)))


@pytest.mark.slow
@pytest.mark.parametrize("warm,branching,batch", COMBOS)
def test_verdicts_with_every_switch_combination(warm, branching, batch):
    from hybridver.api import load_model, load_spec
    from hybridver.pipeline.whole_box import StackedCase

    config = ActivationSplitConfig(warm_start=warm, branching=branching, batch_size=batch)
    # unsat (examples/tiny_relu: a dense-grid and Lipschitz proof in make_examples.py)
    model = load_model(EXAMPLES / "tiny_relu.onnx")
    case = load_spec(EXAMPLES / "tiny_relu.vnnlib", model).cases[0]
    st = StackedCase.of(case)
    out = activation_split_bab(model.graph, case.region.lower, case.region.upper, st.C,
                               st.d, st.groups, time.monotonic() + 60.0, config=config)
    assert out.status is SearchStatus.PROVEN
    # sat (a sampled point violates it): found with a probe, never proven without one
    graph = mlp([10, 16, 16, 3], 1)
    lower, upper, C, d = violated_property(graph, 10, 1)
    out = activation_split_bab(graph, lower, upper, C, d, [slice(0, 1)],
                               time.monotonic() + 60.0, ir_probe(graph, C, d, lower, upper, []),
                               config)
    assert out.status is SearchStatus.COUNTEREXAMPLE
    x = out.counterexample_point
    assert np.all((x >= lower) & (x <= upper))
    assert float((outputs(graph, x[None]) @ C.T + d)[0, 0]) <= 0
    out = activation_split_bab(graph, lower, upper, C, d, [slice(0, 1)],
                               time.monotonic() + 1.5, config=config)
    assert out.status in (SearchStatus.TIMEOUT, SearchStatus.EXHAUSTED)
