"""The hybrid pipeline with activation splitting handing domains to exact back ends
(``Event.DOMAIN_HANDOFF``, worker processes): the same verdicts with the hand-off on and
off, a counterexample never answered unsat, the counts in the JSON report (validated
against its schema).

The network is the 10-input MLP of tests/bab/test_subdomain_handoff.py (three layers of 16
ReLUs, so activation splitting runs), as a torch module (the real model).
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
import torch

import hybridver
from hybridver.config import (ActivationSplitConfig, AttackConfig, Event, Escalation, Schedule, StageName,
                              SubdomainHandoffConfig, VerifyConfig)
from hybridver.result import Verdict
from hybridver.specs import InputBox, OutputConstraints, Spec, SpecCase
from tests.bab.test_activation_split import outputs
from tests.bab.test_subdomain_handoff import C, _case, _proven_threshold

pytest.importorskip("highspy")
pytestmark = pytest.mark.slow   # worker processes, several runs: 10-15 s each


def _module(graph) -> torch.nn.Module:
    layers = []
    for node in graph.nodes():
        if node.op.value == "linear":
            w = torch.as_tensor(np.asarray(node.consts["weight"]))
            lin = torch.nn.Linear(w.shape[1], w.shape[0]).double()
            with torch.no_grad():
                lin.weight.copy_(w)
                lin.bias.copy_(torch.as_tensor(np.asarray(node.consts["bias"])))
            layers.append(lin)
        elif node.op.value == "relu":
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _spec(lower, upper, t: float) -> Spec:
    violated = OutputConstraints(C, np.array([-t]))   # y0 - y1 <= t
    return Spec((SpecCase(InputBox(lower, upper), (violated,)),), n_inputs=10, n_outputs=3)


def _config(handoff: bool, timeout_s: float = 60, probe_every: int = 4) -> VerifyConfig:
    escalations = (Escalation(Event.DOMAIN_HANDOFF, 0.0),) if handoff else ()
    return VerifyConfig(timeout_s=timeout_s, attack=AttackConfig(samples=0, rounds=0),
                        activation_split=ActivationSplitConfig(probe_every=probe_every),
                        schedule=Schedule(stages=(StageName.WHOLE_BOX,
                                                  StageName.ACTIVATION_SPLIT),
                                          escalations=escalations),
                        domain_handoff=SubdomainHandoffConfig(min_depth=2))


def _stats_schema_errors(stats: dict) -> list[str]:
    """The report's ``stats`` block against its part of the report schema."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((resources.files("hybridver") / "schemas/report-v1.schema.json")
                        .read_text())
    part = {**schema["properties"]["stats"], "$defs": schema.get("$defs", {})}
    return [e.message for e in jsonschema.Draft202012Validator(part).iter_errors(stats)]


@pytest.fixture(scope="module")
def instance():
    """The network, its box and a threshold the independent whole-box MILP proves (the
    true minimum of ``y0 - y1`` lies within 0.02 above it)."""
    graph, lower, upper, pts, diff = _case(1)
    model = _module(graph)
    with torch.no_grad():
        assert np.allclose(model(torch.as_tensor(pts[:5])).numpy(), outputs(graph, pts[:5]))
    return graph, model, lower, upper, _proven_threshold(graph, lower, upper, float(diff.min()))


def test_unsat_with_the_handoff_on_and_off(instance):
    graph, model, lower, upper, holds = instance
    on = hybridver.verify(model, _spec(lower, upper, holds), _config(True))
    off = hybridver.verify(model, _spec(lower, upper, holds), _config(False))
    assert on.verdict is Verdict.UNSAT and off.verdict is Verdict.UNSAT
    stats = on.to_json()["stats"]["activation_split"]
    assert stats["delegated"] > 0 and stats["delegated_proven"] > 0
    assert stats["delegated"] == stats["delegated_proven"] + stats["delegated_returned"]
    assert off.to_json()["stats"]["activation_split"]["delegated"] == 0
    assert not _stats_schema_errors(json.loads(json.dumps(on.to_json()["stats"])))


def test_counterexample_found_by_the_handoff_never_unsat(instance):
    """A threshold just above the true minimum: a counterexample exists.  With the domain
    attacks off, only the hand-off can find it; without the hand-off the run must not
    answer unsat either."""
    graph, model, lower, upper, holds = instance
    violated = _spec(lower, upper, holds + 0.05)
    on = hybridver.verify(model, violated, _config(True, probe_every=0))
    assert on.verdict is Verdict.SAT
    x = np.asarray(on.counterexample.x, dtype=np.float64).reshape(1, -1)
    assert float((outputs(graph, x) @ C.T)[0, 0]) <= holds + 0.05
    assert on.to_json()["stats"]["activation_split"]["delegated"] > 0
    off = hybridver.verify(model, violated, _config(False, timeout_s=5, probe_every=0))
    assert off.verdict is not Verdict.UNSAT
