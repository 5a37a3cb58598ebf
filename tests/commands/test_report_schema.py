"""The JSON report of ``verify --json`` against its schema
(``hybridver/schemas/report-v1.schema.json``, shipped in the package), on real runs of the
bundled examples: sat, unsat, unknown, timeout, exact mode, and a run with the scheduler's
decision log."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from hybridver.cli import main
from hybridver.commands.verify import REPORT_SCHEMA
from tests.conftest import EXAMPLES

jsonschema = pytest.importorskip("jsonschema")

RELU = str(EXAMPLES / "digits_relu.onnx")
SMALL = str(EXAMPLES / "digits_relu_eps_small_0.vnnlib")
LARGE = str(EXAMPLES / "digits_relu_eps_large_2.vnnlib")
TINY = [str(EXAMPLES / "tiny_relu.onnx"), str(EXAMPLES / "tiny_relu.vnnlib")]

#: name -> (arguments, config file text or None, expected verdict)
RUNS = {
    "unsat": ([RELU, SMALL], None, "unsat"),
    "unsat_after_search": (TINY, None, "unsat"),
    "sat": ([RELU, LARGE], None, "sat"),
    "exact": (TINY + ["--mode", "exact", "--backend", "highs"], None, "unsat"),
    "crosscheck": ([RELU, SMALL, "--crosscheck"], None, "unsat"),
    "unknown": ([RELU, LARGE], '[schedule]\nstages = ["whole_box"]\n', "unknown"),
    # a sat instance with every way to find the counterexample off: the limit ends it
    "timeout": ([RELU, LARGE, "--timeout", "3"],
                '[attack]\nsamples = 0\nrounds = 0\n[activation_split]\nprobe_every = 0\n'
                '[schedule]\nstages = ["whole_box", "activation_split"]\n'
                'escalations = []\n', "timeout"),
}


def schema() -> dict:
    text = (resources.files("hybridver") / REPORT_SCHEMA).read_text()
    return json.loads(text)


def report(tmp_path, capsys, args, config_text=None) -> dict:
    path = tmp_path / "report.json"
    extra = []
    if config_text is not None:
        (tmp_path / "run.toml").write_text(config_text)
        extra = ["--config", str(tmp_path / "run.toml")]
    if "--timeout" not in args:
        extra += ["--timeout", "60"]
    code = main(["verify", *args, *extra, "--progress", "off", "--json", str(path)])
    err = capsys.readouterr().err
    assert code == 0, err
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(c))


def test_the_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(schema())


@pytest.mark.parametrize("name", list(RUNS))
def test_reports_of_real_runs_follow_the_schema(name, tmp_path, capsys):
    args, config_text, verdict = RUNS[name]
    data = report(tmp_path, capsys, args, config_text)
    assert data["verdict"] == verdict, data["message"]
    jsonschema.Draft202012Validator(schema()).validate(data)
    counts = data["stats"]["confirmation"]
    assert counts["real_model_checks"] == (counts["confirmed"] + counts["unconfirmed_candidates"]
                                           + counts["near_misses"])
    if name == "unsat_after_search":
        # PGD's best points were run on the real model and held: near misses, nothing
        # that reads as a rejected counterexample
        assert counts["near_misses"] == counts["real_model_checks"] > 0
        assert counts["unconfirmed_candidates"] == 0
    if verdict == "sat":
        assert counts["confirmed"] == 1


@pytest.mark.slow
def test_a_report_with_the_schedulers_decision_log_follows_the_schema(tmp_path, capsys):
    """Activation splitting raced by an exact back end: a scheduler block with its log."""
    config_text = ('[attack]\nsamples = 0\nrounds = 0\n[schedule]\n'
                   'stages = ["whole_box", "activation_split"]\n'
                   'escalations = [{event = "case_race", after_s = 0.0}]\n')
    data = report(tmp_path, capsys, [RELU, LARGE, "--decision-log"], config_text)
    jsonschema.Draft202012Validator(schema()).validate(data)
    assert data["stats"]["scheduler"]["decision_log"]


def test_the_schema_rejects_the_old_confirmation_keys(tmp_path, capsys):
    data = report(tmp_path, capsys, [RELU, SMALL])
    data["stats"]["attack"] = {"candidates": 4, "confirmed": 0, "rejected": 4}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema()).validate(data)
