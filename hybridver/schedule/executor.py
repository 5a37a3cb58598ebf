"""Where jobs run: the :class:`Executor` interface and the in-process implementation.

Callers (the :class:`~hybridver.schedule.scheduler.Scheduler`) use only this interface, so
a local process pool (:mod:`hybridver.schedule.process_pool`) and a cluster executor (Ray:
``submit`` -> a remote task, ``cancel`` -> ``ray.cancel(force=True)``, ``poll`` ->
``ray.wait(timeout=0)``) are interchangeable.

Contract: ``submit`` never blocks on a solve (except :class:`InlineExecutor`, see there);
every submitted job yields exactly one :class:`~hybridver.schedule.jobs.JobResult` from
``poll``/``wait``, cancelled ones included (``cancelled=True``, outcome UNKNOWN/TIMEOUT);
``cancel`` of a finished or unknown job is a no-op returning False.
"""

from __future__ import annotations

import abc
import collections
import itertools
import time

from hybridver.schedule.jobs import Job, JobHandle, JobResult, cancelled_before_start, run_job


class Executor(abc.ABC):
    """Runs :class:`Job` s and reports :class:`JobResult` s."""

    @property
    @abc.abstractmethod
    def capacity(self) -> int:
        """How many jobs can run at the same time."""

    @property
    @abc.abstractmethod
    def in_flight(self) -> int:
        """Jobs submitted whose result has not been returned yet (queued or running)."""

    @abc.abstractmethod
    def submit(self, job: Job) -> JobHandle:
        """Queue ``job``; it starts when a worker is free."""

    @abc.abstractmethod
    def poll(self) -> list[JobResult]:
        """Results that arrived since the last call (does not wait for running jobs)."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> list[JobResult]:
        """Like :meth:`poll`, but waits up to ``timeout`` seconds (None: no limit) for at
        least one result while jobs are in flight."""

    @abc.abstractmethod
    def cancel(self, handle: JobHandle) -> bool:
        """Stop a queued or running job (a running one's worker is stopped for real)."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Stop every job and worker; the executor cannot be used afterwards."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


class InlineExecutor(Executor):
    """Runs jobs in the calling process (for tests and debugging: no process boundary,
    tracebacks stay local): each :meth:`poll`/:meth:`wait` runs the oldest queued job to
    its end and returns its result, so jobs queued behind it (e.g. the other entries of a
    portfolio race) can still be cancelled.  A running job cannot be interrupted: only the
    back end's own time limit stops it."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._queue: collections.OrderedDict[int, tuple[JobHandle, Job, float]] = \
            collections.OrderedDict()
        self._done: list[JobResult] = []
        self._closed = False

    @property
    def capacity(self) -> int:
        return 1

    @property
    def in_flight(self) -> int:
        return len(self._queue) + len(self._done)

    def submit(self, job: Job) -> JobHandle:
        if self._closed:
            raise RuntimeError("executor is shut down")
        handle = JobHandle(next(self._ids), job.backend, job.name)
        self._queue[handle.job_id] = (handle, job, time.monotonic())
        return handle

    def poll(self) -> list[JobResult]:
        if self._queue and not self._done:
            _, (handle, job, submitted) = self._queue.popitem(last=False)
            outcome = run_job(job.subproblem, job.backend, job.limits, job.options)
            self._done.append(JobResult(handle, outcome, time.monotonic() - submitted))
        done, self._done = self._done, []
        return done

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        return self.poll()

    def cancel(self, handle: JobHandle) -> bool:
        entry = self._queue.pop(handle.job_id, None)
        if entry is None:
            return False
        self._done.append(cancelled_before_start(handle, entry[2]))
        return True

    def shutdown(self) -> None:
        for job_id in list(self._queue):
            self.cancel(self._queue[job_id][0])
        self._closed = True
