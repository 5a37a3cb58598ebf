"""The in-process executor on real subproblems with every available back end."""

from __future__ import annotations

import pytest

from hybridver.backends import Limits, Status, backend_names
from hybridver.schedule import InlineExecutor, Job


def available(name: str) -> bool:
    from hybridver.backends import get_backend
    try:
        get_backend(name)
    except Exception:  # noqa: BLE001
        return False
    return True


@pytest.mark.parametrize("backend", [b for b in ("highs", "ortools", "z3")])
def test_inline_runs_real_jobs(tiny, backend):
    if backend not in backend_names() or not available(backend):
        pytest.skip(f"{backend} unavailable")
    ex = InlineExecutor()
    handles = [ex.submit(Job(p, backend, Limits(time_s=10))) for p in tiny.problems]
    assert ex.in_flight == len(handles)
    results = []
    while ex.in_flight:
        results += ex.poll()
    assert [r.handle for r in results] == handles
    for r in results:          # tiny_relu is unsat: every disjunct is infeasible
        assert r.outcome.status is Status.INFEASIBLE, r.outcome
        assert not r.cancelled and r.wall_s >= r.outcome.time_s * 0.5


def test_inline_cancel_queued_and_errors(tiny):
    ex = InlineExecutor()
    first = ex.submit(Job(tiny.problems[0], "no-such-backend"))
    second = ex.submit(Job(tiny.problems[0], "highs"))
    assert ex.cancel(second)
    assert not ex.cancel(second)
    results = ex.poll() + ex.poll()
    by_id = {r.handle.job_id: r for r in results}
    assert by_id[first.job_id].outcome.status is Status.ERROR
    assert "no-such-backend" in by_id[first.job_id].outcome.message
    assert by_id[second.job_id].cancelled
    assert by_id[second.job_id].outcome.status is Status.UNKNOWN
    ex.shutdown()
    with pytest.raises(RuntimeError):
        ex.submit(Job(tiny.problems[0], "highs"))
