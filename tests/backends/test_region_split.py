"""Region splitting (backends/region_split.py), its LPs (backends/polytope_lp.py), the chain form
(ir/relu_chain.py), CROWN's pointwise linear bound (BoundResult.input_offset) and the
``regions`` back end.

The "diamond" network is a chain (linear, relu, linear, relu, linear) whose output is
``sum_k relu(1 - |x - c_k|_1 / R) - threshold``: with a threshold below 1 a counterexample
(``y >= 0``) exists only in diamonds of L1 radius ``R = 1e-3`` (sampling misses them);
above 1 the property holds.  Region splitting must never prove the first.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hybridver
from hybridver.backends.base import Limits, Status, get_backend
from hybridver.backends.polytope_lp import (bounding_box, dual_bound, min_max_over_polytope,
                                       propagate_cut)
from hybridver.bounds.engine import compute_bounds
from hybridver.bounds.options import BoundConfig
from hybridver.config import AttackConfig, Event, Schedule, VerifyConfig
from hybridver.ir.relu_chain import ReluChain
from hybridver.problem import Subproblem
from hybridver.result import Verdict
from hybridver.specs import InputBox, OutputConstraints, Spec, SpecCase
from tests.pipeline.test_verify_hybrid import P, Q, R, _model as bumps_model

pytest.importorskip("highspy")

NO_ATTACK = AttackConfig(samples=0, rounds=0)


class Diamonds(torch.nn.Sequential):
    def __init__(self, centres, threshold: float):
        k = len(centres)
        first, second, last = (torch.nn.Linear(2, 4 * k).double(),
                               torch.nn.Linear(4 * k, k).double(), torch.nn.Linear(k, 1).double())
        with torch.no_grad():
            block = torch.tensor([[1., 0.], [-1., 0.], [0., 1.], [0., -1.]], dtype=torch.float64)
            first.weight.copy_(block.repeat(k, 1))
            first.bias.copy_(torch.cat([torch.tensor([-c[0], c[0], -c[1], c[1]],
                                                     dtype=torch.float64) for c in centres]))
            second.weight.zero_()
            for i in range(k):
                second.weight[i, 4 * i: 4 * i + 4] = -1.0 / R
            second.bias.fill_(1.0)
            last.weight.fill_(1.0)
            last.bias.fill_(-threshold)
        super().__init__(first, torch.nn.ReLU(), second, torch.nn.ReLU(), last)


def _diamonds(threshold: float):
    module = Diamonds([P, Q], threshold)
    return module, hybridver.from_module(module, torch.zeros(1, 2, dtype=torch.float64))


def _problem(model) -> Subproblem:
    box = InputBox(np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    return Subproblem(model.graph, box, OutputConstraints(np.array([[-1.0]]), np.array([0.0])))


# ---------------------------------------------------------------------------- chain form
def test_chain_form_of_a_sequential_relu_network_and_none_otherwise():
    _, model = _diamonds(0.5)
    chain = ReluChain.of(model.graph)
    assert chain is not None and chain.n_hidden == 2
    assert [w.shape for w in chain.weights] == [(8, 2), (2, 8), (1, 2)]
    assert ReluChain.of(bumps_model([P, Q], 0.5).graph) is None   # ends in a sum, not linear


def test_affine_map_matches_the_network_where_the_phases_hold():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.ReLU(), torch.nn.Linear(6, 5),
                              torch.nn.ReLU(), torch.nn.Linear(5, 2)).double()
    chain = ReluChain.of(hybridver.from_module(net, torch.zeros(1, 3, dtype=torch.float64)).graph)
    x = np.random.default_rng(1).uniform(-1, 1, (50, 3))
    with torch.no_grad():
        z1 = net[0](torch.as_tensor(x))
        z2 = net[2](torch.relu(z1))
        y = net(torch.as_tensor(x))
    for i in range(len(x)):
        phases = [z1[i].numpy() >= 0, z2[i].numpy() >= 0]
        A, a, radius = chain.affine_map(1, phases[:1], np.ones(3))
        assert np.all(np.abs(A @ x[i] + a - z2[i].numpy()) <= radius + 1e-12)
        A, a, radius = chain.affine_map(2, phases, np.ones(3))
        assert np.all(np.abs(A @ x[i] + a - y[i].numpy()) <= radius + 1e-12)


# ------------------------------------------------------------------------------ LP bounds
def _random_polytope(rng, n=3, k=4):
    lo, hi = -np.ones(n), np.ones(n)
    centre = rng.uniform(-0.3, 0.3, n)
    G = rng.normal(size=(k, n))
    h = G @ centre + rng.uniform(0.1, 0.5, k)   # the centre is inside
    return G, h, lo, hi


def _points_inside(rng, G, h, lo, hi, count=20000):
    x = rng.uniform(lo, hi, (count, len(lo)))
    return x[np.all(x @ G.T <= h, axis=1)]


@pytest.mark.parametrize("seed", range(6))
def test_polytope_min_max_bound_is_below_every_point_and_near_the_optimum(seed):
    rng = np.random.default_rng(seed)
    G, h, lo, hi = _random_polytope(rng)
    lam, c = rng.normal(size=(3, 3)), rng.normal(size=3)
    result = min_max_over_polytope(lam, c, G, h, lo, hi)
    x = _points_inside(rng, G, h, lo, hi)
    values = (x @ lam.T + c).max(axis=1)
    assert result.lower <= values.min()
    best = (result.point @ lam.T + c).max()
    assert result.lower <= best <= result.lower + 1e-6   # tight: the dual bound meets the LP
    assert result.lower >= values.min() - 0.2           # and not trivially loose


def test_dual_bound_with_any_multipliers_is_still_a_lower_bound():
    rng = np.random.default_rng(7)
    G, h, lo, hi = _random_polytope(rng)
    lam, c = rng.normal(size=(2, 3)), rng.normal(size=2)
    x = _points_inside(rng, G, h, lo, hi)
    true_min = (x @ lam.T + c).max(axis=1).min()
    for _ in range(50):
        w, y = rng.uniform(-1, 3, 2), rng.uniform(-1, 3, 4)
        assert dual_bound(lam, c, G, h, lo, hi, w, y) <= true_min


def test_an_empty_polytope_is_proven_empty_and_boxes_contain_the_polytope():
    lo, hi = -np.ones(2), np.ones(2)
    G = np.array([[1.0, 0.0], [-1.0, 0.0]])
    h = np.array([-0.5, -0.5])          # x0 <= -0.5 and x0 >= 0.5
    assert min_max_over_polytope(np.ones((1, 2)), np.zeros(1), G, h, lo, hi).lower == math.inf
    assert bounding_box(G, h, lo, hi) is None
    rng = np.random.default_rng(3)
    for _ in range(5):
        G, h, lo, hi = _random_polytope(rng)
        x = _points_inside(rng, G, h, lo, hi)
        box = bounding_box(G, h, lo, hi)
        assert box is not None and np.all(x >= box.lower) and np.all(x <= box.upper)
        assert np.all(box.upper - box.lower <= hi - lo)
        one = propagate_cut(G[0], h[0], lo, hi)
        assert one is not None and np.all(x >= one[0]) and np.all(x <= one[1])


# ------------------------------------------------------------------ pointwise CROWN bound
@pytest.mark.parametrize("seed", range(3))
def test_crown_linear_bound_holds_at_every_sampled_point_with_restrictions(seed):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 12), torch.nn.ReLU(), torch.nn.Linear(12, 12),
                              torch.nn.ReLU(), torch.nn.Linear(12, 3))
    model = hybridver.from_module(net, torch.zeros(1, 4))
    chain = ReluChain.of(model.graph)
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-1, 0, (3, 4))
    hi = lo + rng.uniform(0.2, 1.0, (3, 4))
    C = rng.normal(size=(2, 3))
    d = rng.normal(size=2)
    first = chain.pre_names[0]
    rl = np.full((3, 1, 12), -np.inf) if model.graph.node(first).shape == (1, 12) \
        else np.full((3, 12), -np.inf)
    ru = np.full_like(rl, np.inf)
    rl.reshape(3, -1)[:, 0] = 0.0         # first neuron active, second inactive
    ru.reshape(3, -1)[:, 1] = 0.0
    result = compute_bounds(model.graph, lo, hi, C, d, config=BoundConfig(method="crown"),
                            restrictions={first: (rl, ru)}, bound_upper=False,
                            input_coefficients=True)
    coef, offset = result.input_coef.numpy(), result.input_offset.numpy()
    for b in range(3):
        x = rng.uniform(lo[b], hi[b], (20000, 4))
        with torch.no_grad():
            z = net[0](torch.as_tensor(x, dtype=torch.float32)).numpy()
            y = net(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
        keep = (z[:, 0] >= 0) & (z[:, 1] <= 0)
        rows = y[keep] @ C.T + d
        linear = x[keep] @ coef[b].T + offset[b]
        assert np.all(linear <= rows + 1e-5)   # float32 evaluation of the real network


# --------------------------------------------------------------------- the back end
def test_regions_backend_never_proves_a_hidden_counterexample_and_proves_the_safe_case():
    backend = get_backend("regions")
    module, model = _diamonds(0.5)
    outcome = backend.solve(_problem(model), Limits(time_s=60))
    assert outcome.status is not Status.INFEASIBLE
    assert outcome.status is Status.CANDIDATE
    x = outcome.candidate.x
    with torch.no_grad():
        y = float(module(torch.as_tensor(x)[None]))
    assert y >= 0 and np.all(np.abs(x) <= 1)
    _, safe = _diamonds(1.5)
    assert backend.solve(_problem(safe), Limits(time_s=60)).status is Status.INFEASIBLE


def test_regions_backend_answers_unknown_for_a_graph_that_is_not_a_chain():
    outcome = get_backend("regions").solve(_problem(bumps_model([P, Q], 0.5)), Limits(time_s=5))
    assert outcome.status is Status.UNKNOWN


@pytest.mark.parametrize("seed", range(4))
def test_regions_agree_with_milp_on_random_chains(seed):
    """Conformance: the same subproblems through ``regions`` and ``highs``; a decisive
    answer of one never contradicts the other."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 10), torch.nn.ReLU(), torch.nn.Linear(10, 10),
                              torch.nn.ReLU(), torch.nn.Linear(10, 2)).double()
    model = hybridver.from_module(net, torch.zeros(1, 3, dtype=torch.float64))
    with torch.no_grad():
        y0 = net(torch.zeros(1, 3, dtype=torch.float64))[0].numpy()
    box = InputBox(-0.5 * np.ones(3), 0.5 * np.ones(3))
    # y0 - y1 >= t with t near the value at the centre: some seeds hold, some are violated
    t = float(y0[0] - y0[1]) + (0.3 if seed % 2 else -0.05)
    problem = Subproblem(model.graph, box, OutputConstraints(np.array([[-1.0, 1.0]]),
                                                             np.array([t])))
    regions = get_backend("regions").solve(problem, Limits(time_s=60))
    milp = get_backend("highs").solve(problem, Limits(time_s=60))
    assert regions.status in (Status.INFEASIBLE, Status.CANDIDATE)
    assert {regions.status, milp.status} != {Status.INFEASIBLE, Status.CANDIDATE}
    if regions.status is Status.CANDIDATE:
        with torch.no_grad():
            y = net(torch.as_tensor(regions.candidate.x)[None])[0].numpy()
        assert -(y[0] - y[1]) + t <= 1e-6


def _diamond_spec() -> Spec:
    box = InputBox(np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    return Spec((SpecCase(box, (OutputConstraints(np.array([[-1.0]]), np.array([0.0])),)),),
                n_inputs=2, n_outputs=1)


def _useless_input_split(monkeypatch):
    """Input splitting whose bounds never prove anything (-inf is a sound lower bound) and
    whose probes never find anything: only the region race can decide."""
    import hybridver.pipeline.input_split as vh
    from hybridver.bab.input_split import Bounded

    original = vh.input_split_bab

    def crippled(bound_fn, lower, upper, groups, deadline, probe, *args, **kwargs):
        def no_bound(lo, hi, restrictions):
            return Bounded(torch.full((lo.shape[0], 1), -math.inf, dtype=torch.float64))
        return original(no_bound, lower, upper, groups, deadline, lambda points: None,
                        *args, **kwargs)
    monkeypatch.setattr(vh, "input_split_bab", crippled)


def test_the_region_race_alone_proves_a_safe_case_and_never_a_violated_one(monkeypatch):
    _useless_input_split(monkeypatch)
    config = VerifyConfig(timeout_s=60, attack=NO_ATTACK,
                          schedule=Schedule().at(Event.REGION_RACE, 0.0).without(Event.HANDOFF))
    result = hybridver.verify(_diamonds(0.5)[1], _diamond_spec(), config)
    assert result.verdict is not Verdict.UNSAT
    assert result.verdict is Verdict.SAT and result.counterexample.source == "regions"
    result = hybridver.verify(_diamonds(1.5)[1], _diamond_spec(), config)
    assert result.verdict is Verdict.UNSAT
    assert result.stats["input_split"]["region_races"] == {"proven": 1}


class Slab(torch.nn.Sequential):
    """``y = x_0 - (lower_0 + 1e-4) + 0.001 * relu(x_1)``: ``y <= 0`` only in a slab of
    width about 1e-4 against the face ``x_0 = -1`` of the box ``[-1, 1]^3``."""

    def __init__(self):
        first, last = torch.nn.Linear(3, 2).double(), torch.nn.Linear(2, 1).double()
        with torch.no_grad():
            first.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
            first.bias.copy_(torch.tensor([3.0, 0.0]))       # x_0 + 3 > 0 on the box
            last.weight.copy_(torch.tensor([[1.0, 0.001]]))
            last.bias.fill_(-3.0 + 1.0 - 1e-4)
        super().__init__(first, torch.nn.ReLU(), last)


def test_face_sampling_finds_a_slab_against_a_face_that_uniform_sampling_misses():
    from hybridver.bab.attack import face_candidates, sample_candidates

    model = hybridver.from_module(Slab(), torch.zeros(1, 3, dtype=torch.float64))
    box = InputBox(-np.ones(3), np.ones(3))
    spec = Spec((SpecCase(box, (OutputConstraints(np.array([[1.0]]), np.array([0.0])),)),),
                n_inputs=3, n_outputs=1)
    assert sample_candidates(model.graph, spec.cases[0], 256, 0) == []
    found = face_candidates(model.graph, spec.cases[0], 1000, 0)
    assert found and all(c.x[0] == -1.0 for c in found)
    result = hybridver.verify(model, spec, VerifyConfig(
        timeout_s=60, attack=AttackConfig(samples=256, rounds=0),
        schedule=Schedule().at(Event.FACE_ATTACK, 0.0).without(Event.REGION_RACE)))
    assert result.verdict is Verdict.SAT
