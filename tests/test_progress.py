"""Progress display: a no-op by default, throttled on a terminal, silent when asked."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from hybridver.cli import main
from hybridver.progress import (NullProgress, Progress, TerminalProgress, format_fields,
                                make_progress)
from tests.conftest import EXAMPLES

RELU = str(EXAMPLES / "digits_relu.onnx")
SMALL = str(EXAMPLES / "digits_relu_eps_small_0.vnnlib")


class FakeClock:
    """Seconds that advance only when told (and by ``step`` per reading)."""

    def __init__(self, step: float = 0.0):
        self.now, self.step = 100.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def terminal(clock=None, **kwargs) -> tuple[TerminalProgress, io.StringIO]:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200)
    kwargs.setdefault("heartbeat_s", None)
    return TerminalProgress(console, clock=clock or FakeClock(), **kwargs), buffer


def test_null_progress_does_nothing(capsys):
    progress = NullProgress()
    with progress as p:
        assert p is progress
        p.phase("bounds")
        for i in range(1000):
            p.update(domains_left=i, best_bound=-0.5)
        p.log("a message")
    progress.close()
    assert capsys.readouterr() == ("", "")
    assert isinstance(progress, Progress)


def test_terminal_progress_draws_the_fields():
    progress, buffer = terminal()
    progress.phase("bab")
    progress.update(domains_left=1204, domains_bounded=88310, best_bound=-0.0123,
                    cases_done=1, cases_total=3, backend_jobs=2, depth=7)
    progress.log("case 0 proven")
    text = progress.text()
    for piece in ("bab", "cases 1/3", "domains left 1,204", "bounded 88,310",
                  "best bound -0.0123", "backend jobs 2", "depth=7"):
        assert piece in text
    progress.close()
    out = buffer.getvalue()
    assert "bab" in out and "case 0 proven\n" in out
    assert out.endswith("\x1b[2K")  # the live line is erased at the end (transient)
    progress.update(domains_left=1)  # after close: nothing more is drawn
    progress.log("late")
    assert buffer.getvalue() == out


def test_terminal_progress_throttles_before_formatting():
    clock = FakeClock(step=1e-6)  # 100000 readings: 0.1 simulated seconds
    progress, _ = terminal(clock)
    progress.phase("bab")
    first = progress.renders
    for i in range(100_000):
        progress.update(domains_left=i, best_bound=-1.0 / (i + 1))
    assert progress.renders - first <= 1
    clock.now += 1.0  # a quarter second later the next update redraws, with the latest values
    progress.update(domains_bounded=5)
    assert progress.renders - first <= 2
    assert "domains left 99,999" in progress.text() and "bounded 5" in progress.text()
    progress.close()


def test_terminal_progress_with_the_real_clock_renders_a_few_times():
    progress = TerminalProgress(Console(file=io.StringIO(), force_terminal=True),
                                heartbeat_s=None)
    for i in range(100_000):
        progress.update(domains_left=i)
    progress.close()
    # at most 4 redraws per second of whatever the loop took: far fewer than the calls
    assert 1 <= progress.renders < 1000


def test_plain_lines_when_not_a_terminal():
    buffer = io.StringIO()
    clock = FakeClock()
    progress = TerminalProgress(Console(file=buffer, force_terminal=False), clock=clock)
    progress.phase("load")
    progress.phase("bounds")
    for i in range(1000):
        progress.update(domains_left=i)
    clock.now += 3.0
    progress.update(domains_left=5)
    progress.close()
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 3 and "\x1b" not in buffer.getvalue()
    assert lines[0].startswith("load") and lines[1].startswith("bounds")
    assert "domains left 5" in lines[2]


def test_format_fields_label_and_unknown_values():
    line = format_fields("", {"cases_done": 2, "best_bound": "n/a"}, 3.25, label="[1/4] net")
    assert line == "[1/4] net | starting | cases 2 | best bound n/a | 3.2s"


def test_make_progress_modes():
    assert isinstance(make_progress("off"), NullProgress)
    assert isinstance(make_progress("auto", stream=io.StringIO()), NullProgress)
    on = make_progress("on", stream=io.StringIO())
    assert isinstance(on, TerminalProgress)
    on.close()

    class FakeTerminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    auto = make_progress("auto", stream=FakeTerminal())
    assert isinstance(auto, TerminalProgress)
    auto.close()
    with pytest.raises(ValueError):
        make_progress("sometimes")


def test_cli_progress_off_prints_no_progress_lines(capsys):
    code = main(["verify", RELU, SMALL, "--timeout", "60", "--progress", "off"])
    out, err = capsys.readouterr()
    assert code == 0 and out.strip().splitlines() == ["unsat"]
    assert err.strip().splitlines() == [err.strip()]  # only the one-line summary
    assert err.startswith("digits_relu.onnx digits_relu_eps_small_0.vnnlib: ")


def test_cli_progress_on_prints_phases_to_stderr(capsys):
    code = main(["verify", RELU, SMALL, "--timeout", "60", "--progress", "on"])
    out, err = capsys.readouterr()
    assert code == 0 and out.strip().splitlines() == ["unsat"]
    lines = err.strip().splitlines()
    assert len(lines) >= 2 and lines[0].startswith("load")
    assert lines[-1].startswith("digits_relu.onnx")


def test_cli_progress_bad_value_is_one_line(capsys):
    code = main(["verify", RELU, SMALL, "--progress", "loud"])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--progress" in err


def test_alternating_phases_are_throttled():
    progress, _ = terminal()
    for _ in range(10_000):
        progress.phase("bab")
        progress.phase("exact")
    assert progress.renders == 2  # the first start of each phase, nothing more
    progress.close()


def test_heartbeat_redraws_while_the_loop_is_silent():
    """A long solver call sends no updates; the elapsed time still moves."""
    progress, buffer = terminal(clock=time.monotonic, interval_s=0.01, heartbeat_s=0.01)
    progress.phase("exact")
    waited = 0
    while progress.renders < 3 and waited < 1000:  # wait for two heartbeats (or give up)
        time.sleep(0.01)
        waited += 1
    progress.close()
    assert progress.renders >= 3
    renders = progress.renders
    time.sleep(0.05)
    assert progress.renders == renders  # the thread stopped with close()
