"""Connecting to a Ray cluster, with one clear error when that is impossible.

``address`` is what ``ray start --head`` prints (``HOST:PORT``), or ``auto`` (the cluster
this machine belongs to, as ``ray status`` finds it).  The driver's own copy of the
``hybridver`` package is shipped to the workers (Ray's ``py_modules``), so every node runs
the same code as the driver; the other dependencies (torch, the solvers) must be installed
on every node (docs/cluster.md).
"""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path
from typing import Any

from hybridver.errors import ClusterError

#: environment of every worker: one thread per task (Ray counts one CPU per task)
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def require_ray() -> Any:
    """The ``ray`` module, or a :class:`ClusterError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ClusterError("a cluster run needs Ray, which is not installed: "
                           "pip install 'hybridver[ray]'") from exc
    return ray


@dataclasses.dataclass(frozen=True)
class ClusterInfo:
    """``address`` as given; ``cpus``: CPUs of the cluster's alive nodes; ``nodes``:
    their count."""

    address: str
    cpus: int
    nodes: int

    def describe(self) -> str:
        return f"Ray cluster {self.address}: {self.nodes} node(s), {self.cpus} CPU(s)"


def connect(address: str, ship_code: bool = True) -> ClusterInfo:
    """Connect this process to the cluster at ``address`` (once; later calls with the same
    process reuse the connection).  ``ship_code``: send the driver's ``hybridver`` package
    to the workers (off when the workers import the very same installed copy)."""
    ray = require_ray()
    if not address:
        raise ClusterError("--cluster needs an address (HOST:PORT from `ray start --head`) "
                           "or auto")
    if not ray.is_initialized():
        _check_reachable(address)
        runtime_env: dict[str, Any] = {"env_vars": dict(WORKER_ENV)}
        if ship_code:
            runtime_env["py_modules"] = [str(Path(__file__).resolve().parents[1])]
        try:
            ray.init(address=address, runtime_env=runtime_env, logging_level="ERROR",
                     log_to_driver=bool(os.environ.get("HYBRIDVER_RAY_LOGS")),
                     configure_logging=True)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Ray cluster at {address}: "
                               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                               ) from exc
    return cluster_info(address)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail at once on a ``HOST:PORT`` that nobody listens on (Ray itself would retry for
    minutes); ``auto`` and ``ray://`` addresses are left to Ray."""
    host, _, port = address.rpartition(":")
    if address == "auto" or "://" in address or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}"
                           " (start one with `ray start --head`)") from exc


def head_trouble(timeout_s: float = 5.0) -> str:
    """Why the connected cluster's head (its control service, GCS) does not accept
    connections, or "" when it does (or when this process is not connected: asking Ray
    for its context would start a local cluster).  A cheap check for a run whose calls
    stopped answering: a driver whose head is gone would otherwise wait for minutes."""
    ray = require_ray()
    if not ray.is_initialized():
        return ""
    host, _, port = ray.get_runtime_context().gcs_address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        return f"head {host}:{port} does not answer: {exc.strerror or exc}"
    return ""


def cluster_info(address: str = "") -> ClusterInfo:
    """CPUs and nodes of the connected cluster (alive nodes only)."""
    ray = require_ray()
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
    except Exception as exc:  # noqa: BLE001 - any failure here means the head is gone
        raise lost_head(exc) from exc
    cpus = sum(int(n.get("Resources", {}).get("CPU", 0)) for n in nodes)
    return ClusterInfo(address, cpus, len(nodes))


def lost_head(exc: BaseException) -> ClusterError:
    """The error a run ends with when the cluster stops answering mid-run."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ClusterError(f"lost the Ray cluster during the run ({first}); no verdict")


def disconnect() -> None:
    """Leave the cluster (the cluster itself keeps running)."""
    ray = require_ray()
    if ray.is_initialized():
        ray.shutdown()
