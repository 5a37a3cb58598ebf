"""Hand-off of input-splitting domains to exact back ends (bab/handoff.py).

The network is the two-input "bump" of tests/pipeline/test_verify_hybrid.py: with a threshold
below 1 a counterexample exists only in a diamond of L1 radius 1e-3 (sampling and PGD miss
it); above 1 the property holds.  Delegated domains must never make the first unsat, and
must help prove the second.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import hybridver
from hybridver.bab.handoff import HandoffConfig, SchedulerDelegate
from hybridver.bab.input_split import Bounded, InputSplitConfig, input_split_bab
from hybridver.bab_core import SearchStatus
from hybridver.bounds.engine import compute_bounds
from hybridver.bounds.options import BoundConfig
from hybridver.config import Event, Schedule, VerifyConfig
from hybridver.result import Verdict
from hybridver.schedule import InlineExecutor, Policy, PolicyConfig, Scheduler
from tests.pipeline.test_verify_hybrid import NO_ATTACK, P, Q, R, Bumps, _model, _spec


def _run(threshold: float, centres, backends=("highs",), min_depth=2, seconds=60):
    model = _model(centres, threshold)
    graph = model.graph
    case = _spec().cases[0]
    disjunct = case.disjuncts[0]
    pre = [n.inputs[0] for n in graph.nodes() if n.op.value == "relu"]

    def bound_fn(lo, hi, restrictions):
        result = compute_bounds(graph, lo, hi, disjunct.C, disjunct.d,
                                config=BoundConfig(method="crown"), restrictions=restrictions,
                                bound_upper=False)
        return Bounded(result.lower, None,
                       {n: (result.intervals[n].lower, result.intervals[n].upper) for n in pre})

    confirmed = []

    def confirm(x, predicted_y):
        with torch.no_grad():
            y = float(Bumps(centres, threshold)(torch.as_tensor(np.asarray(x))[None]))
        ok = y >= 0 and bool(np.all(x >= case.region.lower)) and bool(
            np.all(x <= case.region.upper))
        if ok:
            confirmed.append(np.asarray(x))
        return ok

    from hybridver.schedule.scheduler import available_capabilities
    caps = {k: v for k, v in available_capabilities().items() if k in backends}
    # force delegation: every domain deep enough goes to the named back end
    policy = Policy(PolicyConfig(proof_order=backends, candidate_order=backends,
                                 exact_max_unstable=-1))
    scheduler = Scheduler(InlineExecutor(), policy=policy, capabilities=caps)
    delegate = SchedulerDelegate(lambda: scheduler, graph, case.disjuncts, pre, confirm,
                                 HandoffConfig(min_depth=min_depth), label="bump")
    outcome = input_split_bab(bound_fn, case.region.lower, case.region.upper, (slice(0, 1),),
                              time.monotonic() + seconds, None, InputSplitConfig(batch_size=16),
                              delegate=delegate)
    return outcome, confirmed, scheduler


@pytest.mark.parametrize("backend", ["highs", "ortools", "z3"])
def test_hidden_counterexample_is_never_proven_through_the_handoff(backend):
    outcome, confirmed, scheduler = _run(0.5, [P], (backend,))
    assert outcome.status is not SearchStatus.PROVEN
    assert scheduler.report()["submitted"] > 0
    if outcome.status is SearchStatus.COUNTEREXAMPLE:
        assert confirmed and np.abs(confirmed[0] - np.array(P)).sum() <= R


@pytest.mark.parametrize("backend", ["highs", "ortools", "z3"])
def test_separated_bumps_are_proven_with_delegated_domains(backend):
    outcome, _, scheduler = _run(1.5, [P, Q], (backend,), min_depth=0)
    assert outcome.status is SearchStatus.PROVEN
    assert outcome.stats.delegated_proven > 0
    assert scheduler.backend_stats()[backend]["outcomes"].get("infeasible", 0) > 0


def test_verify_hands_off_through_worker_processes():
    """End to end with the local process pool: the hand-off starts at once; the hidden
    counterexample is never unsat and the separated bumps are unsat, with the scheduler's
    statistics in the report."""
    config = VerifyConfig(timeout_s=60, attack=NO_ATTACK,
                          schedule=Schedule().at(Event.HANDOFF, 0.0))
    bad = hybridver.verify(_model([P], threshold=0.5), _spec(), config)
    assert bad.verdict is not Verdict.UNSAT
    assert bad.stats["scheduler"]["decisions"] > 0   # deep domains were offered
    good = hybridver.verify(_model([P, Q], threshold=1.5), _spec(), config)
    assert good.verdict is Verdict.UNSAT


def test_handed_off_subproblems_carry_only_bounds_of_their_own_graph(tmp_path):
    """Max-pool is decomposed for the bounds (its ``relu(b - a)`` helpers are new nodes):
    the pool's bounds of those helpers stay out of the subproblems, whose node bounds are
    keyed by their own graph (the encoders decompose and bound the helpers themselves)."""
    from hybridver.bounds.plan import get_plan
    from hybridver.relaxations.base import piecewise_linear_ops
    from tests.pipeline.op_models import CASES, planted_specs, spec_above

    path = next(c for c in CASES if c.name == "max_pool").build(tmp_path / "pool.onnx")
    graph = hybridver.load_model(path).graph
    planted = planted_specs(path)
    # just above the sampled maximum: the root does not settle it, domains get deep
    case = spec_above(planted.hi + 0.05 * (planted.hi - planted.lo) + 1e-3).cases[0]
    disjunct = case.disjuncts[0]
    plan = get_plan(graph, torch.float32, torch.device("cpu"))
    reused = sorted(plan.pre_activations)
    assert any(name not in graph for name in reused)   # the decomposition's helpers
    relu_inputs = [plan.graph.node(n).inputs[0] for n in plan.relaxations
                   if plan.graph.node(n).op in piecewise_linear_ops()]

    def bound_fn(lo, hi, restrictions):   # (the parents' bounds are not needed here)
        result = compute_bounds(graph, lo, hi, disjunct.C, disjunct.d,
                                config=BoundConfig(method="crown"), bound_upper=False)
        return Bounded(result.lower, None, {n: (result.intervals[n].lower,
                                                result.intervals[n].upper) for n in reused})

    from hybridver.schedule.scheduler import available_capabilities
    caps = {k: v for k, v in available_capabilities().items() if k == "highs"}
    policy = Policy(PolicyConfig(proof_order=("highs",), candidate_order=("highs",),
                                 exact_max_unstable=-1))
    scheduler = Scheduler(InlineExecutor(), policy=policy, capabilities=caps)
    submitted = []
    submit = scheduler.submit

    def recording_submit(problem, decision, tag=None):
        submitted.append(problem)
        return submit(problem, decision, tag=tag)

    scheduler.submit = recording_submit
    delegate = SchedulerDelegate(lambda: scheduler, graph, case.disjuncts,
                                 relu_inputs, lambda x, y: False,
                                 HandoffConfig(min_depth=0), label="pool")
    outcome = input_split_bab(bound_fn, case.region.lower, case.region.upper, (slice(0, 1),),
                              time.monotonic() + 60, None, InputSplitConfig(batch_size=4),
                              delegate=delegate, stop=lambda: len(submitted) >= 4)
    assert outcome.status is not SearchStatus.COUNTEREXAMPLE
    assert submitted
    for problem in submitted:
        assert problem.graph is graph and set(problem.node_bounds) <= set(graph.topological_order)
