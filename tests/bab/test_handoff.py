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
    assert outcome.status != "proven"
    assert scheduler.report()["submitted"] > 0
    if outcome.status == "counterexample":
        assert confirmed and np.abs(confirmed[0] - np.array(P)).sum() <= R


@pytest.mark.parametrize("backend", ["highs", "ortools", "z3"])
def test_separated_bumps_are_proven_with_delegated_domains(backend):
    outcome, _, scheduler = _run(1.5, [P, Q], (backend,), min_depth=0)
    assert outcome.status == "proven"
    assert outcome.stats["delegated_proven"] > 0
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
