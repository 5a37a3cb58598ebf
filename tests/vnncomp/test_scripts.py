"""The VNN-COMP tool scripts in ``vnncomp/``: prepare_instance.sh and run_instance.sh run
hybridver on the bundled examples by the competition's conventions (``v1`` first, the
results file written, leftovers of a previous run stopped)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort
import pytest

from hybridver.result import Verdict, read_results_file
from tests.conftest import EXAMPLES, REPO

SCRIPTS = REPO / "vnncomp"
MODEL = EXAMPLES / "digits_relu.onnx"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("setsid") is None,
                                reason="the scripts need bash and setsid")


@pytest.fixture()
def env(tmp_path):
    """The scripts run this interpreter's hybridver, with a pid file of the test's own."""
    return {**os.environ, "HYBRIDVER": f"{sys.executable} -m hybridver",
            "HYBRIDVER_VNNCOMP_PIDFILE": str(tmp_path / "run.pid")}


def _run(script: str, *args: str, env: dict, timeout: float = 120):
    return subprocess.run(["bash", str(SCRIPTS / script), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_an_unsat_instance_writes_unsat(tmp_path, env):
    spec = EXAMPLES / "digits_relu_eps_small_0.vnnlib"
    assert _run("prepare_instance.sh", "v1", "digits", str(MODEL), str(spec),
                env=env).returncode == 0
    results = tmp_path / "out.txt"
    done = _run("run_instance.sh", "v1", "digits", str(MODEL), str(spec), str(results), "60",
                env=env)
    assert done.returncode == 0, done.stderr
    assert read_results_file(results).verdict is Verdict.UNSAT
    assert not (tmp_path / "run.pid").exists()


def test_a_sat_instance_writes_a_counterexample_onnxruntime_confirms(tmp_path, env):
    spec = EXAMPLES / "digits_relu_eps_large_2.vnnlib"
    results = tmp_path / "out.txt"
    done = _run("run_instance.sh", "v1", "digits", str(MODEL), str(spec), str(results), "60",
                env=env)
    assert done.returncode == 0, done.stderr
    parsed = read_results_file(results)
    assert parsed.verdict is Verdict.SAT
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    y = session.run(None, {inp.name: parsed.x.astype(np.float32).reshape(shape)})[0]
    np.testing.assert_allclose(y.reshape(-1), parsed.y, rtol=1e-6, atol=1e-6)


def test_bad_input_writes_error_and_exits_non_zero(tmp_path, env):
    results = tmp_path / "out.txt"
    done = _run("run_instance.sh", "v1", "digits", str(MODEL), str(tmp_path / "none.vnnlib"),
                str(results), "10", env=env)
    assert done.returncode == 2
    assert "file not found" in done.stderr
    assert results.read_text().strip() == "error"


def test_wrong_version_or_missing_files_are_refused(tmp_path, env):
    spec = EXAMPLES / "digits_relu_eps_small_0.vnnlib"
    wrong = _run("prepare_instance.sh", "v2", "digits", str(MODEL), str(spec), env=env)
    assert wrong.returncode != 0 and "usage" in wrong.stderr
    missing = _run("prepare_instance.sh", "v1", "digits", str(tmp_path / "m.onnx"), str(spec),
                   env=env)
    assert missing.returncode != 0 and "file not found" in missing.stderr
    short = _run("run_instance.sh", "v1", "digits", str(MODEL), env=env)
    assert short.returncode != 0 and "usage" in short.stderr


def test_prepare_stops_what_a_killed_run_left_behind(tmp_path, env):
    """A run_instance.sh killed at the competition's deadline leaves its hybridver process
    group behind; the next prepare_instance.sh ends it (and only it)."""
    leftover = subprocess.Popen(["setsid", "sleep", "300"])
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        (tmp_path / "run.pid").write_text(f"{leftover.pid}\n")
        spec = EXAMPLES / "digits_relu_eps_small_0.vnnlib"
        assert _run("prepare_instance.sh", "v1", "digits", str(MODEL), str(spec),
                    env=env).returncode == 0
        deadline = time.monotonic() + 10
        while leftover.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert leftover.poll() is not None
        assert bystander.poll() is None
        assert not (tmp_path / "run.pid").exists()
    finally:
        for proc in (leftover, bystander):
            proc.kill()
            proc.wait()
