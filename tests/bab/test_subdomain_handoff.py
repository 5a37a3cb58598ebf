"""Hand-off of activation-splitting domains to exact back ends (bab/subdomain_handoff.py).

A 10-input MLP with three layers of 16 ReLUs (activation splitting, not input splitting).
What a domain's subproblem carries must contain every input of the domain; hand-off
proofs must agree with an independent MILP on the whole box; a counterexample that only
the hand-off can reach (no probe) is found and never proven away.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from hybridver.bab.activation_split import (ActivationSplitConfig, ActivationSplitting,
                                            activation_split_bab)
from hybridver.bab.neuron_domains import NeuronBatch
from hybridver.bab.subdomain_handoff import (SubdomainHandOff, SubdomainHandoffConfig,
                                             domain_subproblems)
from hybridver.bab_core import SearchStatus
from hybridver.backends.base import Limits, Status, get_backend
from hybridver.encode.subproblems import subproblem_bounds
from hybridver.ir.evaluate import evaluate_all
from hybridver.problem import Subproblem
from hybridver.schedule import InlineExecutor, Policy, PolicyConfig, Scheduler
from hybridver.schedule.scheduler import available_capabilities
from hybridver.specs import InputBox, OutputConstraints
from tests.bab.test_activation_split import mlp, outputs

pytest.importorskip("highspy")

WIDTHS = [10, 16, 16, 16, 3]
C = np.array([[1.0, -1.0, 0.0]])   # the property: y0 - y1 - t > 0 (violated: C y + d <= 0)


def _case(seed: int):
    graph = mlp(WIDTHS, seed)
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-0.5, 0.5, size=10)
    lower, upper = centre - 0.05, centre + 0.05
    pts = rng.uniform(lower, upper, size=(20000, 10))
    y = outputs(graph, pts)
    diff = y[:, 0] - y[:, 1]
    return graph, lower, upper, pts, diff


def _whole_box_milp(graph, lower, upper, t: float, row: np.ndarray = C):
    """The independent check: HiGHS on the whole box (no branching, interval bounds)."""
    box = InputBox(lower, upper)
    problem = Subproblem(graph, box, OutputConstraints(row, np.array([-t])),
                         subproblem_bounds(graph, box))
    return get_backend("highs").solve(problem, Limits(time_s=60.0))


def _proven_threshold(graph, lower, upper, t: float, row: np.ndarray = C) -> float:
    """Lower ``t`` below each counterexample the whole-box MILP finds (by 0.02) until it
    proves the property: a threshold within about 0.02 of the true minimum."""
    for _ in range(20):
        outcome = _whole_box_milp(graph, lower, upper, t, row)
        if outcome.status is Status.INFEASIBLE:
            return t
        assert outcome.status is Status.CANDIDATE
        x = np.asarray(outcome.candidate.x, dtype=np.float64)
        t = min(t, float((outputs(graph, x[None]) @ row.T)[0, 0])) - 0.02
    raise AssertionError("no threshold proven")


def _hand_off(graph, disjunct, confirmed, lower, upper, min_depth=1):
    caps = {k: v for k, v in available_capabilities().items() if k == "highs"}
    policy = Policy(PolicyConfig(proof_order=("highs",), candidate_order=("highs",)))
    scheduler = Scheduler(InlineExecutor(), policy=policy, capabilities=caps)

    def confirm(x, predicted_y):
        x = np.asarray(x, dtype=np.float64)
        inside = bool(np.all(x >= lower) and np.all(x <= upper))
        ok = inside and float((outputs(graph, x[None]) @ disjunct.C.T + disjunct.d)[0, 0]) <= 0
        if ok:
            confirmed.append(x)
        return ok

    hand_off = SubdomainHandOff(lambda: scheduler, graph, (disjunct,), confirm,
                                time.monotonic() + 60.0,
                                SubdomainHandoffConfig(min_depth=min_depth), label="mlp")
    return hand_off, scheduler


def test_subproblem_of_a_domain_contains_every_input_of_the_domain():
    """Points of the box that satisfy a domain's decisions lie in its subproblem's box
    and inside its node bounds; the ReLU decisions appear as relu_splits."""
    graph, lower, upper, pts, diff = _case(0)
    t = float(diff.max()) + 1.0     # violated everywhere: no domain is proven
    strategy = ActivationSplitting(graph, lower, upper, C, np.array([-t]), [slice(0, 1)],
                                    time.monotonic() + 30, ActivationSplitConfig(), "cpu")
    pre = {c.pre: c for c in strategy.cands}
    with torch.no_grad():
        every = evaluate_all(graph, torch.as_tensor(pts.reshape(len(pts), 1, -1)))
    values = {name: every[name].reshape(len(pts), -1).numpy() for name in pre}
    # neurons the samples put on both sides of 0 (a decision on them leaves inputs)
    both = [(ci, f) for ci, c in enumerate(strategy.cands) for f in range(c.size)
            if values[c.pre][:, f].min() < 0 < values[c.pre][:, f].max()]
    checked = 0
    rng = np.random.default_rng(1)
    for _ in range(6):
        decisions, keep = [], np.ones(len(pts), dtype=bool)
        for j in rng.choice(len(both), size=3, replace=False):
            ci, f = both[j]
            upper_side = bool(rng.integers(2))
            z = values[strategy.cands[ci].pre][:, f]
            decisions.append((ci, f, upper_side, 0.0))
            keep &= (z <= 0) if upper_side else (z >= 0)
        b = strategy.bound(NeuronBatch([tuple(decisions)], [None], [-np.inf]))
        if b is None or not keep.any():
            continue
        problems = domain_subproblems(strategy, b, 0, graph, (OutputConstraints(C, [-t]),), "d")
        assert len(problems) == 1
        problem = problems[0][1]
        inside = pts[keep]
        assert np.all(inside >= problem.box.lower) and np.all(inside <= problem.box.upper)
        for name, (lo, hi) in problem.node_bounds.items():
            if name in values:
                v = values[name][keep]
                assert np.all(v >= lo - 1e-9) and np.all(v <= hi + 1e-9), name
        for ci, f, upper_side, _ in decisions:
            act = strategy.cands[ci].act
            assert problem.relu_splits[act][f] == (-1 if upper_side else 1)
            lo, hi = problem.node_bounds[strategy.cands[ci].pre]
            assert (hi[f] <= 0) if upper_side else (lo[f] >= 0)
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("seed", [0, 1])
def test_handoff_proofs_agree_with_the_whole_box_milp(seed):
    """A threshold within about 0.02 of the true minimum, which the independent whole-box
    MILP proves: with the hand-off (domains 2 splits deep go to HiGHS) the search proves
    it with domains proven there; with the hand-off off, the search proves it too."""
    graph, lower, upper, pts, diff = _case(seed)
    t = _proven_threshold(graph, lower, upper, float(diff.min()))   # the truth: it holds
    disjunct = OutputConstraints(C, np.array([-t]))
    confirmed: list = []
    hand_off, scheduler = _hand_off(graph, disjunct, confirmed, lower, upper, min_depth=2)
    config = ActivationSplitConfig(batch_size=8)
    out = activation_split_bab(graph, lower, upper, C, np.array([-t]), [slice(0, 1)],
                               time.monotonic() + 60.0, config=config, hand_off=hand_off)
    assert out.status is SearchStatus.PROVEN
    assert out.stats.delegated > 0 and out.stats.delegated_proven > 0
    assert out.stats.delegated == out.stats.delegated_proven + out.stats.delegated_returned
    assert scheduler.report()["submitted"] >= out.stats.delegated
    alone = activation_split_bab(graph, lower, upper, C, np.array([-t]), [slice(0, 1)],
                                 time.monotonic() + 60.0, config=config)
    assert alone.status is SearchStatus.PROVEN
    assert alone.stats.delegated == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_counterexample_in_one_subdomain_is_found_by_the_handoff_and_never_proven(seed):
    """The sampled minimum of ``y0 - y1`` violates the property by 1e-3 (the independent
    MILP agrees there is a counterexample).  Without a probe only the hand-off can find
    it: the search must end with the confirmed counterexample, never PROVEN."""
    graph, lower, upper, pts, diff = _case(seed)
    t = float(diff.min()) + 1e-3
    assert _whole_box_milp(graph, lower, upper, t).status is Status.CANDIDATE
    disjunct = OutputConstraints(C, np.array([-t]))
    confirmed: list = []
    hand_off, _ = _hand_off(graph, disjunct, confirmed, lower, upper, min_depth=2)
    out = activation_split_bab(graph, lower, upper, C, np.array([-t]), [slice(0, 1)],
                               time.monotonic() + 60.0, probe=None,
                               config=ActivationSplitConfig(batch_size=8), hand_off=hand_off)
    assert out.status is not SearchStatus.PROVEN
    assert out.status is SearchStatus.COUNTEREXAMPLE
    x = out.counterexample_point
    assert confirmed and np.array_equal(x, confirmed[0])
    assert float((outputs(graph, x[None]) @ C.T - t)[0, 0]) <= 0


def test_domains_with_more_disjuncts_than_slots_are_handed_off_and_proven():
    """Two disjuncts (``y0 - y1 <= t1`` or ``y0 - y2 <= t2``), one scheduler slot: the
    domain's jobs are submitted one after the other, and both must come back INFEASIBLE
    for the domain to be proven."""
    graph, lower, upper, pts, diff = _case(2)
    y = outputs(graph, pts)
    C2 = np.array([[1.0, 0.0, -1.0]])
    t1 = _proven_threshold(graph, lower, upper, float(diff.min()))
    t2 = _proven_threshold(graph, lower, upper, float((y[:, 0] - y[:, 2]).min()), C2)
    disjuncts = (OutputConstraints(C, np.array([-t1])), OutputConstraints(C2, np.array([-t2])))
    confirmed: list = []
    hand_off, scheduler = _hand_off(graph, disjuncts[0], confirmed, lower, upper, min_depth=1)
    hand_off.disjuncts = disjuncts
    assert scheduler.free_slots == 1
    out = activation_split_bab(graph, lower, upper, np.vstack([C, C2]),
                               np.array([-t1, -t2]), [slice(0, 1), slice(1, 2)],
                               time.monotonic() + 60.0,
                               config=ActivationSplitConfig(batch_size=8), hand_off=hand_off)
    assert out.status is SearchStatus.PROVEN
    assert out.stats.delegated_proven > 0 and not confirmed
    assert scheduler.report()["submitted"] > out.stats.delegated   # several jobs per domain


def test_no_handoff_for_ops_the_encoders_cannot_encode():
    """A softmax (no MILP/SMT encoding) turns the hand-off off before any job: the
    scheduler is never made."""
    from hybridver.ir import NetworkGraph, Node, OpKind

    graph = mlp([10, 8, 3], 0)
    nodes = [graph.node(n) for n in graph.topological_order]
    out = graph.output_node.name
    graph = NetworkGraph([*nodes, Node("sm", OpKind.SOFTMAX, (out,), attrs={"axis": -1},
                                       shape=(1, 3))], ["x"], ["sm"])

    def no_scheduler():
        raise AssertionError("the scheduler must not be made")

    hand_off = SubdomainHandOff(no_scheduler, graph, (OutputConstraints(C, [0.0]),),
                                lambda x, y: False, time.monotonic() + 10)
    assert "softmax" in hand_off.disabled
    assert hand_off.take(None, None) == set()
    assert SubdomainHandOff(no_scheduler, mlp([10, 8, 3], 0), (), lambda x, y: False,
                            0.0).disabled == ""
