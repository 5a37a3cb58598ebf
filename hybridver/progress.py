"""Progress display for long runs: the verification loop reports, a display shows.

The loop calls four methods on a :class:`Progress` and never asks what is behind it:

* ``phase(name)`` when a phase starts (``"load"``, ``"attack"``, ``"bounds"``, ``"bab"``...);
* ``update(**fields)`` as often as it likes (thousands of times per second is fine): the
  fields are remembered, and a display redraws at most every ``interval_s`` seconds.
  Known fields: ``domains_left``, ``domains_bounded``, ``best_bound`` (float),
  ``cases_done`` / ``cases_total``, ``backend_jobs``, ``cluster`` (the Ray cluster's
  workers, e.g. ``1 node 2 CPUs, 2 busy``); any other is shown as ``key=value``;
* ``log(message)`` for a line worth keeping (printed above the live line);
* ``close()`` once at the end (also done by ``with``).

:class:`NullProgress` does nothing and is the default everywhere.
:class:`TerminalProgress` draws one live line on stderr with ``rich``; ``rich`` is imported
only when such a display is made.  :func:`make_progress` picks one for a CLI switch.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

__all__ = ["Progress", "NullProgress", "TerminalProgress", "make_progress", "format_fields",
           "MODES"]

MODES = ("auto", "on", "off")


class Progress:
    """What the verification loop calls.  The base class does nothing."""

    def phase(self, name: str) -> None:
        """A new phase starts (its name is shown until the next one)."""

    def update(self, **fields: Any) -> None:
        """Remember ``fields``; a display may redraw (throttled)."""

    def log(self, message: str) -> None:
        """A message worth a line of its own."""

    def close(self) -> None:
        """Remove the live display; later calls do nothing."""

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class NullProgress(Progress):
    """No display: every call returns at once."""


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def format_fields(phase: str, fields: dict[str, Any], elapsed_s: float, label: str = "") -> str:
    """The one-line text of a display, e.g. ``bab | cases 1/3 | domains left 1,204 |
    bounded 88,310 | best bound -0.0123 | 12.4s``."""
    parts = [label] if label else []
    parts.append(phase or "starting")
    rest = dict(fields)
    done, total = rest.pop("cases_done", None), rest.pop("cases_total", None)
    if total is not None:
        parts.append(f"cases {done if done is not None else 0}/{total}")
    elif done is not None:
        parts.append(f"cases {done}")
    for key, title in (("cluster", "cluster"), ("domains_left", "domains left"),
                       ("domains_bounded", "bounded"), ("backend_jobs", "backend jobs")):
        if key in rest:
            parts.append(f"{title} {_count(rest.pop(key))}")
    if "best_bound" in rest:
        best = rest.pop("best_bound")
        parts.append(f"best bound {best:+.4g}" if isinstance(best, (int, float))
                     else f"best bound {best}")
    parts.extend(f"{key}={_count(value)}" for key, value in rest.items())
    parts.append(f"{elapsed_s:.1f}s")
    return " | ".join(parts)


class TerminalProgress(Progress):
    """One live line on a terminal (``rich.live.Live``), or plain lines elsewhere.

    ``console``: a ``rich.console.Console`` (default: stderr).  On a terminal the line is
    redrawn in place, at most once per ``interval_s`` (default 0.25 s), and removed by
    :meth:`close`; on anything else (a file, a pipe) one plain line is printed at most
    once per ``plain_interval_s`` and at each phase change.  :meth:`update` only stores the
    fields and reads ``clock`` until a redraw is due, so it costs about a microsecond
    between redraws; :meth:`phase` draws at once the first time a phase starts and is
    throttled like :meth:`update` when phases alternate.  On a terminal a daemon thread
    also redraws every ``heartbeat_s`` seconds (default 1; None: no thread) so the elapsed
    time moves while the loop is busy elsewhere (a long solver call); it obeys the same
    throttle.  ``renders`` counts redraws (for tests).  ``label`` prefixes the line (e.g. the
    instance of a batch run).  Calls may come from several threads: one redraw at a time
    happens, a redraw due while another is drawing is skipped.
    """

    def __init__(self, console: Any = None, interval_s: float = 0.25,
                 plain_interval_s: float = 2.0, label: str = "",
                 clock: Callable[[], float] = time.monotonic,
                 heartbeat_s: float | None = 1.0):
        from rich.console import Console

        self.console = console if console is not None else Console(file=sys.stderr)
        self.label = label
        self.renders = 0
        self._clock = clock
        self._start = clock()
        self._phase = ""
        self._seen: set[str] = set()
        self._fields: dict[str, Any] = {}
        self._live = None
        self._closed = False
        self._drawing = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        if self.console.is_terminal and not self.console.is_dumb_terminal:
            from rich.live import Live

            self._interval = interval_s
            self._live = Live(console=self.console, auto_refresh=False, transient=True,
                              redirect_stdout=False, redirect_stderr=False)
            self._live.start()
            if heartbeat_s is not None:
                self._heartbeat = threading.Thread(target=self._beat, args=(heartbeat_s,),
                                                   name="hybridver-progress", daemon=True)
                self._heartbeat.start()
        else:
            self._interval = plain_interval_s
        self._next = self._start  # first update draws at once

    def _beat(self, period_s: float) -> None:
        while not self._stop.wait(period_s):
            now = self._clock()
            if now >= self._next:
                self._render(now)

    def text(self) -> str:
        """The current line."""
        return format_fields(self._phase, self._fields, self._clock() - self._start,
                             self.label)

    def _render(self, now: float) -> None:
        if not self._drawing.acquire(blocking=False):
            return  # another thread is drawing right now
        try:
            if self._closed:
                return
            self._next = now + self._interval
            self.renders += 1
            line = self.text()
            if self._live is not None:
                from rich.text import Text

                self._live.update(Text(line, style="cyan", no_wrap=True,
                                       overflow="ellipsis"), refresh=True)
            else:
                self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        finally:
            self._drawing.release()

    def phase(self, name: str) -> None:
        if self._closed or name == self._phase:
            return
        self._phase = name
        now = self._clock()
        if name not in self._seen:  # a phase's first start is shown at once
            self._seen.add(name)
            self._render(now)
        elif now >= self._next:  # phases that alternate quickly are throttled
            self._render(now)

    def update(self, **fields: Any) -> None:
        self._fields.update(fields)
        now = self._clock()
        if now < self._next or self._closed:
            return
        self._render(now)

    def log(self, message: str) -> None:
        if self._closed:
            return
        self.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self._closed:
            return
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        with self._drawing:
            self._closed = True
        if self._live is not None:
            self._live.stop()


def make_progress(mode: str = "auto", label: str = "", stream: IO[str] | None = None
                  ) -> Progress:
    """A display for the switch ``--progress auto|on|off``.

    ``auto``: a live line when ``stream`` (default: stderr) is a terminal, nothing
    otherwise; ``on``: always (plain lines when not a terminal); ``off``: nothing.
    """
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {', '.join(MODES)}, not {mode!r}")
    stream = sys.stderr if stream is None else stream
    if mode == "off":
        return NullProgress()
    if mode == "auto":
        isatty = getattr(stream, "isatty", None)
        if not (callable(isatty) and isatty()):
            return NullProgress()
    from rich.console import Console

    return TerminalProgress(Console(file=stream), label=label)
