"""Input splitting on smooth networks (sin, cos, products): the smooth settings
(``InputSplitConfig.for_network``: bigger batches, deciding-row split scores) and the
general ones (domain clipping, multi-dimension splits) keep the planted answers, and the
switches reach the stage from a config file."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import hybridver
import hybridver.pipeline.input_split as stage_module
from hybridver.bab.input_split import InputSplitConfig
from hybridver.config import AttackConfig, Schedule, StageName, VerifyConfig
from hybridver.config_file import config_from_dict
from hybridver.ir.evaluate import evaluate
from hybridver.result import Verdict
from tests.pipeline.op_models import CASES, planted_specs, sampled_range, spec_above

SPLIT_ONLY = VerifyConfig(timeout_s=120, attack=AttackConfig(samples=0, rounds=0),
                          schedule=Schedule(stages=(StageName.WHOLE_BOX, StageName.INPUT_SPLIT)))
PLAIN = InputSplitConfig(batch_size=256, clip_domains=False, smooth_splitting=False)


def _with(split: InputSplitConfig) -> VerifyConfig:
    return dataclasses.replace(SPLIT_ONLY, input_split=split)


def _tight_threshold(path) -> float:
    """Just above the output's maximum over ``[-1, 1]^4``: the best sampled point refined
    by projected gradient ascent (float64), plus 3% of the sampled range."""
    lo, hi, start = sampled_range(path)
    graph = hybridver.load_model(path).graph
    x = torch.tensor(start, dtype=torch.float64).reshape(1, 1, 4).requires_grad_(True)
    best = hi
    for _ in range(300):
        y = evaluate(graph, x).sum()
        best = max(best, float(y.detach()))
        (grad,) = torch.autograd.grad(y, x)
        with torch.no_grad():
            x = (x + 0.01 * grad).clamp(-1.0, 1.0)
        x.requires_grad_(True)
    return best + 0.03 * (hi - lo) + 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("op", ["sin", "mul_variables", "square"])
@pytest.mark.parametrize("split", [SPLIT_ONLY.input_split, PLAIN], ids=["smooth", "plain"])
def test_a_tight_property_of_a_smooth_network_is_proven(op, split, tmp_path):
    case = next(c for c in CASES if c.name == op)
    path = case.build(tmp_path / f"{op}.onnx")
    threshold = _tight_threshold(path)
    result = hybridver.verify(hybridver.load_model(path), spec_above(threshold), _with(split))
    assert result.verdict is Verdict.UNSAT, result.message
    assert result.stats["input_split"]["domains_bounded"] > 1   # it had to branch


@pytest.mark.parametrize("op", ["sin", "cos", "mul_variables"])
def test_a_counterexample_of_a_smooth_network_is_found(op, tmp_path):
    """Sampling and PGD are off: input splitting's probes (of clipped boxes) find it."""
    case = next(c for c in CASES if c.name == op)
    path = case.build(tmp_path / f"{op}.onnx")
    planted = planted_specs(path)
    threshold = planted.hi - 0.05 * (planted.hi - planted.lo)
    result = hybridver.verify(hybridver.load_model(path), spec_above(threshold), SPLIT_ONLY)
    assert result.verdict is Verdict.SAT, result.message
    assert float(result.counterexample.y[0]) >= threshold


def test_for_network_applies_the_smooth_settings_only_where_asked():
    config = InputSplitConfig(batch_size=64, smooth_batch_size=2048, smooth_fill_splits=3)
    assert config.for_network(False) == config
    smooth = config.for_network(True)
    assert smooth.batch_size == 2048 and smooth.deciding_rows and smooth.fill_splits == 3
    off = dataclasses.replace(config, smooth_splitting=False)
    assert off.for_network(True) == off
    with pytest.raises(ValueError):
        InputSplitConfig(fill_splits=0)


def test_the_switches_come_from_the_config_file_and_reach_the_search(tmp_path, monkeypatch):
    config = config_from_dict({"input_split": {
        "clip_domains": False, "smooth_fill_splits": 2, "smooth_splitting": True,
        "smooth_batch_size": 128, "deciding_rows": False}})
    split = config.input_split
    assert (split.clip_domains, split.smooth_fill_splits, split.smooth_batch_size) == \
        (False, 2, 128)
    seen = []
    real = stage_module.input_split_bab

    def spy(*args, **kwargs):
        seen.append(args[6])
        return real(*args, **kwargs)

    monkeypatch.setattr(stage_module, "input_split_bab", spy)
    case = next(c for c in CASES if c.name == "sin")
    path = case.build(tmp_path / "sin.onnx")
    run = dataclasses.replace(SPLIT_ONLY, input_split=split)
    hybridver.verify(hybridver.load_model(path), spec_above(_tight_threshold(path)), run)
    assert seen and seen[0].batch_size == 128 and seen[0].deciding_rows
    assert not seen[0].clip_domains and seen[0].fill_splits == 2
