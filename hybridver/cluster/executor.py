"""The scheduler's :class:`~hybridver.schedule.executor.Executor` on Ray tasks.

Same tickets (:class:`JobHandle`) and outcomes (:class:`JobResult`) as the local process
pool: ``submit`` -> a Ray task running :func:`hybridver.schedule.jobs.run_job` on the
subproblem rebuilt from plain data (:mod:`hybridver.schedule.transport`); ``poll`` ->
``ray.wait(timeout=0)``; ``wait`` -> ``ray.wait(timeout)``; ``cancel`` ->
``ray.cancel(force=True)`` (the worker process is killed) and a cancelled result.

Each graph is put into Ray's object store once (``ray.put``, keyed by
:func:`graph_key`) and its reference reused; a worker process rebuilds a graph once and
keeps it.  At most ``capacity`` tasks are handed to Ray at a time, the rest wait here, so a
task starts about when it is dispatched: a task still running ``limits.time_s + grace_s +
start_s`` after its dispatch is cancelled like a job the process pool kills past its
deadline (TIMEOUT, cancelled).  A task whose worker dies is run again once by Ray
(``max_retries``); a second death is an ERROR outcome, never an answer.  A cluster that
stops answering raises :class:`~hybridver.errors.ClusterError` (no verdict).
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import itertools
import os
import socket
import sys
import time
from typing import Any

from hybridver.backends.base import Outcome, Status
from hybridver.cluster.connect import cluster_info, lost_head, require_ray
from hybridver.schedule.executor import Executor
from hybridver.schedule.jobs import Job, JobHandle, JobResult, cancelled_outcome
from hybridver.schedule.transport import graph_key, pack_graph, pack_subproblem

ray = require_ray()

_MAX_CACHED_GRAPHS = 4
#: rebuilt graphs of this worker process, by key (most recent last)
_graphs: collections.OrderedDict[str, Any] = collections.OrderedDict()


def _solve_task(key: str, graph_ref: list, problem_data: dict, backend: str, limits,
                options, pid_dir: str | None) -> Outcome:
    """Body of a Ray task: rebuild the subproblem (the graph once per worker process:
    ``graph_ref`` is a one-element list so Ray does not fetch it unless needed) and run
    the job.  ``pid_dir``: for fault tests, the worker's pid is written there first."""
    from hybridver.schedule.jobs import run_job
    from hybridver.schedule.transport import unpack_graph, unpack_subproblem

    if pid_dir:
        with open(os.path.join(pid_dir, f"{os.getpid()}.pid"), "w") as handle:
            handle.write(str(os.getpid()))
    try:
        import torch
        torch.set_num_threads(1)
    except Exception:  # noqa: BLE001 - torch is optional for solving
        pass
    try:
        if key not in _graphs:
            _graphs[key] = unpack_graph(ray.get(graph_ref[0]))
            while len(_graphs) > _MAX_CACHED_GRAPHS:
                _graphs.popitem(last=False)
        problem = unpack_subproblem(problem_data, _graphs[key])
    except Exception as exc:  # noqa: BLE001
        return Outcome(Status.ERROR, 0.0, solver_status="transport",
                       message=f"could not rebuild the subproblem: {exc!r}")
    return run_job(problem, backend, limits, options)


_remote_solve = ray.remote(num_cpus=1, max_retries=1, retry_exceptions=False)(_solve_task)


@dataclasses.dataclass
class _Running:
    handle: JobHandle
    job: Job
    submitted: float
    dispatched: float
    ref: Any


class RayExecutor(Executor):
    """Jobs as Ray tasks on the connected cluster (:func:`hybridver.cluster.connect.connect`
    first).  ``capacity``: tasks handed to Ray at once (default: the cluster's CPUs);
    ``grace_s``: how long past its time limit a job may run; ``start_s``: allowance for a
    worker to start and import the back ends; ``pid_dir``: see :func:`_solve_task`."""

    def __init__(self, capacity: int | None = None, grace_s: float = 2.0,
                 start_s: float = 20.0, pid_dir: str | None = None) -> None:
        if not ray.is_initialized():
            raise RuntimeError("RayExecutor needs a connected cluster (cluster.connect)")
        self._capacity = capacity if capacity is not None else max(1, cluster_info().cpus)
        if self._capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._grace_s, self._start_s, self._pid_dir = grace_s, start_s, pid_dir
        self._ids = itertools.count(1)
        self._pending: collections.OrderedDict[int, tuple[JobHandle, Job, float]] = \
            collections.OrderedDict()
        self._running: dict[int, _Running] = {}
        self._graph_refs: dict[str, Any] = {}
        self._done: list[JobResult] = []
        self._closed = False
        self._head = HeadWatch()
        self.stats = {"tasks": 0, "cancelled": 0, "deadline_kills": 0, "died": 0,
                      "graphs_shipped": 0}

    # ------------------------------------------------------------------ interface
    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def in_flight(self) -> int:
        return len(self._pending) + len(self._running) + len(self._done)

    @property
    def busy(self) -> int:
        """Tasks handed to Ray and not finished."""
        return len(self._running)

    def submit(self, job: Job) -> JobHandle:
        if self._closed:
            raise RuntimeError("executor is shut down")
        handle = JobHandle(next(self._ids), job.backend, job.name)
        self._pending[handle.job_id] = (handle, job, time.monotonic())
        self._pump(0.0)
        return handle

    def poll(self) -> list[JobResult]:
        self._pump(0.0)
        done, self._done = self._done, []
        return done

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            self._pump(0.0)
            if self._done or not self.in_flight:
                return self.poll()
            now = time.monotonic()
            if end is not None and now >= end:
                return []
            nap = min([self._deadline(r) for r in self._running.values()],
                      default=now + 1.0) - now
            if end is not None:
                nap = min(nap, end - now)
            self._pump(max(0.0, min(nap, 1.0)))

    def cancel(self, handle: JobHandle) -> bool:
        entry = self._pending.pop(handle.job_id, None)
        if entry is not None:
            self._done.append(JobResult(handle, cancelled_outcome("cancelled before it ran",
                                                                  0.0),
                                        time.monotonic() - entry[2], cancelled=True))
            return True
        running = self._running.get(handle.job_id)
        if running is None:
            return False
        if _finished(running.ref):          # it may have just finished
            self._collect([running.ref])
        if handle.job_id not in self._running:
            return False
        self._stop(running, cancelled_outcome("cancelled while running", self._ran(running)))
        self.stats["cancelled"] += 1
        self._pump(0.0)
        return True

    def shutdown(self) -> None:
        if self._closed:
            return
        for job_id in list(self._pending):
            self.cancel(self._pending[job_id][0])
        for running in list(self._running.values()):
            self._stop(running, cancelled_outcome("executor shut down", self._ran(running)))
        self._graph_refs.clear()
        self._closed = True

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _ran(running: _Running) -> float:
        return time.monotonic() - running.dispatched

    def _deadline(self, running: _Running) -> float:
        return running.dispatched + running.job.limits.time_s + self._grace_s + self._start_s

    def _finish(self, running: _Running, outcome: Outcome, cancelled: bool = False) -> None:
        del self._running[running.handle.job_id]
        self._done.append(JobResult(running.handle, outcome,
                                    time.monotonic() - running.submitted, cancelled))

    def _stop(self, running: _Running, outcome: Outcome) -> None:
        """Kill the task's worker for real (``force``: no retry) and report ``outcome``."""
        try:
            ray.cancel(running.ref, force=True)
        except Exception as exc:  # noqa: BLE001 - a finished task cannot be cancelled
            if not _finished(running.ref):
                raise lost_cluster(exc) from exc
        self._finish(running, outcome, cancelled=True)

    def _collect(self, refs: list) -> None:
        """Turn the finished tasks among ``refs`` into results."""
        by_ref = {r.ref: r for r in self._running.values()}
        for ref in refs:
            running = by_ref.get(ref)
            if running is None:
                continue
            try:
                outcome = ray.get(ref, timeout=60)
            except ray.exceptions.TaskCancelledError:
                self._finish(running, cancelled_outcome("cancelled by the cluster",
                                                        self._ran(running)), cancelled=True)
                continue
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                    ray.exceptions.OutOfMemoryError, ray.exceptions.ObjectLostError) as exc:
                self.stats["died"] += 1
                outcome = Outcome(Status.ERROR, self._ran(running), solver_status="died",
                                  message="Ray worker died (retried once): "
                                          f"{type(exc).__name__}")
            except ray.exceptions.RayTaskError as exc:
                outcome = Outcome(Status.ERROR, self._ran(running), solver_status="exception",
                                  message=f"Ray task failed: {str(exc).splitlines()[0]}")
            except Exception as exc:  # noqa: BLE001 - the cluster stopped answering
                raise lost_cluster(exc) from exc
            self._finish(running, outcome)

    def _pump(self, timeout: float) -> None:
        """Collect finished tasks (waiting up to ``timeout`` s for one), stop those past
        their deadline, dispatch queued jobs to free slots."""
        self._head.check()
        refs = [r.ref for r in self._running.values()]
        if refs:
            try:
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                if not ready and timeout > 0:
                    ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
            except Exception as exc:  # noqa: BLE001 - the cluster stopped answering
                raise lost_cluster(exc) from exc
            self._collect(ready)
        now = time.monotonic()
        for running in list(self._running.values()):
            if now > self._deadline(running):
                self.stats["deadline_kills"] += 1
                self._stop(running, cancelled_outcome(
                    f"cancelled {self._grace_s:g} s past its time limit", self._ran(running),
                    timeout=True))
        while self._pending and len(self._running) < self._capacity:
            _, (handle, job, submitted) = self._pending.popitem(last=False)
            self._dispatch(handle, job, submitted)

    def _dispatch(self, handle: JobHandle, job: Job, submitted: float) -> None:
        graph = job.subproblem.graph
        key = graph_key(graph)
        try:
            if key not in self._graph_refs:
                self._graph_refs[key] = ray.put(pack_graph(graph))
                self.stats["graphs_shipped"] += 1
            ref = _remote_solve.remote(key, [self._graph_refs[key]],
                                       pack_subproblem(job.subproblem), job.backend,
                                       job.limits, job.options, self._pid_dir)
        except Exception as exc:  # noqa: BLE001 - the cluster stopped answering
            raise lost_cluster(exc) from exc
        self.stats["tasks"] += 1
        self._running[handle.job_id] = _Running(handle, job, submitted, time.monotonic(), ref)


class HeadWatch:
    """Notices a lost head before Ray does: Ray's driver keeps retrying the head's control
    service (GCS) for a minute and then ends the whole process; a refused TCP connection
    to it, tried at most every ``period_s``, raises :class:`ClusterError` at once."""

    def __init__(self, period_s: float = 1.0) -> None:
        self._period_s, self._next = period_s, 0.0

    def check(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self._period_s
        trouble = _head_trouble()
        if trouble:
            raise lost_cluster(ConnectionError(trouble))


def _head_trouble() -> str:
    """Why the head's control service does not answer, or "" when it does (or when this
    process is not connected: asking Ray for its context would start a local one)."""
    if not ray.is_initialized():
        return ""
    host, _, port = ray.get_runtime_context().gcs_address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5.0).close()
    except OSError as exc:
        return f"head {host}:{port} does not answer: {exc.strerror or exc}"
    return ""


def lost_cluster(exc: BaseException):
    """The :class:`ClusterError` of a failing cluster.  When the head does not answer,
    Ray's own exit handler would wait for it and end the process with a crash, so at exit
    this process then leaves at once instead, with the exit status of a
    :class:`ClusterError` (2)."""
    if _head_trouble():
        atexit.register(_leave)
    return lost_head(exc)


def _leave() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(2)


def _finished(ref) -> bool:
    try:
        ready, _ = ray.wait([ref], timeout=0)
    except Exception:  # noqa: BLE001
        return False
    return bool(ready)
