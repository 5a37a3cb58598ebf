"""Activation-splitting branch-and-bound: soundness on properties with known
counterexamples (ReLU and sigmoid), completeness on a property whole-box CROWN cannot
prove, sigmoid split points, and the dropping of infeasible domains."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from hybridver.bab.activation_split import ActivationSplitConfig, activation_split_bab
from hybridver.bab.branching import _candidates, _choose_splits
from hybridver.bab.neuron_domains import _affine_rows, _restrictions, _tighten_boxes
from hybridver.bab_core import SearchStatus
from hybridver.bab.input_split import disjunct_margins
from hybridver.bounds import BoundConfig, compute_bounds
from hybridver.bounds.plan import get_plan
from hybridver.bounds.options import BoundMethod
from hybridver.ir import NetworkGraph, Node, OpKind, evaluate
from hybridver.relaxations.base import get_relaxation

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CROWN = BoundConfig(method=BoundMethod.CROWN)


def mlp(widths: list[int], seed: int, act: OpKind = OpKind.RELU) -> NetworkGraph:
    rng = np.random.default_rng(seed)
    nodes = [Node("x", OpKind.INPUT, shape=(1, widths[0]))]
    prev = "x"
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        nodes.append(Node(f"l{i}", OpKind.LINEAR, (prev,), consts={
            "weight": rng.normal(size=(b, a)) * 1.5 / np.sqrt(a),
            "bias": rng.normal(size=b) * 0.3}, shape=(1, b)))
        prev = f"l{i}"
        if i < len(widths) - 2:
            nodes.append(Node(f"a{i}", act, (prev,), shape=(1, b)))
            prev = f"a{i}"
    return NetworkGraph(nodes, ["x"], [prev])


def outputs(graph: NetworkGraph, points: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        y = evaluate(graph, torch.as_tensor(points.reshape(len(points), 1, -1)),
                     dtype=torch.float64)
    return y.reshape(len(points), -1).numpy()


def violated_property(graph: NetworkGraph, n_in: int, seed: int):
    """A box and ``y0 - y1 - t > 0`` with a known counterexample inside the box: the
    sampled point minimizing ``y0 - y1`` violates it by 1e-3."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-1, 1, size=(20000, n_in))
    y = outputs(graph, pts)
    k = int(np.argmin(y[:, 0] - y[:, 1]))
    t = float(y[k, 0] - y[k, 1]) + 1e-3
    lower, upper = pts[k] - 0.15, pts[k] + 0.15
    C = np.array([[1.0, -1.0, 0.0]])
    d = np.array([-t])
    assert float((outputs(graph, pts[k:k + 1]) @ C.T + d)[0, 0]) < 0  # the counterexample
    return lower, upper, C, d


def test_relu_counterexample_never_proven():
    for seed in range(3):
        graph = mlp([10, 16, 16, 3], seed)
        lower, upper, C, d = violated_property(graph, 10, seed)
        out = activation_split_bab(graph, lower, upper, C, d, [slice(0, 1)],
                                   time.monotonic() + 2.5,
                                   config=ActivationSplitConfig(batch_size=64,
                                                                max_domains=20000))
        assert out.status is not SearchStatus.PROVEN
        assert out.status in (SearchStatus.TIMEOUT, SearchStatus.EXHAUSTED)
        assert out.stats.domains_bounded > 1


def test_sigmoid_counterexample_never_proven():
    for seed in range(2):
        graph = mlp([10, 12, 12, 3], seed, OpKind.SIGMOID)
        lower, upper, C, d = violated_property(graph, 10, seed)
        out = activation_split_bab(graph, lower, upper, C, d, [slice(0, 1)],
                                   time.monotonic() + 2.5,
                                   config=ActivationSplitConfig(batch_size=64,
                                                                max_domains=5000))
        assert out.status is not SearchStatus.PROVEN
        assert out.stats.domains_bounded > 1


def test_proofs_agree_with_dense_sampling():
    """On 2-input nets, thresholds around the sampled minimum: whenever the BaB proves,
    the dense grid must agree (a Lipschitz margin is not needed for this direction)."""
    proven = 0
    for seed in range(4):
        graph = mlp([2, 8, 8, 3], seed)
        g = np.linspace(-1, 1, 301)
        pts = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
        y = outputs(graph, pts)
        true_min = float((y[:, 0] - y[:, 1]).min())
        # the holding threshold gets time enough to be proven on a loaded machine (it
        # returns when proven); the violated one can only run out its 1.5 s
        for t, seconds in ((true_min - 0.05, 30.0), (true_min + 1e-3, 1.5)):
            out = activation_split_bab(graph, -np.ones(2), np.ones(2),
                                       np.array([[1.0, -1.0, 0.0]]), np.array([-t]),
                                       [slice(0, 1)], time.monotonic() + seconds)
            if out.status is SearchStatus.PROVEN:
                proven += 1
                assert true_min > t
    assert proven >= 1


def test_tiny_relu_needs_branching_and_is_proven():
    from hybridver.api import load_model, load_spec
    from hybridver.pipeline.whole_box import StackedCase

    model = load_model(EXAMPLES / "tiny_relu.onnx")
    spec = load_spec(EXAMPLES / "tiny_relu.vnnlib", model)
    case = spec.cases[0]
    st = StackedCase.of(case)
    whole = compute_bounds(model.graph, case.region.lower[None], case.region.upper[None], st.C,
                           st.d, config=CROWN, bound_upper=False)
    assert float(disjunct_margins(whole.lower, st.groups)[0]) <= 0  # CROWN alone fails
    # the no-beta path (CROWN bounds) must branch
    out = activation_split_bab(model.graph, case.region.lower, case.region.upper, st.C, st.d,
                               st.groups, time.monotonic() + 30.0,
                               config=ActivationSplitConfig(method=BoundMethod.CROWN))
    assert out.status is SearchStatus.PROVEN
    assert out.stats.method == "crown"
    assert out.stats.domains_bounded > 1
    assert out.stats.max_depth >= 1       # neurons were split
    assert out.stats.infeasible > 0       # contradictory domains were dropped
    # the default for ReLU networks (alpha-beta-CROWN) proves it too
    out = activation_split_bab(model.graph, case.region.lower, case.region.upper, st.C, st.d,
                               st.groups, time.monotonic() + 30.0)
    assert out.status is SearchStatus.PROVEN
    assert out.stats.method == "alpha-beta-crown"


def test_sigmoid_split_uses_table_point_inside_interval():
    graph = mlp([4, 10, 10, 3], 5, OpKind.SIGMOID)
    plan = get_plan(graph, torch.float64, torch.device("cpu"))
    cands = _candidates(graph, plan)
    assert [c.pre for c in cands] == ["l0", "l1"]
    lower, upper = -np.ones((1, 4)) * 1.5, np.ones((1, 4))
    res = compute_bounds(graph, lower, upper, np.array([[1.0, -1.0, 0.0]]), np.zeros(1),
                         config=CROWN, bound_upper=False)
    ci, fi, pt = _choose_splits(plan, res.intervals, cands, None, 1, 1e-9)
    assert int(ci[0]) >= 0
    cand = cands[int(ci[0])]
    itv = res.intervals[cand.pre]
    lo = itv.lower.reshape(-1)[int(fi[0])]
    hi = itv.upper.reshape(-1)[int(fi[0])]
    p = float(pt[0])
    assert float(lo) < p < float(hi)
    relax = get_relaxation(OpKind.SIGMOID)
    expected = float(relax.branch_point(lo[None], hi[None], {})[0])
    assert p == expected
    # over all neurons, the table point differs from the midpoint somewhere
    all_lo, all_hi = itv.lower.reshape(-1), itv.upper.reshape(-1)
    pts = relax.branch_point(all_lo, all_hi, {})
    assert bool(((all_lo < pts) & (pts < all_hi)).all())
    assert bool((pts - (all_lo + all_hi) / 2).abs().max() > 1e-6)


def test_contradictory_restrictions_are_infeasible_and_dropped():
    """x in [-1, 1]; h0 = x, h1 = relu(h0) - 0.5.  The domain {h0 <= 0, h1 >= 0} is empty."""
    nodes = [Node("x", OpKind.INPUT, shape=(1, 1)),
             Node("h0", OpKind.LINEAR, ("x",), consts={"weight": np.array([[1.0]]),
                                                         "bias": np.zeros(1)}, shape=(1, 1)),
             Node("r0", OpKind.RELU, ("h0",), shape=(1, 1)),
             Node("h1", OpKind.LINEAR, ("r0",), consts={"weight": np.array([[1.0]]),
                                                         "bias": np.array([-0.5])}, shape=(1, 1)),
             Node("r1", OpKind.RELU, ("h1",), shape=(1, 1)),
             Node("y", OpKind.LINEAR, ("r1",), consts={"weight": np.array([[1.0], [-1.0]]),
                                                        "bias": np.zeros(2)}, shape=(1, 2))]
    graph = NetworkGraph(nodes, ["x"], ["y"])
    plan = get_plan(graph, torch.float64, torch.device("cpu"))
    cands = _candidates(graph, plan)
    assert [c.pre for c in cands] == ["h0", "h1"]
    domains = [((0, 0, True, 0.0), (1, 0, False, 0.0)),   # h0 <= 0 and h1 >= 0: empty
               ((0, 0, False, 0.0), (1, 0, False, 0.0))]  # h0 >= 0 and h1 >= 0: x >= 0.5
    restr = _restrictions(cands, domains, "cpu")
    res = compute_bounds(graph, -np.ones((2, 1)), np.ones((2, 1)), np.array([[1.0, 0.0]]),
                         np.zeros(1), config=CROWN, restrictions=restr, bound_upper=False)
    assert res.infeasible.tolist() == [True, False]
    # the full loop drops such domains: y0 = relu(relu(x) - 0.5) >= -t holds for t > 0
    out = activation_split_bab(graph, -np.ones(1), np.ones(1), np.array([[1.0, 0.0]]),
                               np.array([1e-3]), [slice(0, 1)], time.monotonic() + 10.0)
    assert out.status is SearchStatus.PROVEN


def test_box_tightening_keeps_every_satisfying_input():
    """Decisions on first-layer neurons shrink the input box; sampled inputs of the box
    that satisfy the decisions must stay inside, and the box must really shrink."""
    graph = mlp([6, 12, 8, 3], 3)
    plan = get_plan(graph, torch.float64, torch.device("cpu"))
    cands = _candidates(graph, plan)
    affine = _affine_rows(graph, cands)
    assert list(affine) == [0]  # only the first layer is affine in the input
    w, b = affine[0]
    rng = np.random.default_rng(0)
    lo, hi = -np.ones((1, 6)), np.ones((1, 6))
    pts = rng.uniform(-1, 1, size=(200000, 6))
    pre = pts @ w.T + b
    shrunk = 0
    for trial in range(20):
        picks = rng.choice(12, size=3, replace=False)
        dec = tuple((0, int(f), bool(rng.random() < 0.5), float(rng.normal() * 0.3))
                    for f in picks)
        tlo, thi = _tighten_boxes(torch.as_tensor(lo), torch.as_tensor(hi), [dec],
                                  {0: (torch.as_tensor(w), b)})
        tlo, thi = tlo.numpy()[0], thi.numpy()[0]
        keep = np.ones(len(pts), dtype=bool)
        for _, f, up, p in dec:
            keep &= (pre[:, f] <= p) if up else (pre[:, f] >= p)
        if keep.any():
            assert (pts[keep] >= tlo).all() and (pts[keep] <= thi).all()
        shrunk += int((tlo > -1).any() or (thi < 1).any())
    assert shrunk > 0


# ----------------------------------------------------------------- counterexample search
def bump_net(centre: np.ndarray, radius: float, threshold: float) -> NetworkGraph:
    """``y = relu(1 - |x - centre|_1 / radius) - threshold``: positive only in a small
    L1 ball around ``centre``, flat (zero gradient) everywhere else."""
    n = centre.size
    eye = np.eye(n)
    nodes = [Node("x", OpKind.INPUT, shape=(1, n)),
             Node("l0", OpKind.LINEAR, ("x",), consts={
                 "weight": np.concatenate([eye, -eye]),
                 "bias": np.concatenate([-centre, centre])}, shape=(1, 2 * n)),
             Node("a0", OpKind.RELU, ("l0",), shape=(1, 2 * n)),
             Node("l1", OpKind.LINEAR, ("a0",), consts={
                 "weight": np.full((1, 2 * n), -1.0 / radius), "bias": np.ones(1)},
                 shape=(1, 1)),
             Node("a1", OpKind.RELU, ("l1",), shape=(1, 1)),
             Node("y", OpKind.LINEAR, ("a1",), consts={
                 "weight": np.ones((1, 1)), "bias": np.array([-threshold])}, shape=(1, 1))]
    return NetworkGraph(nodes, ["x"], ["y"])


def ir_probe(graph: NetworkGraph, C: np.ndarray, d: np.ndarray, lower, upper, seen: list):
    """A probe that confirms on the IR (the tests' stand-in for the real model): inside
    the box and ``C y + d <= 0``."""
    def probe(points: np.ndarray):
        seen.append(points.copy())
        assert points.ndim == 2 and points.shape[1] == lower.size
        inside = np.all((points >= lower) & (points <= upper), axis=1)
        rows = outputs(graph, points) @ C.T + d
        ok = np.nonzero(inside & np.all(rows <= 0, axis=1))[0]
        return int(ok[0]) if ok.size else None
    return probe


def test_hidden_counterexample_found_by_domain_attacks():
    """10 inputs, a violation only within L1 distance 0.025 of a random centre: sampling and
    whole-box PGD miss it (zero gradient outside); the BaB's per-domain attacks, started
    at the corner minimizing each domain's linear bound inside the shrunk boxes, find it.
    Without a probe the BaB must still never claim proven."""
    from hybridver.bab.attack import pgd_attack
    from hybridver.config import AttackConfig
    from hybridver.specs import InputBox, OutputConstraints, SpecCase

    rng = np.random.default_rng(11)
    centre = rng.uniform(-0.6, 0.6, size=10)
    graph = bump_net(centre, 0.05, 0.5)
    lower, upper = -np.ones(10), np.ones(10)
    C, d = np.array([[-1.0]]), np.array([0.0])     # unsafe: y >= 0
    case = SpecCase(InputBox(lower, upper), (OutputConstraints(C, d),))

    def margin(x):
        return float((outputs(graph, x[None]) @ C.T + d)[0, 0])

    candidates = pgd_attack(graph, case, AttackConfig(), time.monotonic() + 30.0)
    assert candidates and all(margin(c.x) > 0
                              for c in candidates)           # whole-box PGD misses
    pts = rng.uniform(-1, 1, size=(20000, 10))
    assert np.all(outputs(graph, pts) @ C.T + d > 0)                # so does sampling

    seen: list = []
    out = activation_split_bab(graph, lower, upper, C, d, [slice(0, 1)],
                               time.monotonic() + 30.0,
                               ir_probe(graph, C, d, lower, upper, seen),
                               ActivationSplitConfig(batch_size=32, probe_every=1))
    assert out.status is SearchStatus.COUNTEREXAMPLE
    x = out.counterexample_point
    assert np.all((x >= lower) & (x <= upper))
    assert margin(x) <= 0
    assert np.abs(x - centre).sum() <= 0.025 + 1e-9
    assert out.stats.probes > 0 and len(seen) == out.stats.attacks

    for method in (BoundMethod.CROWN, None):
        out = activation_split_bab(graph, lower, upper, C, d, [slice(0, 1)],
                                   time.monotonic() + 3.0,
                                   config=ActivationSplitConfig(batch_size=32, method=method))
        assert out.status in (SearchStatus.TIMEOUT, SearchStatus.EXHAUSTED)
        assert out.stats.attacks == 0


def test_probe_rejections_never_end_the_search():
    """A probe that confirms nothing (the real model disagrees with every candidate):
    the BaB goes on and still never claims proven on a violated property."""
    graph = mlp([10, 16, 16, 3], 0)
    lower, upper, C, d = violated_property(graph, 10, 0)
    calls = []
    out = activation_split_bab(graph, lower, upper, C, d, [slice(0, 1)],
                               time.monotonic() + 3.0,
                               lambda pts: calls.append(len(pts)),
                               ActivationSplitConfig(batch_size=64, probe_every=2))
    assert out.status in (SearchStatus.TIMEOUT, SearchStatus.EXHAUSTED)
    assert calls and out.stats.attacks == len(calls)


def test_relu_beside_sigmoid_uses_alpha_beta_and_stays_sound():
    """A ReLU layer then a sigmoid layer (dist_shift's mix): the default method is
    alpha-beta-CROWN (the sigmoid's splits get multipliers too); it proves a threshold
    below the true minimum and never one above it (a sampled point violates)."""
    graph = mlp([3, 12, 12, 3], 7)
    nodes = [n if n.name != "a1" else Node("a1", OpKind.SIGMOID, n.inputs, shape=n.shape)
             for n in graph.nodes()]
    graph = NetworkGraph(nodes, ["x"], [graph.output_node.name])
    rng = np.random.default_rng(1)
    pts = rng.uniform(-1, 1, size=(20000, 3))
    y = outputs(graph, pts)
    true_min = float((y[:, 0] - y[:, 1]).min())
    C = np.array([[1.0, -1.0, 0.0]])
    below = activation_split_bab(graph, -np.ones(3), np.ones(3), C, np.array([-(true_min - 0.1)]),
                                 [slice(0, 1)], time.monotonic() + 60.0)
    assert below.stats.method == "alpha-beta-crown"
    assert below.status is SearchStatus.PROVEN
    above = activation_split_bab(graph, -np.ones(3), np.ones(3), C,
                                 np.array([-(true_min + 1e-3)]), [slice(0, 1)],
                                 time.monotonic() + 3.0)
    assert above.status is not SearchStatus.PROVEN
