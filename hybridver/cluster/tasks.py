"""Ray tasks that say when they start, and a watch on the head.

A task submitted to a busy cluster waits in Ray's queue, so a deadline counted from its
submission would kill tasks that never ran.  Each task here is a Ray *streaming generator*:
its first item says that a worker has started it, its second is ``fn(*args)``.  Ray
numbers the items, so a task run again after its worker died (``max_retries=1``) does not
repeat the first one.  :class:`Tasks` keeps the running tasks by key and turns their items
into start times and results; the executor and the farm measure their deadlines from the
start.

:class:`HeadWatch` notices a lost head; :func:`lost_cluster` is the error then.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Hashable
from typing import Any

from hybridver.cluster.connect import head_trouble, lost_head, require_ray

ray = require_ray()

_STARTED = "hybridver: started"


def _stream(fn: Callable[..., Any], args: tuple):
    yield _STARTED
    yield fn(*args)


_remote_stream = ray.remote(num_returns="streaming", num_cpus=1, max_retries=1,
                            retry_exceptions=False)(_stream)


@dataclasses.dataclass(frozen=True)
class TaskEnd:
    """A finished task: ``value`` when ``error`` is None; else ``error`` is ``"died"``
    (its worker died twice), ``"cancelled"`` (by the cluster) or ``"exception"`` (``fn``
    raised; ``message`` says what)."""

    key: Hashable
    value: Any = None
    error: str | None = None
    message: str = ""


class Tasks:
    """Running tasks by key, with the time each one started (None while queued)."""

    def __init__(self) -> None:
        self._gens: dict[Hashable, Any] = {}
        self.started: dict[Hashable, float | None] = {}

    def __len__(self) -> int:
        return len(self._gens)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._gens

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a worker (``fn``: a module-level function)."""
        try:
            self._gens[key] = _remote_stream.remote(fn, args)
        except Exception as exc:  # noqa: BLE001 - the cluster stopped answering
            raise lost_cluster(exc) from exc
        self.started[key] = None

    def wait(self, timeout: float) -> list[TaskEnd]:
        """Note the starts and collect the ends that arrived (waiting up to ``timeout``
        seconds for any news)."""
        if not self._gens:
            return []
        gens = list(self._gens.values())
        try:
            ready, _ = ray.wait(gens, num_returns=len(gens), timeout=0)
            if not ready and timeout > 0:
                ready, _ = ray.wait(gens, num_returns=1, timeout=timeout)
        except Exception as exc:  # noqa: BLE001
            raise lost_cluster(exc) from exc
        ready_ids = {id(g) for g in ready}
        ends = []
        for key, gen in list(self._gens.items()):
            if id(gen) in ready_ids:
                end = self._advance(key, gen)
                if end is not None:
                    ends.append(end)
        return ends

    def _advance(self, key: Hashable, gen: Any) -> TaskEnd | None:
        """Read the task's next item(s): a start, then (when there) its end."""
        while True:
            try:
                ready, _ = ray.wait([gen], timeout=0)
                if not ready:
                    return None
                value = ray.get(next(gen), timeout=60)
            except ray.exceptions.TaskCancelledError:
                return self._end(TaskEnd(key, error="cancelled",
                                         message="cancelled by the cluster"))
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                    ray.exceptions.OutOfMemoryError, ray.exceptions.ObjectLostError) as exc:
                return self._end(TaskEnd(key, error="died", message="Ray worker died "
                                         f"(the task ran twice): {type(exc).__name__}"))
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None) or exc
                first = str(cause).splitlines()[0] if str(cause) else ""
                return self._end(TaskEnd(key, error="exception",
                                         message=f"{type(cause).__name__}: {first}"))
            except StopIteration:
                return self._end(TaskEnd(key, error="exception", message="no result"))
            except Exception as exc:  # noqa: BLE001 - the cluster stopped answering
                raise lost_cluster(exc) from exc
            if isinstance(value, str) and value == _STARTED and self.started[key] is None:
                self.started[key] = time.monotonic()
                continue
            return self._end(TaskEnd(key, value))

    def _end(self, end: TaskEnd) -> TaskEnd:
        del self._gens[end.key]
        del self.started[end.key]
        return end

    def cancel(self, key: Hashable) -> None:
        """Stop the task for real (``force``: its worker process is killed, no retry)."""
        gen = self._gens.pop(key, None)
        self.started.pop(key, None)
        if gen is None:
            return
        try:
            ray.cancel(gen, force=True)
        except Exception:  # noqa: BLE001 - already finished, or the cluster is gone
            pass

    def cancel_all(self) -> None:
        for key in list(self._gens):
            self.cancel(key)


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
        trouble = head_trouble()
        if trouble:
            raise lost_cluster(ConnectionError(trouble))


def lost_cluster(exc: BaseException):
    """The :class:`ClusterError` of a failing cluster.  When the head does not answer,
    Ray's own exit handler would wait for it and end the process with a crash, so at exit
    this process then leaves at once instead, with the exit status of a
    :class:`ClusterError` (2)."""
    if head_trouble():
        atexit.register(_leave)
    return lost_head(exc)


def _leave() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(2)
