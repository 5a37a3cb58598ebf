"""``hybridver crosscheck`` end to end on a tiny real network with fake tools: false
``unsat`` and invalid ``sat`` are caught (exit 3), correct answers pass, tolerance-only
counterexamples prove nothing, witnesses are re-checked, and each run is bounded."""

from __future__ import annotations

import json

import pytest

from hybridver.cli import main
from tests.soundness.crosscheck_fixtures import (assert_processes_gone, fake_tool, write_benchmark,
                                                 write_witnesses)


def crosscheck(tmp_path, csv, tools, *extra, report="report"):
    code = main(["crosscheck", str(csv), *[a for t in tools for a in ("--tool", t)],
                 "--report", str(tmp_path / report), "--progress", "off", "--no-plots",
                 *extra])
    data = json.loads((tmp_path / report / "report.json").read_text())
    return code, data


def row(report, tool, prop):
    return next(r for r in report["rows"]
                if r["tool"] == tool and r["vnnlib"] == f"vnnlib/{prop}.vnnlib")


def test_always_unsat_is_a_false_unsat_against_a_planted_witness(tmp_path):
    csv = write_benchmark(tmp_path / "bench")
    witnesses = write_witnesses(tmp_path / "witnesses.json")
    code, report = crosscheck(tmp_path, csv, [fake_tool(tmp_path, "always_unsat")],
                              "--witnesses", str(witnesses))
    assert code == 3 and report["exit_code"] == 3
    assert row(report, "always_unsat", "sat")["flags"] == ["FALSE_UNSAT"]
    assert row(report, "always_unsat", "unsat")["flags"] == []
    sat_instance = report["instances"][0]
    assert sat_instance["witness"]["status"] == "confirmed"
    assert sat_instance["evidence"] == ["witness"] and sat_instance["has_counterexample"]
    assert report["summary"]["always_unsat"]["wrong"] == 1


def test_always_unsat_is_caught_by_another_tools_confirmed_counterexample(tmp_path):
    csv = write_benchmark(tmp_path / "bench")
    code, report = crosscheck(tmp_path, csv, [fake_tool(tmp_path, "always_unsat"),
                                              fake_tool(tmp_path, "correct")])
    assert code == 3
    assert row(report, "always_unsat", "sat")["flags"] == ["FALSE_UNSAT"]
    assert report["instances"][0]["evidence"] == ["counterexample of correct"]
    good = row(report, "correct", "sat")
    assert good["flags"] == [] and good["solved"]
    assert good["cex"]["status"] == "confirmed" and good["cex"]["margin"] == pytest.approx(-0.5)


def test_expected_sat_alone_makes_an_unsat_false(tmp_path):
    csv = write_benchmark(tmp_path / "bench", expected={"sat.vnnlib": "sat",
                                                        "unsat.vnnlib": "unsat"})
    code, report = crosscheck(tmp_path, csv, [fake_tool(tmp_path, "always_unsat")])
    assert code == 3 and row(report, "always_unsat", "sat")["flags"] == ["FALSE_UNSAT"]
    assert row(report, "always_unsat", "unsat")["solved"]


def test_a_wrong_counterexample_is_an_invalid_sat(tmp_path):
    csv = write_benchmark(tmp_path / "bench")
    code, report = crosscheck(tmp_path, csv, [fake_tool(tmp_path, "wrong_cex")])
    assert code == 3
    for prop in ("sat", "unsat"):
        r = row(report, "wrong_cex", prop)
        assert r["flags"] == ["INVALID_SAT"] and not r["solved"]
        assert r["cex"]["status"] == "invalid" and "not violated" in r["cex"]["reason"]
    assert report["summary"]["wrong_cex"]["wrong"] == 2


def test_a_correct_tool_raises_no_flag(tmp_path, capsys):
    csv = write_benchmark(tmp_path / "bench", expected={"sat.vnnlib": "sat",
                                                        "unsat.vnnlib": "unsat"})
    code, report = crosscheck(tmp_path, csv, [fake_tool(tmp_path, "correct")])
    assert code == 0 and report["violations"] == 0
    assert [r["verdict"] for r in report["rows"]] == ["sat", "unsat"]
    assert all(r["flags"] == [] and r["solved"] for r in report["rows"])
    assert report["summary"]["correct"]["solved"] == 2
    assert "violations 0" in capsys.readouterr().out


def test_a_tolerance_only_counterexample_proves_nothing_against_unsat(tmp_path):
    """VNN-COMP accepts the point (outside the box by 5e-5), so its sat is not flagged;
    it shows no real violation, so the other tool's unsat is not called false: the two
    disagree (exit 4)."""
    csv = write_benchmark(tmp_path / "bench")
    code, report = crosscheck(tmp_path, csv, [fake_tool(tmp_path, "tolerance_cex"),
                                              fake_tool(tmp_path, "always_unsat")])
    tol = row(report, "tolerance_cex", "sat")
    assert tol["cex"]["status"] == "tolerance" and 0 < tol["cex"]["input_excess"] <= 1e-4
    assert tol["flags"] == ["DISAGREEMENT"]
    assert row(report, "always_unsat", "sat")["flags"] == ["DISAGREEMENT"]
    assert code == 4 and report["violations"] == 0


def test_a_witness_that_does_not_hold_is_not_trusted(tmp_path):
    csv = write_benchmark(tmp_path / "bench")
    witnesses = write_witnesses(tmp_path / "w.json", x=[0.0, 0.0], y=[0.0, 0.0])
    code, report = crosscheck(tmp_path, csv, [fake_tool(tmp_path, "always_unsat")],
                              "--witnesses", str(witnesses))
    assert report["instances"][0]["witness"]["status"] == "invalid"
    assert not report["instances"][0]["has_counterexample"]
    assert code == 0 and row(report, "always_unsat", "sat")["flags"] == []


def test_an_answer_after_the_limit_is_over_time(tmp_path):
    csv = write_benchmark(tmp_path / "bench", timeout=1)
    code, report = crosscheck(tmp_path, csv, [fake_tool(tmp_path, "slow_unsat")],
                              "--grace", "20")
    r = row(report, "slow_unsat", "unsat")
    assert r["verdict"] == "unsat" and r["flags"] == ["OVER_TIME"] and not r["solved"]
    assert code == 0  # late, not unsound


def test_a_tool_past_its_limit_is_killed_with_its_children(tmp_path):
    csv = write_benchmark(tmp_path / "bench", timeout=1)
    pids = tmp_path / "pids"
    body = (f"import subprocess\np = subprocess.Popen(['sleep', '300'])\n"
            f"open({str(pids)!r}, 'a').write(str(p.pid) + '\\n')\ntime.sleep(300)\n"
            "answer = 'unsat'")
    code, report = crosscheck(tmp_path, csv, [fake_tool(tmp_path, "hangs", body)],
                              "--grace", "0.5")
    assert [r["verdict"] for r in report["rows"]] == ["timeout", "timeout"]
    assert all(r["killed"] and r["time_s"] < 30 for r in report["rows"])
    assert_processes_gone(pids, "child of a killed tool")


def test_gzipped_instance_files_are_read(tmp_path):
    import gzip
    folder = tmp_path / "bench"
    write_benchmark(folder)
    for path in (folder / "onnx" / "tiny.onnx", folder / "vnnlib" / "sat.vnnlib"):
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    (folder / "one.csv").write_text("onnx/tiny.onnx,vnnlib/sat.vnnlib.gz,30\n")
    code, report = crosscheck(tmp_path, folder / "one.csv", [fake_tool(tmp_path, "correct")])
    r = report["rows"][0]
    assert code == 0 and r["verdict"] == "sat" and r["cex"]["status"] == "confirmed"
    assert r["vnnlib"] == "vnnlib/sat.vnnlib"


def test_two_workers_give_the_same_rows(tmp_path):
    csv = write_benchmark(tmp_path / "bench")
    tools = [fake_tool(tmp_path, "correct"), fake_tool(tmp_path, "always_unsat")]
    _, one = crosscheck(tmp_path, csv, tools, report="one")
    _, two = crosscheck(tmp_path, csv, tools, "--workers", "2", report="two")
    key = [(r["tool"], r["vnnlib"], r["verdict"], r["flags"]) for r in one["rows"]]
    assert key == [(r["tool"], r["vnnlib"], r["verdict"], r["flags"]) for r in two["rows"]]


@pytest.mark.parametrize("argv, words", [
    (["--tool", "x=nosuch:1"], "unknown kind"),
    (["--tool", "noequals"], "NAME=KIND:ARG"),
    (["--tool", "h=hybridver:fast"], "MODE"),
    (["--tool", "c=cmd:run {nosuch}"], "placeholders"),
    (["--tool", "v=vnncomp:/nonexistent"], "prepare_instance.sh"),
    (["--tool", "m=marabou:/nonexistent/Marabou"], "Marabou not found"),
])
def test_bad_tools_exit_2_with_one_line(tmp_path, capsys, argv, words):
    csv = write_benchmark(tmp_path / "bench")
    code = main(["crosscheck", str(csv), *argv, "--report", str(tmp_path / "r"),
                 "--progress", "off"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and words in err


def test_a_missing_csv_exits_2(tmp_path, capsys):
    code = main(["crosscheck", str(tmp_path / "none.csv"), "--tool", "a=hybridver:hybrid",
                 "--report", str(tmp_path / "r"), "--progress", "off"])
    assert code == 2 and "file not found" in capsys.readouterr().err


def test_the_tool_gets_its_placeholders(tmp_path):
    csv = write_benchmark(tmp_path / "bench", timeout=7)
    body = ("answer = 'unknown'\nopen(results + '.args', 'w').write(' '.join(sys.argv[1:]))")
    _, report = crosscheck(tmp_path, csv, [fake_tool(tmp_path, "echo", body)])
    args = (tmp_path / "report" / "runs" / "0_echo" / "results.txt.args").read_text().split()
    assert args[0].endswith("tiny.onnx") and args[1].endswith("sat.vnnlib") and args[3] == "7"
    assert report["rows"][0]["verdict"] == "unknown"



def test_relative_paths_of_csv_and_report(tmp_path, monkeypatch):
    """Tools run in folders of their own: the paths they get must not be relative."""
    write_benchmark(tmp_path / "bench")
    tool = fake_tool(tmp_path, "correct")
    monkeypatch.chdir(tmp_path)
    code = main(["crosscheck", "bench/instances.csv", "--tool", tool, "--report", "rel",
                 "--progress", "off", "--no-plots"])
    report = json.loads((tmp_path / "rel" / "report.json").read_text())
    assert code == 0 and [r["verdict"] for r in report["rows"]] == ["sat", "unsat"]


def test_an_invalid_sat_does_not_make_the_unsat_tools_disagree(tmp_path):
    csv = write_benchmark(tmp_path / "bench")
    code, report = crosscheck(tmp_path, csv, [fake_tool(tmp_path, "wrong_cex"),
                                              fake_tool(tmp_path, "correct")])
    assert row(report, "correct", "unsat")["flags"] == []
    assert row(report, "wrong_cex", "unsat")["flags"] == ["INVALID_SAT"]
    assert code == 3 and report["disagreements"] == 0
