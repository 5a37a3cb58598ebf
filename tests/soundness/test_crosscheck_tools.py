"""crosscheck's tool kinds beyond ``cmd:`` (a VNN-COMP folder, a recorded results CSV,
Marabou's command line, hybridver itself) and resuming a killed run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybridver.cli import main
from hybridver.soundness.crosscheck import read_rows
from tests.soundness.crosscheck_fixtures import assert_processes_gone, fake_tool, write_benchmark
from tests.soundness.test_crosscheck import crosscheck, row

REPO = Path(__file__).resolve().parents[2]


def test_a_killed_run_keeps_its_rows_and_resume_runs_only_the_rest(tmp_path):
    csv = write_benchmark(tmp_path / "bench")
    log = tmp_path / "tool.log"
    slow = "time.sleep(0.7)\nanswer = 'unsat'"
    tools = [fake_tool(tmp_path, "slow_a", slow), fake_tool(tmp_path, "slow_b", slow)]
    report = tmp_path / "report"
    argv = ["crosscheck", str(csv), *[a for t in tools for a in ("--tool", t)],
            "--report", str(report), "--progress", "off", "--no-plots"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAKE_TOOL_LOG": str(log)}
    proc = subprocess.Popen([sys.executable, "-m", "hybridver", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(read_rows(report / "rows.jsonl")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = (report / "rows.jsonl").read_text().splitlines()
    finished = {(r["tool"], Path(r["vnnlib"]).name) for r in map(json.loads, before)}
    assert 2 <= len(finished) < 4, "the run was not killed in the middle"
    time.sleep(1.0)  # the tool that was running when crosscheck died ends on its own
    os.environ["FAKE_TOOL_LOG"] = str(log)
    try:
        code = main([*argv, "--resume"])
    finally:
        del os.environ["FAKE_TOOL_LOG"]
    after = (report / "rows.jsonl").read_text().splitlines()
    assert code == 0 and after[:len(before)] == before and len(after) == 4
    runs = [tuple(line.split()) for line in log.read_text().splitlines()]
    for tool, prop in finished:  # a finished pair never runs again
        assert runs.count((f"{tool}.py", prop)) == 1
    data = json.loads((report / "report.json").read_text())
    assert sorted((r["tool"], r["vnnlib"]) for r in data["rows"]) == sorted(
        (t, f"vnnlib/{p}.vnnlib") for t in ("slow_a", "slow_b") for p in ("sat", "unsat"))


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_a_vnncomp_tool_folder_is_prepared_then_run(tmp_path):
    csv = write_benchmark(tmp_path / "mybench")
    tool = tmp_path / "tool"
    tool.mkdir()
    calls = tmp_path / "calls"
    _script(tool / "prepare_instance.sh",
            f'#!/bin/bash\necho "prepare $*" >> {calls}\n[ "$1" = v1 ] || exit 1\n')
    _script(tool / "run_instance.sh",
            f'#!/bin/bash\necho "run $*" >> {calls}\n'
            'case "$4" in */unsat.vnnlib) echo unsat > "$5";; '
            '*) printf "sat\\n((X_0 1.0)\\n (X_1 1.0)\\n (Y_0 2.0)\\n (Y_1 0.0))\\n" > "$5";; '
            "esac\n")
    code, report = crosscheck(tmp_path, csv, [f"comp=vnncomp:{tool}"])
    assert code == 0
    assert row(report, "comp", "sat")["cex"]["status"] == "confirmed"
    assert row(report, "comp", "unsat")["verdict"] == "unsat"
    lines = calls.read_text().splitlines()
    assert lines[0].split()[:3] == ["prepare", "v1", "mybench"]
    run = lines[1].split()
    assert run[:3] == ["run", "v1", "mybench"] and run[-1] == "30"
    assert run[3].endswith("tiny.onnx") and run[4].endswith("sat.vnnlib")


def test_a_failed_preparation_is_an_error_row(tmp_path):
    csv = write_benchmark(tmp_path / "bench")
    tool = tmp_path / "tool"
    tool.mkdir()
    _script(tool / "prepare_instance.sh", "#!/bin/bash\necho cannot >&2\nexit 3\n")
    _script(tool / "run_instance.sh", "#!/bin/bash\necho unsat > $5\n")
    _, report = crosscheck(tmp_path, csv, [f"comp=vnncomp:{tool}"])
    r = report["rows"][0]
    assert r["verdict"] == "error" and "prepare_instance.sh failed" in r["message"]


def test_recorded_competition_answers_are_cross_checked(tmp_path):
    csv = write_benchmark(tmp_path / "bench", expected={"sat.vnnlib": "sat",
                                                        "unsat.vnnlib": "unsat"})
    recorded = tmp_path / "rec.csv"
    recorded.write_text(
        "tiny,vnncomp/benchmarks/tiny/onnx/tiny.onnx,vnncomp/benchmarks/tiny/vnnlib/"
        "sat.vnnlib,0.1,unsat,3.5\n"
        "tiny,vnncomp/benchmarks/tiny/onnx/tiny.onnx.gz,vnncomp/benchmarks/tiny/vnnlib/"
        "unsat.vnnlib.gz,0.1,sat,1.25\n")
    code, report = crosscheck(tmp_path, csv, [f"rec=results:{recorded}"])
    assert code == 3
    false_unsat, false_sat = row(report, "rec", "sat"), row(report, "rec", "unsat")
    assert false_unsat["flags"] == ["FALSE_UNSAT"] and false_unsat["time_s"] == 3.5
    assert false_sat["flags"] == ["INVALID_SAT"]
    assert false_sat["cex"]["status"] == "unchecked"


def test_recorded_acasxu_answers_of_vnncomp_2025(shared_benchmarks, tmp_path):
    """The recorded answers of the 2025 competition on ACAS Xu against the expected
    answers (those agree with the scoring, so no tool is flagged)."""
    folder = shared_benchmarks / "acasxu"
    recorded = folder / "results_vnncomp2025" / "nnenum.csv"
    if not recorded.is_file():
        pytest.skip("no recorded 2025 results")
    subset = tmp_path / "acas.csv"
    subset.write_text("".join(line + "\n" for line in
                              (folder / "acasxu_instances.csv").read_text().splitlines()[:4]))
    shutil.copy(folder / "expected_results.csv", tmp_path / "expected_results.csv")
    code, report = crosscheck(tmp_path, subset, [f"nnenum=results:{recorded}"],
                              "--root", str(folder))
    assert code == 0 and len(report["rows"]) == 4
    assert all(r["verdict"] in ("sat", "unsat") for r in report["rows"])


_FAKE_MARABOU = """#!/usr/bin/env python3
# prints what Marabou's command line prints, and writes its summary file
import sys
args = sys.argv[1:]
onnx, vnnlib = args[0], args[1]
summary = args[args.index("--summary-file") + 1]
assert args[args.index("--timeout") + 1] == "30"
if vnnlib.endswith("/sat.vnnlib"):
    print("sat\\nInput assignment:\\n\\tx0 = 1.000000\\n\\tx1 = 1.000000\\n")
    print("Output:\\n\\ty0 = 2.000000\\n\\ty1 = 0.000000\\n")
    open(summary, "w").write("sat 0 0 0\\n")
else:
    print("unsat")
    open(summary, "w").write("unsat 0 3 0\\n")
"""


def test_the_marabou_adapter_reads_its_verdict_and_assignment(tmp_path):
    csv = write_benchmark(tmp_path / "bench")
    fake = tmp_path / "Marabou"
    _script(fake, _FAKE_MARABOU.replace("#!/usr/bin/env python3", f"#!{sys.executable}"))
    code, report = crosscheck(tmp_path, csv, [f"mara=marabou:{fake}"])
    assert code == 0
    sat = row(report, "mara", "sat")
    assert sat["verdict"] == "sat" and sat["cex"]["status"] == "confirmed"
    assert row(report, "mara", "unsat")["verdict"] == "unsat"


def test_real_marabou_on_the_tiny_net(tmp_path):
    if shutil.which("Marabou") is None:
        pytest.skip("Marabou is not installed (pip install maraboupy)")
    csv = write_benchmark(tmp_path / "bench")
    code, report = crosscheck(tmp_path, csv, ["marabou=marabou:"])
    assert code == 0 and [r["verdict"] for r in report["rows"]] == ["sat", "unsat"]


@pytest.mark.slow
def test_hybridver_exact_highs_on_the_tiny_net(tmp_path):
    csv = write_benchmark(tmp_path / "bench", expected={"sat.vnnlib": "sat",
                                                        "unsat.vnnlib": "unsat"})
    code, report = crosscheck(tmp_path, csv, ["highs=hybridver:exact:highs"], "--workers", "2")
    sat, unsat = row(report, "highs", "sat"), row(report, "highs", "unsat")
    assert sat["verdict"] == "sat" and sat["cex"]["status"] == "confirmed", sat
    assert unsat["verdict"] == "unsat", unsat
    assert code == 0 and report["summary"]["highs"]["solved"] == 2


def test_a_recorded_answer_is_timed_against_the_csvs_limit_not_the_cap(tmp_path):
    csv = write_benchmark(tmp_path / "bench", timeout=100)
    recorded = tmp_path / "rec.csv"
    recorded.write_text("tiny,tiny.onnx,sat.vnnlib,0.1,unknown,1\n"
                        "tiny,tiny.onnx,unsat.vnnlib,0.1,unsat,50\n")
    _, report = crosscheck(tmp_path, csv, [f"rec=results:{recorded}"], "--timeout-cap", "10")
    r = row(report, "rec", "unsat")
    assert r["timeout_s"] == 100 and r["flags"] == [] and r["solved"]
    assert report["instances"][1]["timeout_s"] == 10


def test_recorded_counterexample_files_are_checked(tmp_path):
    import gzip
    csv = write_benchmark(tmp_path / "bench")
    ce = tmp_path / "ces"
    ce.mkdir()
    # the competition's files: the assignment alone, gzipped or not
    (ce / "tiny_sat.counterexample.gz").write_bytes(gzip.compress(
        b"((X_0 1.0)\n(X_1 1.0)\n(Y_0 2.0)\n(Y_1 0.0))\n"))
    (ce / "tiny_unsat.counterexample").write_text("((X_0 0.5)\n(X_1 0.5)\n(Y_0 1.0)\n(Y_1 0.0))")
    recorded = tmp_path / "rec.csv"
    recorded.write_text("tiny,tiny.onnx,sat.vnnlib,0,sat,1\ntiny,tiny.onnx,unsat.vnnlib,0,sat,1\n")
    code, report = crosscheck(tmp_path, csv, [f"rec=results:{recorded},{ce}",
                                              fake_tool(tmp_path, "always_unsat")])
    good, bad = row(report, "rec", "sat"), row(report, "rec", "unsat")
    assert good["cex"]["status"] == "confirmed" and good["flags"] == []
    assert bad["cex"]["status"] == "invalid" and bad["flags"] == ["INVALID_SAT"]
    assert row(report, "always_unsat", "sat")["flags"] == ["FALSE_UNSAT"]
    assert report["instances"][0]["evidence"] == ["counterexample of rec"] and code == 3


def test_an_interrupted_run_kills_its_tools_and_keeps_no_row_for_them(tmp_path):
    csv = write_benchmark(tmp_path / "bench", timeout=300)
    pids = tmp_path / "pids"
    body = f"open({str(pids)!r}, 'a').write(str(os.getpid()) + '\\n')\ntime.sleep(300)\n"
    tool = fake_tool(tmp_path, "hangs", "import os\n" + body + "answer = 'unsat'")
    report = tmp_path / "report"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hybridver", "crosscheck", str(csv), "--tool", tool,
         "--report", str(report), "--progress", "off", "--no-plots"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
        # as from a terminal: a test run started in the background (nohup, `&`) ignores
        # SIGINT, and a child that inherits that never sees the interrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err
    assert read_rows(report / "rows.jsonl") == []
    pid = int(pids.read_text().split()[0])
    time.sleep(0.2)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    assert open(f"/proc/{pid}/stat").read().split()[2] == "Z", "the tool still runs"


def test_a_script_child_in_its_own_session_is_killed_too(tmp_path):
    """VNN-COMP scripts start the verifier with setsid: killing the script's process group
    alone would leave it running."""
    csv = write_benchmark(tmp_path / "bench", timeout=1)
    tool = tmp_path / "tool"
    tool.mkdir()
    pids = tmp_path / "pids"
    _script(tool / "prepare_instance.sh", "#!/bin/bash\nexit 0\n")
    _script(tool / "run_instance.sh",
            f'#!/bin/bash\nsetsid sleep 300 &\necho $! >> {pids}\nwait\n')
    _, report = crosscheck(tmp_path, csv, [f"comp=vnncomp:{tool}"], "--grace", "0.5")
    assert [r["verdict"] for r in report["rows"]] == ["timeout", "timeout"]
    assert_processes_gone(pids, "setsid child")


@pytest.mark.slow
def test_hybridvers_own_vnncomp_scripts_through_the_vnncomp_kind(tmp_path, monkeypatch):
    if not (REPO / "vnncomp" / "run_instance.sh").is_file():
        pytest.skip("no vnncomp/ scripts in this tree")
    csv = write_benchmark(tmp_path / "bench")
    monkeypatch.setenv("HYBRIDVER", f"{sys.executable} -m hybridver")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    code, report = crosscheck(tmp_path, csv, [f"hv=vnncomp:{REPO / 'vnncomp'}"])
    assert [r["verdict"] for r in report["rows"]] == ["sat", "unsat"], report["rows"]
    assert row(report, "hv", "sat")["cex"]["status"] == "confirmed" and code == 0
