"""The Ray executor on a real local cluster: the process pool's answers, real cancellation,
the hard deadline, a killed worker's job retried, a lost head as one clear error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybridver.backends import Limits, Status
from hybridver.schedule import Job, LocalProcessExecutor
from tests.cluster.cpus import free_cpu  # noqa: F401 - a fixture
from tests.schedule.conftest import load, violates

pytest.importorskip("highspy")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny():
    return load("tiny_relu.onnx", "tiny_relu.vnnlib")


@pytest.fixture(scope="module")
def digits_sat():
    return load("digits_relu.onnx", "digits_relu_eps_large_2.vnnlib")


@pytest.fixture
def ray_ex(free_cpu, ray_address, tmp_path):
    from hybridver.cluster.executor import RayExecutor

    executor = RayExecutor(capacity=2, grace_s=0.5, pid_dir=str(tmp_path))
    yield executor
    executor.shutdown()


def drain(ex, n, timeout=120.0):
    results, end = [], time.monotonic() + timeout
    while len(results) < n and time.monotonic() < end:
        results += ex.wait(timeout=1.0)
    return results


def pids(folder: Path, n: int = 1, timeout: float = 60.0) -> list[int]:
    """The pids the tasks wrote into ``folder``, once there are at least ``n``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = sorted(int(p.stem) for p in folder.glob("*.pid"))
        if len(found) >= n:
            return found
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} task pids in {folder}")


def gone(pid: int, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


def test_same_outcomes_as_the_process_pool(ray_ex, tiny, digits_sat):
    jobs = [Job(p, "highs", Limits(time_s=20)) for p in tiny.problems] + \
           [Job(digits_sat.problems[0], b, Limits(time_s=20)) for b in ("highs", "ortools")]
    outcomes = {}
    with LocalProcessExecutor(max_workers=2) as pool:
        for name, ex in (("pool", pool), ("ray", ray_ex)):
            handles = [ex.submit(job) for job in jobs]
            results = drain(ex, len(handles))
            assert sorted(r.handle.job_id for r in results) == sorted(h.job_id for h in handles)
            outcomes[name] = {r.handle.job_id: r.outcome for r in results}
    assert ray_ex.stats["graphs_shipped"] == 2    # one per network, reused by every job
    for job_id, outcome in outcomes["ray"].items():
        assert outcome.status is outcomes["pool"][job_id].status
    statuses = [outcomes["ray"][k].status for k in sorted(outcomes["ray"])]
    assert statuses == [Status.INFEASIBLE] * len(tiny.problems) + [Status.CANDIDATE] * 2
    for k in sorted(outcomes["ray"])[-2:]:        # the candidates are real counterexamples
        assert violates(digits_sat, digits_sat.problems[0], outcomes["ray"][k].candidate.x)


def test_cancel_kills_a_long_job(ray_ex, digits_sat, tiny, tmp_path):
    handle = ray_ex.submit(Job(digits_sat.problems[0], "z3", Limits(time_s=120)))
    [pid] = pids(tmp_path)
    assert ray_ex.poll() == [] and not gone(pid, 0.5)
    assert ray_ex.cancel(handle)
    results = ray_ex.poll()
    assert [r.handle for r in results] == [handle]
    assert results[0].cancelled and results[0].outcome.status is Status.UNKNOWN
    assert gone(pid)
    assert not ray_ex.cancel(handle)
    again = ray_ex.submit(Job(tiny.problems[0], "highs", Limits(time_s=20)))
    results = drain(ray_ex, 1)
    assert [r.handle for r in results] == [again]
    assert results[0].outcome.status is Status.INFEASIBLE


def test_a_job_past_its_deadline_is_stopped(free_cpu, ray_address, digits_sat, tmp_path):
    """A stopped (SIGSTOP) worker cannot answer: the job is cancelled at time + grace
    after its start and reported as a timeout."""
    from hybridver.cluster.executor import RayExecutor

    with RayExecutor(capacity=1, grace_s=0.5, pid_dir=str(tmp_path)) as ex:
        handle = ex.submit(Job(digits_sat.problems[0], "highs", Limits(time_s=1.0)))
        [pid] = pids(tmp_path)
        os.kill(pid, signal.SIGSTOP)
        results = drain(ex, 1, timeout=30)
        assert [r.handle for r in results] == [handle]
        assert results[0].cancelled and results[0].outcome.status is Status.TIMEOUT
        assert ex.stats["deadline_kills"] == 1
        assert gone(pid)


def test_a_killed_worker_is_retried_with_the_same_answer(ray_ex, digits_sat, tmp_path):
    problem = digits_sat.problems[0]
    handle = ray_ex.submit(Job(problem, "highs", Limits(time_s=30)))
    [first] = pids(tmp_path)
    os.kill(first, signal.SIGKILL)                # mid-job: before the solver's answer
    results = drain(ray_ex, 1)
    assert [r.handle for r in results] == [handle] and not results[0].cancelled
    assert len(pids(tmp_path, 2)) == 2            # Ray ran it again in another worker
    outcome = results[0].outcome
    assert outcome.status is Status.CANDIDATE and violates(digits_sat, problem,
                                                          outcome.candidate.x)


def test_a_worker_killed_twice_is_an_error_never_an_answer(ray_ex, digits_sat, tmp_path):
    handle = ray_ex.submit(Job(digits_sat.problems[0], "highs", Limits(time_s=30)))
    [first] = pids(tmp_path)
    os.kill(first, signal.SIGKILL)
    second = [p for p in pids(tmp_path, 2) if p != first][0]
    os.kill(second, signal.SIGKILL)
    results = drain(ray_ex, 1)
    assert [r.handle for r in results] == [handle]
    assert results[0].outcome.status is Status.ERROR
    assert results[0].outcome.solver_status == "died"


_LOST_HEAD_DRIVER = """
import sys, time
from hybridver.backends import Limits
from hybridver.cluster.connect import connect
from hybridver.cluster.executor import RayExecutor
from hybridver.errors import ClusterError
from hybridver.schedule import Job
from tests.schedule.conftest import load

digits = load("digits_relu.onnx", "digits_relu_eps_large_2.vnnlib")
connect(sys.argv[1])
ex = RayExecutor(pid_dir=sys.argv[2])
ex.submit(Job(digits.problems[0], "z3", Limits(time_s=120)))
try:
    while True:
        for r in ex.wait(1.0):
            print("VERDICT", r.outcome.status, flush=True)
except ClusterError as exc:
    print(f"hybridver: error: {exc}", file=sys.stderr)
    sys.exit(2)
"""


def test_a_lost_head_is_a_clear_error_and_no_verdict(tmp_path):
    pytest.importorskip("ray")
    from tests.cluster.ray_head import start_head, stop_head

    state = start_head(cpus=1)
    try:
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": str(root),
               "RAY_gcs_rpc_server_reconnect_timeout_s": "30"}
        driver = subprocess.Popen([sys.executable, "-c", _LOST_HEAD_DRIVER, state["address"],
                                   str(tmp_path)], cwd=root, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        pids(tmp_path, timeout=120)               # the job runs on the cluster
    finally:
        stop_head(state)
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 2, (out, err)
    assert "VERDICT" not in out
    lines = [line for line in err.splitlines() if line.startswith("hybridver: error:")]
    assert len(lines) == 1 and "lost the Ray cluster" in lines[0] and "no verdict" in lines[0]
