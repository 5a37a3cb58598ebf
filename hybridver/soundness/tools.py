"""The verifiers ``hybridver crosscheck`` runs: ``--tool NAME=KIND[:ARG]``.

Kinds (each answers one instance with a VNN-COMP results file, :mod:`tools_run`):

* ``hybridver:MODE[:BACKEND]``: ``python -m hybridver verify ONNX VNNLIB --mode MODE
  [--backend BACKEND] --timeout T --results-file F`` in a subprocess (this hybridver);
* ``marabou:[PATH]``: Marabou's command line (``Marabou`` on PATH, from ``pip install
  maraboupy``, or PATH): ``Marabou ONNX VNNLIB --timeout T --verbosity 0 --summary-file S``;
  the verdict is the summary file's first word, the counterexample the ``xI = v`` /
  ``yJ = v`` lines it prints after ``sat``;
* ``vnncomp:DIR``: a VNN-COMP tool folder: ``DIR/prepare_instance.sh v1 CATEGORY ONNX
  VNNLIB`` (must exit 0), then ``DIR/run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS T``,
  both with ``TMPDIR`` set to the run's own folder;
* ``cmd:TEMPLATE``: any shell command; ``{onnx} {vnnlib} {results} {timeout}
  {category}`` are replaced (shell-quoted) and it must write the results file;
* ``results:CSV[,CEDIR]``: answers recorded in a VNN-COMP results CSV (``category, onnx,
  vnnlib, prep_time, result, time``, matched on the file names); nothing runs.  A recorded
  ``sat`` is checked with its counterexample file ``{onnx}_{vnnlib}.counterexample[.gz]``
  (file stems; the competition's results repositories keep them beside the CSV) from
  CEDIR, else from the CSV's folder; without one it stays unchecked.
"""

from __future__ import annotations

import csv
import dataclasses
import shlex
import shutil
import sys
from pathlib import Path

from hybridver.errors import HybridverInputError
from hybridver.specs.instances import strip_gz

__all__ = ["Tool", "KINDS", "parse_tool", "hybridver_command", "marabou_executable",
           "marabou_command", "cmd_command", "vnncomp_commands", "RecordedAnswer",
           "read_recorded", "recorded_key", "results_paths", "recorded_counterexample"]

KINDS = ("hybridver", "marabou", "vnncomp", "cmd", "results")
_MODES = ("hybrid", "exact")
_PLACEHOLDERS = ("onnx", "vnnlib", "results", "timeout", "category")


@dataclasses.dataclass(frozen=True)
class RecordedAnswer:
    """One row of a recorded results CSV: ``verdict`` as written, ``time_s`` its run time."""

    verdict: str
    time_s: float


@dataclasses.dataclass(frozen=True)
class Tool:
    """One ``--tool NAME=KIND:ARG``: ``arg`` is everything after the first ``:``.
    ``recorded``: for ``results:``, ``{(onnx file name, vnnlib file name): answer}``."""

    name: str
    kind: str
    arg: str
    recorded: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @property
    def text(self) -> str:
        return f"{self.kind}:{self.arg}" if self.arg else self.kind


def parse_tool(text: str) -> Tool:
    """``NAME=KIND:ARG`` -> :class:`Tool` (bad input: one readable error)."""
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not sep or not name or not spec.strip():
        raise HybridverInputError(f"--tool '{text}': expected NAME=KIND:ARG, e.g. "
                                  "hyb=hybridver:hybrid or mine=cmd:'run.sh {onnx} {vnnlib} "
                                  "{results} {timeout}'")
    if not all(c.isalnum() or c in "-_." for c in name):
        raise HybridverInputError(f"--tool '{text}': the name may hold letters, digits, "
                                  "'-', '_' and '.' only")
    kind, _, arg = spec.strip().partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise HybridverInputError(f"--tool {name}: unknown kind '{kind}' (one of "
                                  f"{', '.join(KINDS)})")
    tool = Tool(name, kind, arg.strip())
    if kind == "hybridver":
        parts = tool.arg.split(":") if tool.arg else ["hybrid"]
        if parts[0] not in _MODES or len(parts) > 2:
            raise HybridverInputError(f"--tool {name}: expected hybridver:MODE[:BACKEND] "
                                      f"with MODE one of {', '.join(_MODES)}")
    elif kind == "cmd":
        if not tool.arg:
            raise HybridverInputError(f"--tool {name}: cmd: needs a command template")
        try:
            tool.arg.format(**{key: "" for key in _PLACEHOLDERS})
        except (KeyError, IndexError, ValueError) as exc:
            raise HybridverInputError(f"--tool {name}: bad template ({exc!r}); placeholders "
                                      f"are {', '.join('{' + p + '}' for p in _PLACEHOLDERS)}"
                                      ) from None
    elif kind == "marabou":
        if marabou_executable(tool) is None:
            where = tool.arg or "no Marabou on PATH"
            raise HybridverInputError(f"--tool {name}: Marabou not found ({where}); pip "
                                      "install maraboupy, or give its path: "
                                      "marabou:/path/to/Marabou")
    elif kind == "vnncomp":
        folder = Path(tool.arg)
        for script in ("prepare_instance.sh", "run_instance.sh"):
            if not (folder / script).is_file():
                raise HybridverInputError(f"--tool {name}: {folder / script} not found")
    elif kind == "results":
        csv_path, ce_dir = results_paths(tool)
        if not ce_dir.is_dir():
            raise HybridverInputError(f"--tool {name}: counterexample folder {ce_dir} not "
                                      "found")
        tool = dataclasses.replace(tool, recorded=read_recorded(csv_path))
    return tool


def marabou_executable(tool: Tool) -> str | None:
    """The Marabou command of a ``marabou:`` tool, or None where it is not installed: its
    PATH, else ``Marabou`` on PATH, else beside this interpreter (``pip install maraboupy``
    into a virtual environment that is not activated)."""
    if tool.arg:
        return shutil.which(tool.arg)
    return shutil.which("Marabou") or shutil.which("Marabou",
                                                   path=str(Path(sys.executable).parent))


def hybridver_command(tool: Tool, onnx: Path, vnnlib: Path, results: Path,
                      timeout_s: float) -> list[str]:
    mode, _, backend = (tool.arg or "hybrid").partition(":")
    cmd = [sys.executable, "-m", "hybridver", "verify", str(onnx), str(vnnlib),
           "--mode", mode, "--timeout", f"{timeout_s:g}", "--results-file", str(results),
           "--progress", "off"]
    return cmd + (["--backend", backend] if backend else [])


def marabou_command(executable: str, onnx: Path, vnnlib: Path, summary: Path,
                    timeout_s: float) -> list[str]:
    # Marabou's --timeout is a whole number of seconds (0 means none)
    return [executable, str(onnx), str(vnnlib), "--timeout", str(max(1, int(timeout_s))),
            "--verbosity", "0", "--summary-file", str(summary)]


def cmd_command(tool: Tool, onnx: Path, vnnlib: Path, results: Path, timeout_s: float,
                category: str) -> str:
    """The shell command line of a ``cmd:`` tool, its placeholders filled in, quoted."""
    values = {"onnx": onnx, "vnnlib": vnnlib, "results": results, "timeout": f"{timeout_s:g}",
              "category": category}
    return tool.arg.format(**{key: shlex.quote(str(v)) for key, v in values.items()})


def vnncomp_commands(tool: Tool, onnx: Path, vnnlib: Path, results: Path, timeout_s: float,
                     category: str) -> tuple[list[str], list[str]]:
    """``(prepare, run)`` command lines of a VNN-COMP tool folder (competition version
    ``v1``)."""
    folder = Path(tool.arg).resolve()
    prepare = ["bash", str(folder / "prepare_instance.sh"), "v1", category, str(onnx),
               str(vnnlib)]
    run = ["bash", str(folder / "run_instance.sh"), "v1", category, str(onnx), str(vnnlib),
           str(results), f"{timeout_s:g}"]
    return prepare, run


def results_paths(tool: Tool) -> tuple[Path, Path]:
    """``(CSV, counterexample folder)`` of a ``results:CSV[,CEDIR]`` tool."""
    csv_text, _, ce_text = tool.arg.partition(",")
    csv_path = Path(csv_text.strip())
    return csv_path, Path(ce_text.strip()) if ce_text.strip() else csv_path.parent


def recorded_counterexample(tool: Tool, onnx: str, vnnlib: str) -> Path | None:
    """The counterexample file of a recorded ``sat``, or None."""
    _, ce_dir = results_paths(tool)
    onnx_name, vnnlib_name = recorded_key(onnx, vnnlib)
    stem = f"{Path(onnx_name).stem}_{Path(vnnlib_name).stem}.counterexample"
    for name in (stem, stem + ".gz"):
        if (ce_dir / name).is_file():
            return ce_dir / name
    return None


def read_recorded(path: Path) -> dict[tuple[str, str], RecordedAnswer]:
    """``{(onnx name, vnnlib name): answer}`` of a VNN-COMP results CSV (rows ``category,
    onnx, vnnlib, prep_time, result, time``; names without folders and ``.gz``)."""
    if not path.is_file():
        raise HybridverInputError(f"results CSV not found: {path}")
    answers = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for line_no, row in enumerate(csv.reader(handle), start=1):
            row = [cell.strip() for cell in row]
            if not row or not any(row) or row[0].startswith("#"):
                continue
            if len(row) < 6:
                raise HybridverInputError(f"{path}:{line_no}: expected 'category,onnx,"
                                          "vnnlib,prep_time,result,time'")
            try:
                time_s = float(row[5])
            except ValueError:
                if line_no == 1:
                    continue  # a header
                raise HybridverInputError(f"{path}:{line_no}: time '{row[5]}' is not a "
                                          "number") from None
            answers[recorded_key(row[1], row[2])] = RecordedAnswer(row[4].lower(), time_s)
    return answers


def recorded_key(onnx: str, vnnlib: str) -> tuple[str, str]:
    return strip_gz(Path(onnx).name), strip_gz(Path(vnnlib).name)
