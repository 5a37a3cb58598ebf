"""``benchmarks/fuzz.py``: the budget is split over the fuzzers, the summary is written,
a finding leaves a reproducer that ``--replay`` reruns."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.fuzz.oracles import Finding

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz.py"


def _script():
    spec = importlib.util.spec_from_file_location("fuzz_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_short_run_writes_the_summary_table(tmp_path, capsys):
    script = _script()
    status = script.main(["--minutes", "0.01", "--only", "import", "--seed", "4",
                          "--out", str(tmp_path)])
    summary = (tmp_path / "summary.md").read_text()
    assert "| fuzzer | cases | agree | refused |" in summary
    assert "| import |" in summary and "| backends |" not in summary
    assert summary in capsys.readouterr().out + "\n"
    assert status == 0


def test_a_finding_leaves_a_reproducer_that_replays(tmp_path, monkeypatch, capsys):
    script = _script()
    real = script.run_case

    def wrong(fuzzer, seed, index, timeout=10.0):
        result = real(fuzzer, seed, index, timeout)
        result.finding = Finding("disagree", "planted by the test")
        return result

    monkeypatch.setattr(script, "run_case", wrong)
    rows, groups = script.run_fuzzer("import", 0.0, 4, tmp_path, 10.0, log=lambda s: None)
    assert rows["cases"] == 1 and rows["disagree"] == 1 and rows["known"] == 0
    case = json.loads((tmp_path / "import-4-0" / "case.json").read_text())
    assert (tmp_path / "import-4-0" / "model.onnx").stat().st_size > 0
    assert case["replay"].endswith("--replay import:4:0")
    monkeypatch.setattr(script, "run_case", real)
    assert script.main(["--replay", "import:4:0"]) == 0     # the real case agrees
    assert json.loads(capsys.readouterr().out)["label"] == case["label"]
