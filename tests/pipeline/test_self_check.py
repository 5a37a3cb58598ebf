"""``verify --crosscheck`` (:mod:`hybridver.pipeline.self_check`): an ``unsat`` decided
again by an independent exact back end; a disagreement is an error, never a verdict.

The disagreement path is fed an instance with a known counterexample (the bundled
digits network at eps 0.3, ``sat`` in examples/expected_results.csv) under a forged
``unsat``, as a verifier bug would produce it."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hybridver import cli
from hybridver.api import load_model, load_spec, verify
from hybridver.config import Mode, SelfCheckConfig, StageName, VerifyConfig
from hybridver.errors import HybridverInputError
from hybridver.pipeline import self_check as self_check_module
from hybridver.pipeline.self_check import nonlinear_neurons, second_backend, self_check
from hybridver.result import Verdict, VerificationResult
from tests.commands.test_report_schema import schema as report_schema
from tests.conftest import EXAMPLES

MODEL = EXAMPLES / "digits_relu.onnx"
UNSAT_SPEC = EXAMPLES / "digits_relu_eps_small_0.vnnlib"
SAT_SPEC = EXAMPLES / "digits_relu_eps_large_2.vnnlib"
ON = VerifyConfig(timeout_s=60, self_check=SelfCheckConfig(enabled=True, timeout_s=60))


def _loaded(spec_path):
    model = load_model(MODEL)
    return model, load_spec(spec_path, model)


def test_an_unsat_the_second_back_end_confirms_stands():
    model, spec = _loaded(UNSAT_SPEC)
    result = verify(model, spec, ON)
    assert result.verdict is Verdict.UNSAT
    info = result.stats["self_check"]
    assert info["status"] == "agrees" and info["agrees"] is True
    assert info["backend"] in self_check_module.AUTO_ORDER
    assert info["verdict"] == "unsat"


def test_a_forged_unsat_on_a_satisfiable_instance_becomes_an_error():
    model, spec = _loaded(SAT_SPEC)
    forged = VerificationResult(Verdict.UNSAT, 0.1)
    result = self_check(model, spec, ON, forged)
    assert result.verdict is Verdict.ERROR
    assert "self-check disagreement" in result.message
    info = result.stats["self_check"]
    assert info["status"] == "disagrees" and info["agrees"] is False
    cex = info["counterexample"]
    assert cex["margin"] <= 0 and cex["checked_by"] == "onnxruntime"
    assert len(cex["x"]) == model.n_inputs


def test_other_verdicts_and_a_disabled_check_pass_through_unchanged():
    model, spec = _loaded(SAT_SPEC)
    for verdict in (Verdict.UNKNOWN, Verdict.TIMEOUT):
        res = VerificationResult(verdict, 0.1)
        assert self_check(model, spec, ON, res) is res
    res = VerificationResult(Verdict.UNSAT, 0.1)
    assert self_check(model, spec, VerifyConfig(), res) is res


def test_a_network_over_max_neurons_is_skipped_and_said_so():
    model, spec = _loaded(SAT_SPEC)
    config = dataclasses.replace(ON, self_check=SelfCheckConfig(enabled=True, max_neurons=3))
    result = self_check(model, spec, config, VerificationResult(Verdict.UNSAT, 0.1))
    assert result.verdict is Verdict.UNSAT
    info = result.stats["self_check"]
    assert info["status"] == "skipped"
    assert info["neurons"] == nonlinear_neurons(model.graph) > 3
    assert "max_neurons" in info["why"]


def test_a_second_decision_that_runs_out_of_time_is_inconclusive(monkeypatch):
    model, spec = _loaded(UNSAT_SPEC)

    def timed_out(model, spec, config, progress, deadline):
        assert config.mode is Mode.EXACT and not config.self_check.enabled
        return VerificationResult(Verdict.TIMEOUT, config.timeout_s)

    monkeypatch.setattr(self_check_module, "run_pipeline", timed_out)
    result = self_check(model, spec, ON, VerificationResult(Verdict.UNSAT, 0.1, message="m"))
    assert result.verdict is Verdict.UNSAT
    assert result.stats["self_check"]["status"] == "inconclusive"
    assert result.message.startswith("m; self-check by")


def test_the_second_back_end_is_never_the_one_exact_mode_used():
    for used in ("ortools", "highs", "z3"):
        config = dataclasses.replace(ON, mode=Mode.EXACT,
                                     exact=dataclasses.replace(ON.exact, backend=used))
        assert second_backend(config) not in (used, None)
    asked = dataclasses.replace(ON, mode=Mode.EXACT,
                                self_check=SelfCheckConfig(enabled=True, backend="highs"),
                                exact=dataclasses.replace(ON.exact, backend="highs"))
    assert second_backend(asked) is None
    with pytest.raises(HybridverInputError, match="unknown back end"):
        second_backend(dataclasses.replace(
            ON, self_check=SelfCheckConfig(enabled=True, backend="nosuch")))


def test_cli_reports_a_disagreement_as_error_with_exit_code_3(monkeypatch, tmp_path, capsys):
    import hybridver.api as api

    real_run = api.run_pipeline

    def forged(model, spec, config, progress, deadline=None):
        """A real run (whole-box bounds only: unknown, with every statistic) whose
        verdict a bug turned into unsat."""
        only_bounds = dataclasses.replace(config, schedule=dataclasses.replace(
            config.schedule, stages=(StageName.WHOLE_BOX,), escalations=()))
        res = real_run(model, spec, only_bounds, progress, deadline=deadline)
        assert res.verdict is Verdict.UNKNOWN
        return dataclasses.replace(res, verdict=Verdict.UNSAT)

    monkeypatch.setattr(api, "run_pipeline", forged)
    report = tmp_path / "r.json"
    results = tmp_path / "r.txt"
    rc = cli.main(["verify", str(MODEL), str(SAT_SPEC), "--crosscheck", "--progress", "off",
                   "--json", str(report), "--results-file", str(results)])
    assert rc == 3
    assert capsys.readouterr().out.strip().splitlines()[-1] == "error"
    assert results.read_text().split()[0] == "error"
    data = json.loads(report.read_text())
    assert data["verdict"] == "error" and data["stats"]["self_check"]["status"] == "disagrees"
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator(report_schema()).validate(data)


def test_cli_without_crosscheck_keeps_exit_code_0(tmp_path, capsys):
    rc = cli.main(["verify", str(MODEL), str(UNSAT_SPEC), "--progress", "off"])
    assert rc == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "unsat"
