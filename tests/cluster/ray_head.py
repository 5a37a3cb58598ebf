"""A real local Ray cluster for the tests (``ray start --head``): starting and stopping
a head, and where the session's shared one is recorded.  Plain helpers: the fixture is in
``tests/cluster/conftest.py``, the stop at the end of the session in ``tests/conftest.py``
(the only conftest the xdist controller loads)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

STATE = "ray-cluster.json"
RAY = Path(sys.executable).with_name("ray")


def shared_dir(config) -> Path:
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


def stop_session_cluster(config) -> None:
    """At the end of the session, in the process that is not an xdist worker: stop the
    shared cluster if one was started."""
    if hasattr(config, "workerinput"):
        return  # an xdist worker: the controller stops the cluster after every worker
    try:
        path = shared_dir(config) / STATE
    except Exception:  # noqa: BLE001 - no temp folder was ever made: nothing started
        return
    if path.exists():
        stop_head(json.loads(path.read_text()))
        path.unlink()
