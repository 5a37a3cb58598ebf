"""The scheduler's :class:`~hybridver.schedule.executor.Executor` on Ray tasks.

Same tickets (:class:`JobHandle`) and outcomes (:class:`JobResult`) as the local process
pool: ``submit`` -> a Ray task running :func:`hybridver.schedule.jobs.run_job` on the
subproblem rebuilt from plain data (:mod:`hybridver.schedule.transport`); ``poll`` ->
``ray.wait(timeout=0)``; ``wait`` -> ``ray.wait(timeout)``; ``cancel`` ->
``ray.cancel(force=True)`` (the worker process is killed) and a cancelled result.

Each graph is put into Ray's object store once (``ray.put``, keyed by
:func:`graph_key`) and its reference reused; a worker process rebuilds a graph once and
keeps it.  At most ``capacity`` tasks are handed to Ray at a time, the rest wait here.  A
task reports its start (:mod:`hybridver.cluster.tasks`), and one still running
``limits.time_s + grace_s`` after it started is cancelled like a job the process pool kills
past its deadline (TIMEOUT, cancelled).  A task whose worker dies is run again once by Ray
(``max_retries``); a second death is an ERROR outcome, never an answer.  A cluster that
stops answering raises :class:`~hybridver.errors.ClusterError` (no verdict).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import os
import time
from typing import Any

from hybridver.backends.base import Outcome, Status
from hybridver.cluster.connect import cluster_info, require_ray
from hybridver.cluster.tasks import HeadWatch, Tasks, TaskEnd, lost_cluster
from hybridver.schedule.executor import Executor
from hybridver.schedule.jobs import (Job, JobHandle, JobResult, cancelled_before_start,
                                     cancelled_outcome)
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


@dataclasses.dataclass
class _Running:
    handle: JobHandle
    job: Job
    submitted: float


class RayExecutor(Executor):
    """Jobs as Ray tasks on the connected cluster (:func:`hybridver.cluster.connect.connect`
    first).  ``capacity``: tasks handed to Ray at once (default: the cluster's CPUs);
    ``grace_s``: how long past its time limit a started job may run; ``pid_dir``: see
    :func:`_solve_task`."""

    def __init__(self, capacity: int | None = None, grace_s: float = 2.0,
                 pid_dir: str | None = None) -> None:
        if not ray.is_initialized():
            raise RuntimeError("RayExecutor needs a connected cluster (cluster.connect)")
        self._capacity = capacity if capacity is not None else max(1, cluster_info().cpus)
        if self._capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._grace_s, self._pid_dir = grace_s, pid_dir
        self._ids = itertools.count(1)
        self._pending: collections.OrderedDict[int, tuple[JobHandle, Job, float]] = \
            collections.OrderedDict()
        self._running: dict[int, _Running] = {}
        self._tasks = Tasks()
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
            nap = min([self._deadline(k) for k in self._running], default=now + 1.0) - now
            if end is not None:
                nap = min(nap, end - now)
            self._pump(max(0.0, min(nap, 1.0)))

    def cancel(self, handle: JobHandle) -> bool:
        entry = self._pending.pop(handle.job_id, None)
        if entry is not None:
            self._done.append(cancelled_before_start(handle, entry[2]))
            return True
        if handle.job_id not in self._running:
            return False
        self._collect(self._tasks.wait(0.0))     # it may have just finished
        if handle.job_id not in self._running:
            return False
        self._stop(handle.job_id, "cancelled while running")
        self.stats["cancelled"] += 1
        self._pump(0.0)
        return True

    def running_started(self) -> dict[int, float | None]:
        """``job_id -> time.monotonic()`` when a worker started it (None: queued in Ray)."""
        return {k: self._tasks.started.get(k) for k in self._running}

    def shutdown(self) -> None:
        if self._closed:
            return
        for job_id in list(self._pending):
            self.cancel(self._pending[job_id][0])
        for job_id in list(self._running):
            self._stop(job_id, "executor shut down")
        self._graph_refs.clear()
        self._closed = True

    # ------------------------------------------------------------------ internals
    def _ran(self, job_id: int) -> float:
        started = self._tasks.started.get(job_id)
        return 0.0 if started is None else time.monotonic() - started

    def _deadline(self, job_id: int) -> float:
        """When the job's task is stopped: its time limit plus grace after its start (a
        task waiting in Ray's queue for a CPU has none)."""
        started = self._tasks.started.get(job_id)
        if started is None:
            return time.monotonic() + 1.0
        return started + self._running[job_id].job.limits.time_s + self._grace_s

    def _finish(self, job_id: int, outcome: Outcome, cancelled: bool = False) -> None:
        running = self._running.pop(job_id)
        self._done.append(JobResult(running.handle, outcome,
                                    time.monotonic() - running.submitted, cancelled))

    def _stop(self, job_id: int, why: str, timeout: bool = False) -> None:
        """Kill the job's task for real and report it cancelled."""
        outcome = cancelled_outcome(why, self._ran(job_id), timeout=timeout)
        self._tasks.cancel(job_id)
        self._finish(job_id, outcome, cancelled=True)

    def _collect(self, ends: list[TaskEnd]) -> None:
        for end in ends:
            if end.key not in self._running:
                continue
            if end.error is None:
                self._finish(end.key, end.value)
            elif end.error == "cancelled":
                self._finish(end.key, cancelled_outcome(end.message, self._ran(end.key)),
                             cancelled=True)
            else:
                self.stats["died"] += end.error == "died"
                self._finish(end.key, Outcome(Status.ERROR, self._ran(end.key),
                                              solver_status=end.error, message=end.message))

    def _pump(self, timeout: float) -> None:
        """Collect starts and finished tasks (waiting up to ``timeout`` s for news), stop
        those past their deadline, dispatch queued jobs to free slots."""
        self._head.check()
        self._collect(self._tasks.wait(timeout))
        now = time.monotonic()
        for job_id in [k for k in self._running if now > self._deadline(k)]:
            self.stats["deadline_kills"] += 1
            self._stop(job_id, f"cancelled {self._grace_s:g} s past its time limit",
                       timeout=True)
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
        except Exception as exc:  # noqa: BLE001 - the cluster stopped answering
            raise lost_cluster(exc) from exc
        self._tasks.submit(handle.job_id, _solve_task, key, [self._graph_refs[key]],
                           pack_subproblem(job.subproblem), job.backend, job.limits,
                           job.options, self._pid_dir)
        self.stats["tasks"] += 1
        self._running[handle.job_id] = _Running(handle, job, submitted)
