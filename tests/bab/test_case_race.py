"""The exact race on whole cases (bab/case_race.py) and its use in activation splitting.

The digits network has 64 inputs, so hybrid mode branches on activations; its large-eps
property has a counterexample, its small-eps ones hold.
"""

from __future__ import annotations

import numpy as np
import pytest

import hybridver
from hybridver.bab.case_race import CaseRace
from hybridver.config import AttackConfig, VerifyConfig
from hybridver.encode.subproblems import exact_subproblems
from hybridver.result import CandidateCounterexample, Verdict, confirm_counterexample
from hybridver.schedule import InlineExecutor, Scheduler
from hybridver.schedule.policy import Policy, PolicyConfig
from tests.conftest import EXAMPLES

NO_ATTACK = AttackConfig(samples=0, rounds=0)


def _race(spec_name: str, backend: str):
    model = hybridver.load_model(EXAMPLES / "digits_relu.onnx")
    spec = hybridver.load_spec(EXAMPLES / spec_name, model)
    problems = [p for _, _, p in exact_subproblems(model.graph, spec)]
    confirmed = []

    def confirm(x, predicted_y):
        y = np.full(model.n_outputs, np.nan) if predicted_y is None else predicted_y
        cex = confirm_counterexample(CandidateCounterexample(np.asarray(x), y, "race"), spec,
                                     model.real_model, model.graph.input_node.shape,
                                     model.checked_by, model.input_dtype)
        if cex is not None:
            confirmed.append(cex)
        return cex is not None

    from hybridver.schedule.scheduler import available_capabilities
    caps = {k: v for k, v in available_capabilities().items() if k == backend}
    # generous budgets: these tests are about what the race answers, not how fast (with
    # the default 2-5 s a loaded CI machine ran out of time, and the race said "failed")
    policy = Policy(PolicyConfig(base_budget_s=60.0, max_budget_s=120.0))
    race = CaseRace(Scheduler(InlineExecutor(), policy, capabilities=caps), problems,
                    [-1.0] * len(problems), confirm)
    assert race.start(deadline=float("inf"))
    state = None
    for _ in range(2 * len(problems) + 2):
        state = race.poll()
        if state is not None:
            break
    return state, confirmed


@pytest.mark.parametrize("backend", ["highs", "ortools"])
def test_race_on_a_violated_case_finds_the_counterexample_never_proven(backend):
    state, confirmed = _race("digits_relu_eps_large_2.vnnlib", backend)
    assert state != "proven"
    assert state == "counterexample" and confirmed and confirmed[0].margin <= 0


@pytest.mark.parametrize("backend", ["highs", "ortools"])
def test_race_on_a_holding_case_is_proven(backend):
    state, confirmed = _race("digits_relu_eps_small_0.vnnlib", backend)
    assert state == "proven" and not confirmed


def test_activation_split_with_the_race_never_says_unsat_on_a_counterexample():
    """End to end: attack off, so the answer comes from activation splitting, its probes,
    or the race (worker process); whichever decides, it is sat with a confirmed point."""
    config = VerifyConfig(timeout_s=60, attack=NO_ATTACK)
    model = hybridver.load_model(EXAMPLES / "digits_relu.onnx")
    spec = hybridver.load_spec(EXAMPLES / "digits_relu_eps_large_2.vnnlib", model)
    result = hybridver.verify(model, spec, config)
    assert result.verdict is not Verdict.UNSAT
    if result.verdict is Verdict.SAT:
        assert result.counterexample.margin <= 0


def test_race_alone_decides_through_worker_processes(monkeypatch):
    """Activation splitting replaced by a stand-in that only waits for ``stop``: the
    verdict can come only from the race, run in a worker process; on a violated case it is
    sat with a confirmed counterexample, never unsat."""
    import time

    import hybridver.pipeline.activation_split as activation_stage
    from hybridver.bab_core import SearchOutcome, SearchStatus

    def waiting_bab(*args, stop=None, **kwargs):
        deadline = args[6]
        while time.monotonic() < deadline:
            if stop is not None and stop():
                return SearchOutcome(SearchStatus.STOPPED)
            time.sleep(0.05)
        return SearchOutcome(SearchStatus.TIMEOUT)

    monkeypatch.setattr(activation_stage, "activation_split_bab", waiting_bab)
    model = hybridver.load_model(EXAMPLES / "digits_relu.onnx")
    spec = hybridver.load_spec(EXAMPLES / "digits_relu_eps_large_2.vnnlib", model)
    result = hybridver.verify(model, spec, VerifyConfig(timeout_s=60, attack=NO_ATTACK))
    assert result.verdict is Verdict.SAT
    assert result.counterexample.margin <= 0
    assert result.stats["activation_split"]["races"] == {"counterexample": 1}
