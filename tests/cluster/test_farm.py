"""The campaign farm on a real local cluster: results as they finish, own time limits,
a killed worker's item retried, errors reported (the functions are standard-library
ones, importable on every worker)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import threading
import time

import pytest
from tests.cluster.cpus import free_cpu  # noqa: F401 - a fixture

pytestmark = pytest.mark.slow


def test_results_come_back_with_their_items(free_cpu, ray_address):
    from hybridver.cluster.farm import FarmLoad, farm

    loads = []
    results = list(farm(math.sqrt, [4.0, 9.0, 16.0, -1.0], lambda item: 30.0,
                        capacity=2, on_load=loads.append))
    by_index = {r.index: r for r in results}
    assert sorted(by_index) == [0, 1, 2, 3]
    assert [by_index[k].value for k in range(3)] == [2.0, 3.0, 4.0]
    assert all(by_index[k].status == "done" for k in range(3))
    assert by_index[3].status == "error" and by_index[3].value is None
    assert by_index[3].message.startswith("ValueError")
    assert loads and max(load.busy for load in loads) <= 2
    assert loads[-1].done == 4 and loads[-1].busy == 0 and loads[-1].queued == 0
    assert FarmLoad(1, 2, 2, 0, 0).describe() == "1 node 2 CPUs, 2 busy"


def test_the_progress_line_shows_the_cluster_workers():
    from hybridver.progress import format_fields

    line = format_fields("on 127.0.0.1:6379", {"cluster": "1 node 2 CPUs, 2 busy",
                                               "instances": "3/10"}, 4.0, "run-instances")
    assert line == ("run-instances | on 127.0.0.1:6379 | cluster 1 node 2 CPUs, 2 busy | "
                    "instances=3/10 | 4.0s")


def test_an_item_past_its_time_limit_is_killed(free_cpu, ray_address):
    from hybridver.cluster.farm import farm

    items = [["sleep", "60"], ["echo", "quick"]]
    start = time.monotonic()
    results = {r.index: r for r in farm(subprocess.check_output, items,
                                        lambda item: 0.5, grace_s=0.5)}
    assert time.monotonic() - start < 50
    assert results[0].status == "timeout" and "past its time limit" in results[0].message
    assert results[1].status == "done" and results[1].value == b"quick\n"


def test_a_time_limit_counts_from_the_start_not_from_the_queue(free_cpu, ray_address):
    """Three tasks on two CPUs: the third waits for a CPU longer than its own limit, and
    still runs to its end."""
    from hybridver.cluster.farm import farm

    items = [["sleep", "4"], ["sleep", "4"], ["echo", "late"]]
    results = {r.index: r for r in farm(subprocess.check_output, items,
                                        lambda item: 10.0 if item[0] == "sleep" else 0.5,
                                        grace_s=0.5, capacity=3)}
    assert [results[k].status for k in range(3)] == ["done"] * 3
    assert results[2].value == b"late\n"


def test_an_item_whose_worker_is_killed_is_run_again(free_cpu, ray_address, tmp_path):
    from hybridver.cluster.farm import farm

    pids = tmp_path / "pids"
    # the shell's parent is the Ray worker: it writes that pid, then works for a while
    item = ["sh", "-c", f"echo $PPID >> {pids}; sleep 3; echo finished"]
    results: list = []
    runner = threading.Thread(target=lambda: results.extend(
        farm(subprocess.check_output, [item], lambda item: 60.0)))
    runner.start()
    end = time.monotonic() + 60
    while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < end:
        time.sleep(0.05)
    first = int(pids.read_text().split()[0])
    os.kill(first, signal.SIGKILL)
    runner.join(timeout=120)
    [result] = results
    assert result.status == "done" and result.value == b"finished\n"
    written = [int(p) for p in pids.read_text().split()]
    assert len(written) == 2 and written[0] == first and written[1] != first
