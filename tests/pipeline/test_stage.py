"""The stage driver: how per-case results become a verdict, on real models.

Every path to ``unsat`` is fed an instance with a known counterexample
(digits_relu_eps_large_2: a PGD counterexample confirmed by onnxruntime)."""

from __future__ import annotations

import time

import pytest

import hybridver
from hybridver.config import AttackConfig, Schedule, StageName, VerifyConfig
from hybridver.errors import DeadlineExceeded
from hybridver.pipeline.context import RunContext
from hybridver.pipeline.falsify import SamplingStage
from hybridver.pipeline.run import STAGES, build_stages, run_pipeline
from hybridver.pipeline.stage import CaseResult, CaseStatus, run_stages
from hybridver.pipeline.whole_box import WholeBoxStage
from hybridver.result import Verdict
from tests.conftest import EXAMPLES


@pytest.fixture(scope="module")
def relu():
    return hybridver.load_model(EXAMPLES / "digits_relu.onnx")


def _spec(model, name):
    return hybridver.load_spec(EXAMPLES / name, model)


class Fixed:
    """A stage answering ``status`` for every case it is given, recording the calls."""

    def __init__(self, status, falsifies=False, message="fixed"):
        self.name, self.falsifies = f"fixed_{status.value}", falsifies
        self.status, self.message, self.calls = status, message, []

    def run(self, ctx, cases):
        self.calls.append(list(cases))
        return {i: CaseResult(self.status, message=self.message) for i in cases}


def _ctx(model, spec, timeout=60.0):
    return RunContext(model, spec, VerifyConfig(timeout_s=timeout))


def test_unsat_needs_every_case_proven(relu):
    spec = _spec(relu, "digits_relu_eps_small_0.vnnlib")
    assert run_stages(_ctx(relu, spec), [Fixed(CaseStatus.PROVEN)]).verdict is Verdict.UNSAT
    left_open = run_stages(_ctx(relu, spec), [Fixed(CaseStatus.OPEN)])
    assert left_open.verdict is Verdict.UNKNOWN and "no stage" in left_open.message


def test_undecided_case_skips_deciding_stages_but_not_falsifiers(relu):
    spec = _spec(relu, "digits_relu_eps_small_0.vnnlib")
    deciding, falsifier = Fixed(CaseStatus.PROVEN), Fixed(CaseStatus.OPEN, falsifies=True)
    result = run_stages(_ctx(relu, spec), [Fixed(CaseStatus.UNKNOWN, message="why"),
                                           deciding, falsifier])
    assert result.verdict is Verdict.UNKNOWN and result.message == "why"
    assert deciding.calls == [] and falsifier.calls == [[0]]


def test_whole_box_bounds_never_prove_a_violated_instance(relu):
    spec = _spec(relu, "digits_relu_eps_large_2.vnnlib")
    result = run_stages(_ctx(relu, spec), [WholeBoxStage()])
    assert result.verdict is not Verdict.UNSAT
    assert run_stages(_ctx(relu, spec), [SamplingStage(), WholeBoxStage()]).verdict in (
        Verdict.SAT, Verdict.UNKNOWN)


def test_the_default_schedule_finds_the_counterexample(relu):
    spec = _spec(relu, "digits_relu_eps_large_2.vnnlib")
    result = run_pipeline(relu, spec, VerifyConfig(timeout_s=60))
    assert result.verdict is Verdict.SAT and result.counterexample.margin <= 0


def test_a_stage_out_of_time_makes_a_timeout(relu):
    class Late:
        name, falsifies = "late", False

        def run(self, ctx, cases):
            raise DeadlineExceeded("passed")

    spec = _spec(relu, "digits_relu_eps_small_0.vnnlib")
    result = run_stages(_ctx(relu, spec), [Late(), Fixed(CaseStatus.PROVEN)])
    assert result.verdict is Verdict.TIMEOUT and "late" in result.message


def test_deadline_is_absolute_and_shared(relu):
    spec = _spec(relu, "digits_relu_eps_small_0.vnnlib")
    past = time.monotonic() - 1.0
    result = run_pipeline(relu, spec, VerifyConfig(timeout_s=60,
                                                   attack=AttackConfig(samples=0, rounds=0)),
                          deadline=past)
    assert result.verdict is Verdict.TIMEOUT


def test_schedules_are_data(relu):
    only_bounds = VerifyConfig(schedule=Schedule(stages=(StageName.WHOLE_BOX,)))
    assert [type(s) for s in build_stages(only_bounds)] == [WholeBoxStage]
    assert set(STAGES) == set(StageName)
    spec = _spec(relu, "digits_relu_eps_small_0.vnnlib")
    assert run_pipeline(relu, spec, only_bounds).verdict is Verdict.UNSAT
