"""The local process pool: same answers as in-process, real cancellation, recovery."""

from __future__ import annotations

import os
import time

import pytest

from hybridver.backends import Limits, Status
from hybridver.schedule import Job, LocalProcessExecutor

pytest.importorskip("highspy")


def drain(ex, n, timeout=60.0):
    results, end = [], time.monotonic() + timeout
    while len(results) < n and time.monotonic() < end:
        results += ex.wait(timeout=1.0)
    return results


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a killed child not yet reaped is a zombie: count that as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_pool_solves_like_inline(pool, tiny):
    backends = [b for b in ("highs", "ortools", "z3") if _available(b)]
    handles = [pool.submit(Job(p, b, Limits(time_s=10))) for p in tiny.problems
               for b in backends]
    results = drain(pool, len(handles))
    assert sorted(r.handle.job_id for r in results) == sorted(h.job_id for h in handles)
    for r in results:
        assert r.outcome.status is Status.INFEASIBLE, (r.handle, r.outcome)
        assert not r.cancelled


def test_cancel_kills_a_long_job(pool, digits_sat):
    if not _available("z3"):
        pytest.skip("z3 unavailable")
    problem = digits_sat.problems[0]      # 55 unstable ReLUs: z3 runs to its limit
    handle = pool.submit(Job(problem, "z3", Limits(time_s=120)))
    pid = pool.running_pids()[handle.job_id]
    time.sleep(1.0)
    assert pool.poll() == [] and alive(pid)
    start = time.monotonic()
    assert pool.cancel(handle)
    results = pool.poll()
    assert time.monotonic() - start < 6.0
    assert [r.handle for r in results] == [handle]
    assert results[0].cancelled and results[0].outcome.status in (Status.UNKNOWN,
                                                                  Status.TIMEOUT)
    assert not alive(pid)
    assert not pool.cancel(handle)
    # the pool recovers: a new worker takes the next job
    again = pool.submit(Job(problem, "highs", Limits(time_s=20)))
    results = drain(pool, 1)
    assert [r.handle for r in results] == [again]
    assert results[0].outcome.status is not Status.INFEASIBLE   # a counterexample exists


def test_cancel_queued_job_and_shutdown(tiny):
    ex = LocalProcessExecutor(max_workers=1)
    try:
        first = ex.submit(Job(tiny.problems[0], "highs", Limits(time_s=10)))
        second = ex.submit(Job(tiny.problems[0], "highs", Limits(time_s=10)))
        assert ex.cancel(second)
        results = ex.poll()
        assert [r.handle for r in results] == [second] and results[0].cancelled
        pids = list(ex.running_pids().values())
    finally:
        ex.shutdown()
    assert pids and not any(alive(p) for p in pids)
    with pytest.raises(RuntimeError):
        ex.submit(Job(tiny.problems[0], "highs"))
    assert first.job_id == 1


def _available(name: str) -> bool:
    from hybridver.backends import get_backend
    try:
        get_backend(name)
    except Exception:  # noqa: BLE001
        return False
    return True
