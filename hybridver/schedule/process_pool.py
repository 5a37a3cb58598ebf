"""A local pool of worker processes that can really be stopped.

Each worker is a long-lived process (``spawn`` by default, or ``forkserver``: never
``fork``, which would copy the parent's torch/solver threads) that imports the back ends
once and then runs jobs one at a time, sent over its own pipe.  Cancelling a running job,
or a job that overruns ``limits.time_s + grace_s`` (a solver that ignores its time limit),
kills that worker's process; a fresh worker is started when the next job needs one.  A
worker that dies (segfault, out of memory) yields an ERROR result for its job.

Subproblems travel as plain data (:mod:`hybridver.schedule.transport`); a worker keeps the
graphs it has rebuilt, so the network is sent to each worker once.  Results are the back
end's :class:`~hybridver.backends.base.Outcome` unchanged.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import multiprocessing
import multiprocessing.connection
import os
import time
from typing import Any

from hybridver.backends.base import Outcome, Status
from hybridver.schedule.executor import Executor
from hybridver.schedule.jobs import (Job, JobHandle, JobResult, cancelled_before_start,
                                     cancelled_outcome)
from hybridver.schedule.transport import graph_key, pack_graph, pack_subproblem

_MAX_CACHED_GRAPHS = 4


def _worker_main(conn) -> None:
    """Loop of a worker process: receive a job, solve, send the outcome; stop on None."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from hybridver.schedule.jobs import run_job
    from hybridver.schedule.transport import unpack_graph, unpack_subproblem

    try:
        import torch
        torch.set_num_threads(1)
    except Exception:  # noqa: BLE001 - torch is optional for solving
        pass
    graphs: collections.OrderedDict[str, Any] = collections.OrderedDict()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        job_id, key, graph_data, problem_data, backend, limits, options = message
        conn.send(("started", job_id))
        try:
            if graph_data is not None:
                graphs[key] = unpack_graph(graph_data)
                while len(graphs) > _MAX_CACHED_GRAPHS:
                    graphs.popitem(last=False)
            problem = unpack_subproblem(problem_data, graphs[key])
        except Exception as exc:  # noqa: BLE001
            outcome = Outcome(Status.ERROR, 0.0, solver_status="transport",
                              message=f"could not rebuild the subproblem: {exc!r}")
        else:
            outcome = run_job(problem, backend, limits, options)
        try:
            conn.send(("done", job_id, outcome))
        except (EOFError, OSError):
            return


@dataclasses.dataclass
class _Worker:
    process: Any
    conn: Any
    graphs: set = dataclasses.field(default_factory=set)
    handle: JobHandle | None = None
    job: Job | None = None
    submitted: float = 0.0
    dispatched: float = 0.0
    started: float | None = None


class LocalProcessExecutor(Executor):
    """Up to ``max_workers`` worker processes on this machine.

    ``start_method``: ``"spawn"`` (default) or ``"forkserver"``; ``grace_s``: how long past
    its time limit a job may run before its worker is killed; ``start_timeout_s``: how long
    a fresh worker may take to import the back ends and start a job.
    """

    def __init__(self, max_workers: int = 2, start_method: str = "spawn", grace_s: float = 2.0,
                 start_timeout_s: float = 120.0) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        if start_method not in ("spawn", "forkserver"):
            raise ValueError("start_method must be 'spawn' or 'forkserver' (never 'fork')")
        self._ctx = multiprocessing.get_context(start_method)
        self._max_workers = max_workers
        self._grace_s = grace_s
        self._start_timeout_s = start_timeout_s
        self._ids = itertools.count(1)
        self._pending: collections.OrderedDict[int, tuple[JobHandle, Job, float]] = \
            collections.OrderedDict()
        self._workers: list[_Worker] = []
        self._done: list[JobResult] = []
        self._closed = False
        self.stats = {"workers_started": 0, "workers_killed": 0, "workers_died": 0}

    # ------------------------------------------------------------------ interface
    @property
    def capacity(self) -> int:
        return self._max_workers

    @property
    def in_flight(self) -> int:
        return len(self._pending) + sum(w.handle is not None for w in self._workers) + \
            len(self._done)

    def warm_up(self) -> None:
        """Start every worker now (each imports the back ends, about 2 s) so the first
        jobs do not wait for it."""
        while len(self._workers) < self._max_workers:
            self._spawn()

    def running_pids(self) -> dict[int, int]:
        """``job_id -> pid`` of the worker process running it (started or not)."""
        return {w.handle.job_id: w.process.pid for w in self._workers if w.handle is not None}

    def submit(self, job: Job) -> JobHandle:
        if self._closed:
            raise RuntimeError("executor is shut down")
        handle = JobHandle(next(self._ids), job.backend, job.name)
        self._pending[handle.job_id] = (handle, job, time.monotonic())
        self._pump()
        return handle

    def poll(self) -> list[JobResult]:
        self._pump()
        done, self._done = self._done, []
        return done

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            self._pump()
            if self._done or not self.in_flight:
                return self.poll()
            now = time.monotonic()
            if end is not None and now >= end:
                return []
            nap = self._next_deadline() - now
            if end is not None:
                nap = min(nap, end - now)
            busy = [w for w in self._workers if w.handle is not None]
            ready = [w.conn for w in busy] + [w.process.sentinel for w in busy]
            multiprocessing.connection.wait(ready, timeout=max(0.0, min(nap, 1.0)))

    def cancel(self, handle: JobHandle) -> bool:
        entry = self._pending.pop(handle.job_id, None)
        if entry is not None:
            self._done.append(cancelled_before_start(handle, entry[2]))
            return True
        for worker in self._workers:
            if worker.handle is not None and worker.handle.job_id == handle.job_id:
                self._collect(worker)          # it may have just finished
                if worker.handle is None or worker.handle.job_id != handle.job_id:
                    return False
                self._kill(worker, cancelled_outcome("cancelled while running",
                                                     self._ran(worker)))
                self._pump()
                return True
        return False

    def shutdown(self) -> None:
        if self._closed:
            return
        for job_id in list(self._pending):
            self.cancel(self._pending[job_id][0])
        for worker in list(self._workers):
            if worker.handle is not None:
                self._kill(worker, cancelled_outcome("executor shut down", self._ran(worker)))
            else:
                try:
                    worker.conn.send(None)
                except (OSError, ValueError):
                    pass
        end = time.monotonic() + 1.0      # a clean exit (interpreter teardown) or a kill
        for worker in list(self._workers):
            worker.process.join(timeout=max(0.0, end - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=2.0)
            worker.conn.close()
        self._workers.clear()
        self._closed = True

    # ------------------------------------------------------------------ internals
    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=_worker_main, args=(child,), daemon=True,
                                    name="hybridver-solver")
        process.start()
        child.close()
        worker = _Worker(process, parent)
        self._workers.append(worker)
        self.stats["workers_started"] += 1
        return worker

    @staticmethod
    def _ran(worker: _Worker) -> float:
        return 0.0 if worker.started is None else time.monotonic() - worker.started

    def _finish(self, worker: _Worker, outcome: Outcome, cancelled: bool = False) -> None:
        self._done.append(JobResult(worker.handle, outcome, time.monotonic() - worker.submitted,
                                    cancelled))
        worker.handle = worker.job = None
        worker.started = None

    def _kill(self, worker: _Worker, outcome: Outcome, cancelled: bool = True) -> None:
        """Stop the worker's process for real and report ``outcome`` for its job."""
        worker.process.kill()
        worker.process.join(timeout=5.0)
        worker.conn.close()
        self._workers.remove(worker)
        self.stats["workers_killed"] += 1
        if worker.handle is not None:
            self._finish(worker, outcome, cancelled)

    def _collect(self, worker: _Worker) -> None:
        """Read the worker's messages; detect a dead worker."""
        try:
            while worker.handle is not None and worker.conn.poll():
                message = worker.conn.recv()
                if message[0] == "started" and message[1] == worker.handle.job_id:
                    worker.started = time.monotonic()
                elif message[0] == "done" and message[1] == worker.handle.job_id:
                    self._finish(worker, message[2])
        except (EOFError, OSError):
            pass
        if worker.handle is not None and not worker.process.is_alive():
            code = worker.process.exitcode
            self.stats["workers_died"] += 1
            self._kill(worker, Outcome(Status.ERROR, self._ran(worker), solver_status="died",
                                       message=f"worker process died (exit code {code})"),
                       cancelled=False)

    def _deadline(self, worker: _Worker) -> float:
        if worker.started is None:
            return worker.dispatched + self._start_timeout_s
        return worker.started + worker.job.limits.time_s + self._grace_s

    def _next_deadline(self) -> float:
        deadlines = [self._deadline(w) for w in self._workers if w.handle is not None]
        return min(deadlines, default=time.monotonic() + 1.0)

    def _pump(self) -> None:
        for worker in list(self._workers):
            if worker.handle is not None:
                self._collect(worker)
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.handle is not None and now > self._deadline(worker):
                if worker.started is None:
                    self._kill(worker, Outcome(Status.ERROR, 0.0, solver_status="no start",
                                               message="worker did not start the job in "
                                               f"{self._start_timeout_s:g} s"), cancelled=False)
                else:
                    self._kill(worker, cancelled_outcome(
                        f"killed {self._grace_s:g} s past its time limit", self._ran(worker),
                        timeout=True))
        for worker in [w for w in self._workers if w.handle is None]:
            if not worker.process.is_alive():          # died while idle: replace it
                worker.conn.close()
                self._workers.remove(worker)
                self.stats["workers_died"] += 1
        while self._pending:
            idle = [w for w in self._workers if w.handle is None]
            if not idle and len(self._workers) >= self._max_workers:
                break
            worker = idle[0] if idle else self._spawn()
            _, (handle, job, submitted) = self._pending.popitem(last=False)
            self._dispatch(worker, handle, job, submitted)

    def _dispatch(self, worker: _Worker, handle: JobHandle, job: Job, submitted: float) -> None:
        graph = job.subproblem.graph
        key = graph_key(graph)
        graph_data = None if key in worker.graphs else pack_graph(graph)
        worker.handle, worker.job, worker.submitted = handle, job, submitted
        worker.dispatched, worker.started = time.monotonic(), None
        try:
            worker.conn.send((handle.job_id, key, graph_data, pack_subproblem(job.subproblem),
                              job.backend, job.limits, job.options))
        except (OSError, ValueError) as exc:
            self.stats["workers_died"] += 1
            self._kill(worker, Outcome(Status.ERROR, 0.0, solver_status="died",
                                       message=f"could not send the job: {exc!r}"),
                       cancelled=False)
            return
        worker.graphs.add(key)
