"""The run's report blocks: what came of the points run on the real model, and the
scheduler's decision log only on request."""

from __future__ import annotations

import dataclasses

import numpy as np

from hybridver.api import load_model, load_spec
from hybridver.config import VerifyConfig
from hybridver.pipeline.context import RunContext
from hybridver.result import CandidateCounterexample
from tests.conftest import EXAMPLES


def _context(real_output=None, config: VerifyConfig = VerifyConfig()) -> RunContext:
    """tiny_relu (2 inputs, 2 outputs; a counterexample is ``y_0 >= y_1``), optionally with
    a stand-in real model that returns ``real_output`` for any input."""
    model = load_model(EXAMPLES / "tiny_relu.onnx")
    if real_output is not None:
        model = dataclasses.replace(
            model, real_model=lambda x: np.array([real_output], dtype=np.float64))
    return RunContext(model, load_spec(EXAMPLES / "tiny_relu.vnnlib", model), config)


def _candidate(predicted_y) -> CandidateCounterexample:
    return CandidateCounterexample(np.zeros(2), np.asarray(predicted_y, dtype=float), "test")


def test_points_checked_on_the_real_model_are_counted_by_what_came_of_them():
    ctx = _context(real_output=[0.0, 1.0])            # the real model: property holds
    assert ctx.confirm(_candidate([0.0, 1.0])) is None  # no violation predicted either
    assert ctx.confirm(_candidate([1.0, 0.0])) is None  # predicted, not confirmed
    assert ctx.confirm(_candidate([np.nan, np.nan])) is None  # a back end's bare point
    counts = ctx.stats.to_report()["confirmation"]
    assert counts == {"real_model_checks": 3, "confirmed": 0, "unconfirmed_candidates": 2,
                      "near_misses": 1}
    assert ctx.unconfirmed is not None and list(ctx.unconfirmed.predicted_y) == [1.0, 0.0]

    ctx = _context(real_output=[1.0, 0.0])            # the real model violates
    assert ctx.confirm(_candidate([0.0, 1.0])) is not None
    assert ctx.stats.to_report()["confirmation"] == {
        "real_model_checks": 1, "confirmed": 1, "unconfirmed_candidates": 0, "near_misses": 0}


def test_the_decision_log_is_in_the_report_only_on_request():
    for wanted in (False, True):
        ctx = _context(config=VerifyConfig(decision_log=wanted))
        ctx.scheduler()
        ctx.close()
        block = ctx.stats.to_report()["scheduler"]
        assert {"decisions", "choices", "backends"} <= set(block)
        assert ("decision_log" in block) is wanted
