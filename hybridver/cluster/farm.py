"""Campaigns on a Ray cluster: one task per item, each with its own time limit.

:func:`farm` runs ``fn(item)`` for every item as a Ray task and yields a
:class:`FarmResult` as each one finishes (in the order they finish).  ``fn`` must be a
module-level function of an importable module, so Ray sends it by reference (the module
ships with the ``hybridver`` package, see :mod:`~hybridver.cluster.connect`).

An item whose task runs ``timeout_s + grace_s`` after it started is cancelled for real
(``ray.cancel(force=True)``: the worker process is killed) and reported as ``timeout``; an
item whose worker dies is run once more by Ray (``max_retries``) and reported as ``error``
if that one dies too.  At most ``capacity`` tasks are handed to Ray at once.  A cluster
that stops answering raises :class:`~hybridver.errors.ClusterError`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from hybridver.cluster.connect import cluster_info
from hybridver.cluster.tasks import HeadWatch, TaskEnd, Tasks

#: statuses of a :class:`FarmResult`
STATUSES = ("done", "timeout", "error")


@dataclasses.dataclass(frozen=True)
class FarmResult:
    """``index``: the item's position in the input; ``value``: ``fn(item)`` when
    ``status == "done"``, else None; ``message``: why not; ``wall_s``: how long a killed
    task ran (0 otherwise: ``fn`` measures its own time)."""

    index: int
    item: Any
    status: str
    value: Any = None
    message: str = ""
    wall_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class FarmLoad:
    """What the cluster is doing: its alive ``nodes`` and ``cpus``, tasks ``busy`` (handed
    to Ray), ``queued`` (waiting here) and ``done``."""

    nodes: int
    cpus: int
    busy: int
    queued: int
    done: int

    def describe(self) -> str:
        """E.g. ``1 node 2 CPUs, 2 busy``."""
        return workers_line(self.nodes, self.cpus, self.busy)


def workers_line(nodes: int, cpus: int, busy: int | None = None) -> str:
    """The cluster's workers for a progress line: ``1 node 2 CPUs[, 2 busy]``."""
    line = f"{nodes} node{'s' * (nodes != 1)} {cpus} CPU{'s' * (cpus != 1)}"
    return line if busy is None else f"{line}, {busy} busy"


def farm(fn: Callable[[Any], Any], items: Iterable[Any], timeout_s: Callable[[Any], float],
         grace_s: float = 30.0, capacity: int | None = None,
         on_load: Callable[[FarmLoad], None] | None = None) -> Iterator[FarmResult]:
    """Run ``fn(item)`` on the connected cluster for every item; yield each result as it
    finishes.  ``timeout_s(item)``: the item's own limit (``fn`` should stop by itself by
    then; ``grace_s`` later its task is killed, counted from the task's start: a task
    waiting in Ray's queue for a CPU has no deadline); ``capacity``: tasks at once
    (default: the cluster's CPUs); ``on_load``: called with a :class:`FarmLoad` after every
    change.  Leaving the loop early (``break``, an exception) cancels the tasks still
    running."""
    info = cluster_info()
    capacity = capacity if capacity is not None else max(1, info.cpus)
    queue = list(enumerate(items))
    queue.reverse()                                   # pop() takes them in order
    items_of: dict[int, Any] = {}
    tasks, head, done = Tasks(), HeadWatch(), 0

    def deadline(index: int) -> float:
        started = tasks.started.get(index)
        if started is None:
            return time.monotonic() + 1.0
        return started + float(timeout_s(items_of[index])) + grace_s

    seen = {"info": info, "at": time.monotonic()}

    def report() -> None:
        """``on_load``, with the cluster's size asked again at most every 5 s (right after
        the head answered: Ray's query would wait for a lost head)."""
        if on_load is None:
            return
        if time.monotonic() - seen["at"] > 5.0:
            head.check()
            seen["info"], seen["at"] = cluster_info(), time.monotonic()
        now = seen["info"]
        on_load(FarmLoad(now.nodes, now.cpus, len(tasks), len(queue), done))

    try:
        while queue or len(tasks):
            while queue and len(tasks) < capacity:
                index, item = queue.pop()
                items_of[index] = item
                tasks.submit(index, fn, item)
            head.check()
            report()
            now = time.monotonic()
            nap = max(0.0, min(1.0, min(deadline(k) for k in items_of) - now))
            finished = [_result(end, items_of.pop(end.key)) for end in tasks.wait(nap)]
            now = time.monotonic()
            for index in [k for k in items_of if now > deadline(k)]:
                ran = now - tasks.started[index]
                tasks.cancel(index)
                finished.append(FarmResult(index, items_of.pop(index), "timeout",
                                           message=f"killed {grace_s:g} s past its time limit",
                                           wall_s=ran))
            for result in finished:
                done += 1
                yield result
        head.check()
        report()
    finally:
        tasks.cancel_all()


def _result(end: TaskEnd, item: Any) -> FarmResult:
    if end.error is None:
        return FarmResult(end.key, item, "done", end.value)
    return FarmResult(end.key, item, "error", message=end.message)
