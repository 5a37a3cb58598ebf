"""``run-instances --cluster`` on a real local cluster: the local path's verdicts, rows
written as they finish, and ``--resume`` after the driver was killed mid-campaign."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybridver.cli import main
from hybridver.commands.run_instances import read_rows
from tests.conftest import EXAMPLES
from tests.cluster.cpus import free_cpu  # noqa: F401 - a fixture

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def campaign(folder: Path, lines: list[str]) -> Path:
    for name in {p for line in lines for p in line.split(",")[:2]} | {"expected_results.csv"}:
        shutil.copy(EXAMPLES / name, folder / name)
    (folder / "instances.csv").write_text("".join(line + "\n" for line in lines))
    return folder / "instances.csv"


def verdicts(path: Path) -> dict:
    return {(r["onnx"], r["vnnlib"]): (r["verdict"], r["check"])
            for r in csv.DictReader(path.open())}


def test_cluster_gives_the_local_verdicts(free_cpu, ray_address, tmp_path, capsys):
    instances = campaign(tmp_path, ["tiny_relu.onnx,tiny_relu.vnnlib,60",
                                    "digits_relu.onnx,digits_relu_eps_small_0.vnnlib,60",
                                    "digits_relu.onnx,digits_relu_eps_large_2.vnnlib,60",
                                    "digits_sigmoid.onnx,digits_sigmoid_eps_large_2.vnnlib,60"])
    found = {}
    for name, extra in (("local", []), ("cluster", ["--cluster", ray_address])):
        output = tmp_path / f"{name}.csv"
        assert main(["run-instances", str(instances), "--output", str(output),
                     "--progress", "off", "--timeout-cap", "30"] + extra) == 0
        assert "wrong 0" in capsys.readouterr().out
        found[name] = verdicts(output)
    assert found["cluster"] == found["local"]
    assert len(found["cluster"]) == 4
    assert all(check == "ok" for _, check in found["cluster"].values())


def test_resume_after_the_driver_was_killed(free_cpu, ray_address, tmp_path, capsys):
    lines = (EXAMPLES / "instances.csv").read_text().split()
    instances = campaign(tmp_path, lines)
    output = tmp_path / "out.csv"
    command = [sys.executable, "-m", "hybridver", "run-instances", str(instances), "--output",
               str(output), "--progress", "off", "--timeout-cap", "30", "--cluster",
               ray_address]
    driver = subprocess.Popen(command, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + 240
    while not read_rows(output) and driver.poll() is None and time.monotonic() < end:
        time.sleep(0.02)
    os.kill(driver.pid, signal.SIGKILL)                 # mid-campaign
    driver.wait(timeout=30)
    finished = read_rows(output)
    assert 1 <= len(finished) < len(lines)
    assert main(["run-instances", str(instances), "--output", str(output), "--progress", "off",
                 "--timeout-cap", "30", "--cluster", ray_address, "--resume"]) == 0
    out = capsys.readouterr().out
    assert f"resumed: {len(finished)} finished rows kept" in out
    for row in finished:                                 # none of them ran again
        assert f"{row['onnx']} {row['vnnlib']} " not in out
    rows = list(csv.DictReader(output.open()))
    assert rows[: len(finished)] == finished
    assert sorted((r["onnx"], r["vnnlib"]) for r in rows) == \
        sorted(tuple(line.split(",")[:2]) for line in lines)
    assert all(r["check"] == "ok" for r in rows) and "solved 10/10, wrong 0" in out


def test_a_lost_head_ends_the_campaign_with_one_clear_error(tmp_path):
    from tests.cluster.ray_head import start_head, stop_head

    lines = (EXAMPLES / "instances.csv").read_text().split()
    instances = campaign(tmp_path, lines)
    output = tmp_path / "out.csv"
    state = start_head(cpus=1)
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO),
               "RAY_gcs_rpc_server_reconnect_timeout_s": "30"}
        driver = subprocess.Popen(
            [sys.executable, "-m", "hybridver", "run-instances", str(instances), "--output",
             str(output), "--progress", "off", "--cluster", state["address"]],
            cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        end = time.monotonic() + 240
        while not read_rows(output) and driver.poll() is None and time.monotonic() < end:
            time.sleep(0.02)
    finally:
        stop_head(state)
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 2, (out, err)
    errors = [line for line in err.splitlines() if line.startswith("hybridver: error:")]
    assert len(errors) == 1 and "lost the Ray cluster" in errors[0], err
    assert "solved" not in out                           # no summary, no verdict for the rest
    assert 1 <= len(read_rows(output)) < len(lines)      # the rows before the loss stand
