"""Input splitting on graphs the bound plan decomposes (softmax, max-pool, a product of
two variables): the plan's graph has nodes the model's graph lacks, and every question
about them goes to the plan (issue 11: a KeyError such as ``'p/relu'`` as soon as input
splitting started).

The thresholds sit just above the sampled maximum (``tests.pipeline.op_models``), and
input splitting runs alone (joint alpha-CROWN on the whole box proves some of them), so
it has to branch."""

from __future__ import annotations

import pytest

import hybridver
from hybridver.config import AttackConfig, Schedule, StageName, VerifyConfig
from hybridver.result import Verdict
from tests.pipeline.op_models import CASES, planted_specs, spec_above

SPLIT_ONLY = VerifyConfig(timeout_s=120, attack=AttackConfig(samples=0, rounds=0),
                          schedule=Schedule(stages=(StageName.INPUT_SPLIT,)))


@pytest.mark.parametrize("op", ["softmax", "max_pool", "matmul_variables"])
def test_input_splitting_on_a_decomposed_graph_proves_a_tight_property(op, tmp_path):
    case = next(c for c in CASES if c.name == op)
    path = case.build(tmp_path / f"{op}.onnx")
    planted = planted_specs(path)
    threshold = planted.hi + 0.15 * (planted.hi - planted.lo) + 1e-3
    result = hybridver.verify(hybridver.load_model(path), spec_above(threshold), SPLIT_ONLY)
    assert result.verdict is Verdict.UNSAT, result.message
    assert result.stats["input_split"]["domains_bounded"] > 1   # it had to branch


@pytest.mark.parametrize("op", ["softmax", "max_pool"])
def test_input_splitting_on_a_decomposed_graph_finds_a_planted_counterexample(op, tmp_path):
    """Sampling and PGD are off: input splitting's probes have to find it."""
    case = next(c for c in CASES if c.name == op)
    path = case.build(tmp_path / f"{op}.onnx")
    planted = planted_specs(path)
    threshold = planted.hi - 0.1 * (planted.hi - planted.lo)
    result = hybridver.verify(hybridver.load_model(path), spec_above(threshold), SPLIT_ONLY)
    assert result.verdict is Verdict.SAT, result.message
    assert float(result.counterexample.y[0]) >= threshold
