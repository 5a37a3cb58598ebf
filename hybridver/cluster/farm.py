"""Campaigns on a Ray cluster: one task per item, each with its own time limit.

:func:`farm` runs ``fn(item)`` for every item as a Ray task and yields a
:class:`FarmResult` as each one finishes (in the order they finish).  ``fn`` must be a
module-level function of an importable module, so Ray sends it by reference (the module
ships with the ``hybridver`` package, see :mod:`~hybridver.cluster.connect`).

An item whose task runs ``timeout_s + grace_s`` after its dispatch is cancelled for real
(``ray.cancel(force=True)``: the worker process is killed) and reported as ``timeout``; an
item whose worker dies is run once more by Ray (``max_retries``) and reported as ``error``
if that one dies too.  At most ``capacity`` tasks are handed to Ray at once, so a task
starts about when it is dispatched.  A cluster that stops answering raises
:class:`~hybridver.errors.ClusterError`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from hybridver.cluster.connect import cluster_info, require_ray
from hybridver.cluster.executor import HeadWatch, lost_cluster

ray = require_ray()

#: statuses of a :class:`FarmResult`
STATUSES = ("done", "timeout", "error")


@dataclasses.dataclass(frozen=True)
class FarmResult:
    """``index``: the item's position in the input; ``value``: ``fn(item)`` when
    ``status == "done"``, else None; ``message``: why not; ``wall_s``: from dispatch to
    the result."""

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


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


_remote_call = ray.remote(num_cpus=1, max_retries=1, retry_exceptions=False)(_call)


def farm(fn: Callable[[Any], Any], items: Iterable[Any], timeout_s: Callable[[Any], float],
         grace_s: float = 30.0, capacity: int | None = None,
         on_load: Callable[[FarmLoad], None] | None = None) -> Iterator[FarmResult]:
    """Run ``fn(item)`` on the connected cluster for every item; yield each result as it
    finishes.  ``timeout_s(item)``: the item's own limit (``fn`` should stop by itself by
    then; ``grace_s`` later its task is killed); ``capacity``: tasks at once (default: the
    cluster's CPUs); ``on_load``: called with a :class:`FarmLoad` after every change.

    Leaving the loop early (``break``, an exception) cancels the tasks still running."""
    info = cluster_info()
    capacity = capacity if capacity is not None else max(1, info.cpus)
    queue = list(enumerate(items))
    queue.reverse()                                   # pop() takes them in order
    running: dict[Any, tuple[int, Any, float, float]] = {}   # ref -> index, item, t0, end
    head, done = HeadWatch(), 0

    def report() -> None:
        if on_load is not None:
            now = cluster_info()
            on_load(FarmLoad(now.nodes, now.cpus, len(running), len(queue), done))

    try:
        while queue or running:
            while queue and len(running) < capacity:
                index, item = queue.pop()
                t0 = time.monotonic()
                try:
                    ref = _remote_call.remote(fn, item)
                except Exception as exc:  # noqa: BLE001 - the cluster stopped answering
                    raise lost_cluster(exc) from exc
                running[ref] = (index, item, t0, t0 + float(timeout_s(item)) + grace_s)
            report()
            head.check()
            now = time.monotonic()
            nap = max(0.0, min(1.0, min(end for *_, end in running.values()) - now))
            try:
                ready, _ = ray.wait(list(running), num_returns=1, timeout=nap)
            except Exception as exc:  # noqa: BLE001
                raise lost_cluster(exc) from exc
            finished = [_result(ref, *running.pop(ref)[:3]) for ref in ready]
            now = time.monotonic()
            for ref in [r for r, (*_, end) in running.items() if now > end]:
                index, item, t0, _ = running.pop(ref)
                _cancel(ref)
                finished.append(FarmResult(index, item, "timeout",
                                           message=f"killed {grace_s:g} s past its time limit",
                                           wall_s=now - t0))
            for result in finished:
                done += 1
                yield result
        report()
    finally:
        for ref in running:
            _cancel(ref)


def _result(ref, index: int, item: Any, t0: float) -> FarmResult:
    wall = time.monotonic() - t0
    try:
        return FarmResult(index, item, "done", ray.get(ref, timeout=60), wall_s=wall)
    except ray.exceptions.TaskCancelledError:
        return FarmResult(index, item, "error", message="cancelled by the cluster",
                          wall_s=wall)
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
            ray.exceptions.OutOfMemoryError, ray.exceptions.ObjectLostError) as exc:
        return FarmResult(index, item, "error", message="Ray worker died (retried once): "
                          f"{type(exc).__name__}", wall_s=wall)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        first = str(cause).splitlines()[0] if str(cause) else ""
        return FarmResult(index, item, "error", message=f"{type(cause).__name__}: {first}",
                          wall_s=wall)
    except Exception as exc:  # noqa: BLE001 - the cluster stopped answering
        raise lost_cluster(exc) from exc


def _cancel(ref) -> None:
    try:
        ray.cancel(ref, force=True)
    except Exception:  # noqa: BLE001 - already finished, or the cluster is gone
        pass
