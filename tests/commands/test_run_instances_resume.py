"""run-instances writes each row as it finishes and ``--resume`` runs only the instances
missing from ``--output`` (a last row cut short by a kill is run again)."""

from __future__ import annotations

import csv
import shutil

from hybridver.cli import main
from tests.conftest import EXAMPLES

NAMES = ["tiny_relu.onnx", "tiny_relu.vnnlib", "digits_relu.onnx",
         "digits_relu_eps_small_0.vnnlib", "digits_relu_eps_large_2.vnnlib"]


def campaign(folder):
    for name in NAMES + ["expected_results.csv"]:
        shutil.copy(EXAMPLES / name, folder / name)
    (folder / "instances.csv").write_text(
        "tiny_relu.onnx,tiny_relu.vnnlib,60\n"
        "digits_relu.onnx,digits_relu_eps_small_0.vnnlib,60\n"
        "digits_relu.onnx,digits_relu_eps_large_2.vnnlib,60\n")
    return folder / "instances.csv"


def test_resume_keeps_finished_rows_and_runs_the_rest(tmp_path, capsys):
    instances = campaign(tmp_path)
    output = tmp_path / "out.csv"
    # what a run killed during its third instance leaves: two rows, a third cut short
    output.write_text("onnx,vnnlib,timeout_s,verdict,expected,time_s,check,message\n"
                      "tiny_relu.onnx,tiny_relu.vnnlib,60.0,unsat,unsat,0.5,ok,\n"
                      "digits_relu.onnx,digits_relu_eps_small_0.vnnlib,60.0,unsat,unsat,"
                      "0.7,ok,\n"
                      "digits_relu.onnx,digits_relu_eps_large_2.vnnlib,60.0,sa")
    code = main(["run-instances", str(instances), "--output", str(output), "--resume",
                 "--progress", "off"])
    out = capsys.readouterr().out
    assert code == 0
    assert "resumed: 2 finished rows kept" in out
    assert "tiny_relu.vnnlib" not in out and "eps_small_0" not in out  # not run again
    rows = list(csv.DictReader(output.open()))
    assert [(r["vnnlib"], r["verdict"]) for r in rows] == [
        ("tiny_relu.vnnlib", "unsat"), ("digits_relu_eps_small_0.vnnlib", "unsat"),
        ("digits_relu_eps_large_2.vnnlib", "sat")]
    assert rows[0]["time_s"] == "0.5"           # the kept rows are unchanged
    assert "solved 3/3, wrong 0" in out


def test_without_resume_the_output_starts_over(tmp_path, capsys):
    instances = campaign(tmp_path)
    output = tmp_path / "out.csv"
    output.write_text("onnx,vnnlib,timeout_s,verdict,expected,time_s,check,message\n"
                      "tiny_relu.onnx,tiny_relu.vnnlib,60.0,unsat,unsat,0.5,ok,\n")
    assert main(["run-instances", str(instances), "--output", str(output), "--limit", "1",
                 "--progress", "off"]) == 0
    rows = list(csv.DictReader(output.open()))
    assert len(rows) == 1 and rows[0]["time_s"] != "0.5"
