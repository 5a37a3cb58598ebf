"""Running one tool on one instance: a subprocess in its own process group, killed (the
whole group) at its limit plus a grace, and its answer read from the VNN-COMP results file
it wrote (:func:`hybridver.result.read_results_file`)."""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

from hybridver.errors import HybridverInputError
from hybridver.result import read_results_file
from hybridver.soundness import tools as T

__all__ = ["ToolAnswer", "allow_runs", "run_process", "run_tool", "kill_running", "VERDICTS"]

VERDICTS = ("sat", "unsat", "timeout", "unknown", "error")
_TAIL = 400  # characters of a failing tool's output kept in the message
_running: set[subprocess.Popen] = set()  # processes started by run_process, still running
_running_lock = threading.Lock()
#: set by kill_running: a tool process registered afterwards is killed at once
_stopped = threading.Event()


@dataclasses.dataclass(frozen=True)
class ToolAnswer:
    """What one tool answered on one instance.

    ``verdict``: one of :data:`VERDICTS`; ``x``/``y``: the counterexample it wrote with
    ``sat`` (flat, ``None`` when it wrote none); ``time_s``: wall seconds of the run
    (``run_instance.sh`` alone for VNN-COMP folders; ``prep_time_s`` is the preparation);
    ``killed``: it overran limit + grace and its process group was killed."""

    verdict: str
    time_s: float
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    killed: bool = False
    exit_code: int | None = None
    prep_time_s: float = 0.0
    message: str = ""


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from ``/proc``; [] where there is none), also
    those that left its process group (``setsid``, as VNN-COMP scripts do)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                ppid = int(handle.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal_all(proc: subprocess.Popen, pids: list[int], sig: int) -> None:
    for send, target in [(os.killpg, proc.pid)] + [(os.kill, p) for p in pids]:
        try:
            send(target, sig)
        except OSError:  # gone already
            pass


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the tool's process group and every descendant (found before any dies),
    then SIGKILL to all after a second: a tool that traps TERM, its children and the
    children it started in sessions of their own are gone either way."""
    tree = _descendants(proc.pid)
    _signal_all(proc, tree, signal.SIGTERM)
    try:
        proc.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        pass
    _signal_all(proc, tree, signal.SIGKILL)
    proc.wait()


def run_process(cmd: list[str] | str, limit_s: float, cwd: Path, env: dict[str, str] | None
                = None) -> tuple[str, int | None, float, bool]:
    """Run ``cmd`` (a string runs in ``/bin/sh``) in a new session; kill its whole process
    group after ``limit_s`` seconds.  Returns ``(stdout + stderr, exit status, wall
    seconds, killed)``."""
    t0 = time.monotonic()
    log = cwd / "output.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, shell=isinstance(cmd, str), cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        with _running_lock:
            _running.add(proc)
            stopped = _stopped.is_set()
        if stopped:  # interrupted between its start and its registration
            _kill_group(proc)
        killed = False
        try:
            proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            killed = True
            _kill_group(proc)
        except BaseException:
            _kill_group(proc)
            raise
        else:
            try:  # a child left running in the background would hold the slot
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
        finally:
            with _running_lock:
                _running.discard(proc)
    elapsed = time.monotonic() - t0
    return log.read_text(errors="replace"), proc.returncode, elapsed, killed


def allow_runs() -> None:
    """A new crosscheck: tools may start again after an earlier :func:`kill_running`."""
    _stopped.clear()


def kill_running() -> None:
    """Kill the process group of every tool still running (an interrupted crosscheck),
    and of any tool that registers after this (one started just before the interrupt)."""
    with _running_lock:
        _stopped.set()
        procs = list(_running)
    for proc in procs:
        _kill_group(proc)


def _tail(text: str) -> str:
    text = " ".join(text.split())
    return text[-_TAIL:]


def _from_results_file(path: Path, elapsed: float, code: int | None, output: str,
                       killed: bool, prep_s: float = 0.0) -> ToolAnswer:
    if killed:
        return ToolAnswer("timeout", elapsed, killed=True, exit_code=code, prep_time_s=prep_s,
                          message="killed after its limit + grace")
    if not path.is_file():
        return ToolAnswer("error", elapsed, exit_code=code, prep_time_s=prep_s,
                          message=f"no results file (exit {code}): {_tail(output)}")
    try:
        parsed = read_results_file(path)
    except HybridverInputError as exc:
        return ToolAnswer("error", elapsed, exit_code=code, prep_time_s=prep_s,
                          message=str(exc))
    return ToolAnswer(parsed.verdict.value, elapsed, parsed.x, parsed.y, exit_code=code,
                      prep_time_s=prep_s)


_MARABOU_WORDS = {"sat": "sat", "unsat": "unsat", "timeout": "timeout", "unknown": "unknown",
                  "error": "error"}
_MARABOU_VALUE = re.compile(r"^\s*([xy])(\d+)\s*=\s*(\S+)\s*$", re.MULTILINE)


def _marabou_answer(summary: Path, output: str, elapsed: float, code: int | None,
                    killed: bool) -> ToolAnswer:
    if killed:
        return ToolAnswer("timeout", elapsed, killed=True, exit_code=code,
                          message="killed after its limit + grace")
    words = summary.read_text().split() if summary.is_file() else []
    verdict = _MARABOU_WORDS.get(words[0].lower()) if words else None
    if verdict is None:  # no summary: the verdict alone on a line of stdout
        for line in output.splitlines():
            verdict = _MARABOU_WORDS.get(line.strip().lower()) or verdict
    if verdict is None:
        return ToolAnswer("error", elapsed, exit_code=code, message=_tail(output))
    if verdict != "sat":
        return ToolAnswer(verdict, elapsed, exit_code=code)
    values: dict[str, dict[int, float]] = {"x": {}, "y": {}}
    for var, index, value in _MARABOU_VALUE.findall(output.split("sat", 1)[-1]):
        try:
            values[var][int(index)] = float(value)
        except ValueError:
            continue

    def dense(v: dict[int, float]) -> np.ndarray | None:
        return np.array([v[i] for i in range(len(v))]) if v and sorted(v) == list(
            range(len(v))) else None

    return ToolAnswer("sat", elapsed, dense(values["x"]), dense(values["y"]), exit_code=code)


def _recorded_answer(tool: T.Tool, onnx: str, vnnlib: str, work: Path) -> ToolAnswer:
    answer = tool.recorded.get(T.recorded_key(onnx, vnnlib))
    if answer is None:
        return ToolAnswer("error", 0.0, message=f"no recorded answer in {tool.arg}")
    verdict = answer.verdict if answer.verdict in VERDICTS else "unknown"
    message = "" if verdict == answer.verdict else f"recorded '{answer.verdict}'"
    ce_file = T.recorded_counterexample(tool, onnx, vnnlib) if verdict == "sat" else None
    if ce_file is None:
        return ToolAnswer(verdict, answer.time_s, message=message)
    data = ce_file.read_bytes()
    text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode(
        "utf-8", errors="replace")
    results = work / "results.txt"  # the competition's files hold the assignment alone
    results.write_text(text if text.lstrip().lower().startswith("sat") else "sat\n" + text)
    parsed = _from_results_file(results, answer.time_s, None, "", False)
    if parsed.verdict != "sat":  # an unreadable file: the sat stays, unchecked
        return ToolAnswer("sat", answer.time_s, message=f"unreadable {ce_file.name}: "
                                                        f"{parsed.message}")
    return dataclasses.replace(parsed, message=f"counterexample from {ce_file.name}")


def run_tool(tool: T.Tool, onnx: Path, vnnlib: Path, timeout_s: float, grace_s: float,
             work: Path, category: str, names: tuple[str, str] = ("", "")) -> ToolAnswer:
    """Run ``tool`` on one instance (plain files ``onnx``/``vnnlib``) in the empty folder
    ``work``; ``names``: the instance's names in the CSV (for ``results:``)."""
    if tool.kind == "results":
        return _recorded_answer(tool, *names, work)
    results = work / "results.txt"
    limit = timeout_s + grace_s
    if tool.kind == "hybridver":
        env = dict(os.environ)
        package_root = str(Path(T.__file__).resolve().parents[2])  # this hybridver
        env["PYTHONPATH"] = os.pathsep.join(
            [package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        cmd = T.hybridver_command(tool, onnx, vnnlib, results, timeout_s)
        return _from_results_file(results, *_run(cmd, limit, work, env))
    if tool.kind == "cmd":
        cmd = T.cmd_command(tool, onnx, vnnlib, results, timeout_s, category)
        return _from_results_file(results, *_run(cmd, limit, work))
    if tool.kind == "marabou":
        executable = T.marabou_executable(tool)
        if executable is None:
            return ToolAnswer("error", 0.0, message="Marabou is not installed (pip install "
                                                     "maraboupy)")
        summary = work / "summary.txt"
        cmd = T.marabou_command(executable, onnx, vnnlib, summary, timeout_s)
        output, code, elapsed, killed = run_process(cmd, limit, work)
        return _marabou_answer(summary, output, elapsed, code, killed)
    prepare, run = T.vnncomp_commands(tool, onnx, vnnlib, results, timeout_s, category)
    # each run its own TMPDIR: a script's files there (VNN-COMP tools keep pid files to
    # stop a previous instance) are not shared with runs in parallel workers
    env = {**os.environ, "TMPDIR": str(work)}
    output, code, prep_s, killed = run_process(prepare, limit, work, env)
    if killed or code != 0:
        return ToolAnswer("error", prep_s, killed=killed, exit_code=code, prep_time_s=prep_s,
                          message=f"prepare_instance.sh failed (exit {code}): {_tail(output)}")
    return _from_results_file(results, *_run(run, limit, work, env), prep_s=prep_s)


def _run(cmd, limit: float, work: Path, env=None) -> tuple[float, int | None, str, bool]:
    output, code, elapsed, killed = run_process(cmd, limit, work, env)
    return elapsed, code, output, killed
