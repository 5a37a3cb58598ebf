"""The hybrid pipeline's unsat paths fed instances with known, hidden counterexamples.

A 2-input ReLU network outputs ``bump(x) - threshold`` where the bump is 1 at a point
``p`` and 0 farther than ``r`` from it (L1): with ``threshold < 1`` a counterexample
(``y >= 0``) exists only in a tiny diamond around ``p`` that sampling and PGD miss (the
gradient is zero outside it).  With ``threshold > 1`` the property holds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hybridver
from hybridver.config import AttackConfig, Schedule, StageName, VerifyConfig
from hybridver.result import Verdict
from hybridver.specs import InputBox, OutputConstraints, Spec, SpecCase

P = (0.3141, -0.2718)
Q = (-0.5772, 0.1414)
R = 1e-3


class Bumps(torch.nn.Module):
    """``sum_k relu(1 - |x - c_k|_1 / R) - threshold`` over the centres ``c_k``."""

    def __init__(self, centres, threshold: float):
        super().__init__()
        k = len(centres)
        c = torch.tensor(centres, dtype=torch.float64)
        self.first = torch.nn.Linear(2, 4 * k).double()
        self.second = torch.nn.Linear(4 * k, k).double()
        with torch.no_grad():
            block = torch.tensor([[1., 0.], [-1., 0.], [0., 1.], [0., -1.]], dtype=torch.float64)
            self.first.weight.copy_(block.repeat(k, 1))
            self.first.bias.copy_(torch.cat([torch.stack([-ci[0], ci[0], -ci[1], ci[1]])
                                             for ci in c]))
            self.second.weight.zero_()
            for i in range(k):
                self.second.weight[i, 4 * i: 4 * i + 4] = -1.0 / R
            self.second.bias.fill_(1.0)
        self.threshold = threshold

    def forward(self, x):
        bumps = torch.relu(self.second(torch.relu(self.first(x))))
        return bumps.sum(dim=-1, keepdim=True) - self.threshold


def _model(centres, threshold):
    return hybridver.from_module(Bumps(centres, threshold), torch.zeros(1, 2, dtype=torch.float64))


def _spec() -> Spec:
    box = InputBox(np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    violated = OutputConstraints(np.array([[-1.0]]), np.array([0.0]))  # -y <= 0, i.e. y >= 0
    return Spec((SpecCase(box, (violated,)),), n_inputs=2, n_outputs=1)


NO_ATTACK = AttackConfig(samples=0, rounds=0)


@pytest.mark.parametrize("attack", [NO_ATTACK, AttackConfig()], ids=["no-attack", "attack"])
def test_hidden_counterexample_is_never_unsat(attack):
    model = _model([P], threshold=0.5)
    result = hybridver.verify(model, _spec(), VerifyConfig(timeout_s=60, attack=attack))
    assert result.verdict is not Verdict.UNSAT
    # the input-splitting branch-and-bound narrows down onto the diamond and confirms it
    assert result.verdict is Verdict.SAT
    x = result.counterexample.x
    assert np.abs(x - np.array(P)).sum() <= R
    with torch.no_grad():
        assert float(Bumps([P], 0.5)(torch.as_tensor(x)[None])) >= 0


def test_separated_bumps_below_threshold_are_proven_by_branch_and_bound():
    """Each bump peaks at 1 < 1.5, but bounds over a box holding both allow 2: the proof
    needs splits that separate the two centres."""
    model = _model([P, Q], threshold=1.5)
    result = hybridver.verify(model, _spec(), VerifyConfig(timeout_s=120, attack=NO_ATTACK))
    assert result.verdict is Verdict.UNSAT
    assert result.stats["input_split"]["domains_bounded"] > 1  # needed branching


def test_whole_box_bounds_path_is_not_fooled():
    """Whole-box bounds only: never unsat on the hidden counterexample."""
    stages = tuple(s for s in Schedule().stages if s is not StageName.ACTIVATION_SPLIT)
    config = VerifyConfig(timeout_s=30, attack=NO_ATTACK, input_split_max_dim=1,
                          schedule=Schedule(stages=stages))
    result = hybridver.verify(_model([P], threshold=0.5), _spec(), config)
    assert result.verdict is Verdict.UNKNOWN


def test_activation_split_path_is_not_fooled():
    """Activation splitting (forced by a low input-split limit): never unsat on the hidden
    counterexample; its attacks inside the domains may find it (then confirmed)."""
    config = VerifyConfig(timeout_s=5, attack=NO_ATTACK, input_split_max_dim=1)
    result = hybridver.verify(_model([P], threshold=0.5), _spec(), config)
    assert result.verdict in (Verdict.TIMEOUT, Verdict.UNKNOWN, Verdict.SAT)
    if result.verdict is Verdict.SAT:
        assert np.abs(result.counterexample.x - np.array(P)).sum() <= R
    assert result.stats["activation_split"]["domains_bounded"] > 1


def test_activation_split_path_proves_separated_bumps():
    config = VerifyConfig(timeout_s=60, attack=NO_ATTACK, input_split_max_dim=1)
    result = hybridver.verify(_model([P, Q], threshold=1.5), _spec(), config)
    assert result.verdict is Verdict.UNSAT
    assert result.stats["activation_split"]["domains_bounded"] > 1
