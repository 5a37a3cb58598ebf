"""A real local Ray cluster for the cluster tests (``ray start --head``).

One cluster per test session, shared by the xdist workers (it declares 6 CPUs on this
2-core machine, so that each xdist worker can hold its 2 shard actors and still run
tasks: a full cluster would make a second driver's shards wait): the first worker that needs it
starts it under a file lock and writes its address; the session's controller stops it at
the end (every process of the head's session is killed).  Tests that use it skip cleanly
where the ``[ray]`` extra is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

_STATE = "ray-cluster.json"
RAY = Path(sys.executable).with_name("ray")


def _shared_dir(config) -> Path:
    """A folder shared by the xdist workers of this session and its controller."""
    base = config._tmp_path_factory.getbasetemp()
    return base.parent if hasattr(config, "workerinput") else base


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_head(cpus: int = 2, timeout_s: float = 60.0) -> dict:
    """Start ``ray start --head --block`` in its own session; ``{address, pid, temp}``
    once a driver can connect (``ray status`` answers)."""
    port = _free_port()
    temp = f"/tmp/hvray-{uuid.uuid4().hex[:8]}"  # Ray's socket paths must stay short
    log = open(f"{temp}.log", "w")
    process = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", f"--port={port}", f"--num-cpus={cpus}",
         f"--temp-dir={temp}", "--include-dashboard=false", "--disable-usage-stats",
         f"--dashboard-agent-listen-port={_free_port()}", "--node-ip-address=127.0.0.1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"ray start failed, see {temp}.log")
        status = subprocess.run([str(RAY), "status", f"--address={address}"],
                                capture_output=True, text=True)
        if status.returncode == 0 and "CPU" in status.stdout:
            return {"address": address, "pid": process.pid, "temp": temp}
        time.sleep(0.5)
    stop_head({"pid": process.pid})
    raise RuntimeError(f"ray start did not answer within {timeout_s} s, see {temp}.log")


def stop_head(state: dict) -> None:
    """Kill every process of the head's session (the workers have their own process
    groups, but not their own session)."""
    subprocess.run(["pkill", "-KILL", "-s", str(state["pid"])], capture_output=True)
    try:
        os.killpg(state["pid"], signal.SIGKILL)
    except OSError:
        pass


@pytest.fixture(scope="session")
def ray_address(request) -> str:
    """The address of the session's local Ray cluster, with this process connected."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("the [ray] extra is not installed")
    from filelock import FileLock

    from hybridver.cluster.connect import connect

    shared = _shared_dir(request.config)
    with FileLock(str(shared / "ray-cluster.lock")):
        path = shared / _STATE
        if path.exists():
            state = json.loads(path.read_text())
        else:
            state = start_head(cpus=6)
            path.write_text(json.dumps(state))
    connect(state["address"])
    return state["address"]


def pytest_sessionfinish(session, exitstatus) -> None:
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller stops the cluster after every worker
    try:
        path = _shared_dir(session.config) / _STATE
    except Exception:  # noqa: BLE001 - no temp folder was ever made: nothing started
        return
    if path.exists():
        stop_head(json.loads(path.read_text()))
        path.unlink()
