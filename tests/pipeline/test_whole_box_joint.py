"""The whole-box stage optimizes intermediate bounds (joint alpha-CROWN) only on networks
that activation splitting takes (more than ``input_split_max_dim`` inputs); on
low-dimensional ones input splitting follows, and the joint optimization cost ACAS Xu
time without deciding more."""

from __future__ import annotations

from pathlib import Path

import pytest

import hybridver
from hybridver.config import AttackConfig, Schedule, StageName, VerifyConfig
from hybridver.pipeline import whole_box

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BOUNDS_ONLY = VerifyConfig(timeout_s=60, attack=AttackConfig(samples=0, rounds=0),
                           schedule=Schedule(stages=(StageName.WHOLE_BOX,)))


@pytest.mark.parametrize("name,spec,joint", [
    ("tiny_relu", "tiny_relu.vnnlib", False),                # 2 inputs: input splitting
    ("digits_relu", "digits_relu_eps_large_2.vnnlib", True),  # 64 inputs: activation splitting
])
def test_joint_alpha_only_where_activation_splitting_follows(name, spec, joint, monkeypatch):
    seen = []
    real = whole_box.compute_bounds

    def spy(*args, config, **kwargs):
        seen.append(config)
        return real(*args, config=config, **kwargs)

    monkeypatch.setattr(whole_box, "compute_bounds", spy)
    model = hybridver.load_model(EXAMPLES / f"{name}.onnx")
    hybridver.verify(model, hybridver.load_spec(EXAMPLES / spec, model), BOUNDS_ONLY)
    alpha_calls = [c for c in seen if c.method.value == "alpha-crown"]
    assert alpha_calls, "the case was decided before alpha-CROWN ran"
    assert {c.alpha.optimize_intermediate for c in alpha_calls} == {joint}
