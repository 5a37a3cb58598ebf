"""hybridver beside Marabou on the same instances, with the same time limits.

Usage:
  python benchmarks/compare.py CSV [--expected FILE] [--root DIR] [--timeout-cap S]
                               [--select PATTERN ...] [--limit N] [--tools hybridver,marabou]
                               [--grace S] [--threads N] [--mode hybrid|exact]
                               [--backend highs|ortools|z3] [--json rows.jsonl]

``CSV`` is a VNN-COMP instances file (``onnx,vnnlib,timeout`` relative to ``--root``,
default its folder; ``.gz`` copies are used where only those exist, and decompressed for
Marabou, which reads plain files only).  Expected answers come from ``--expected`` or an
``expected_results.csv`` beside the CSV.  ``--select`` keeps the instances whose
``"ONNX VNNLIB"`` file names match one of the glob patterns (``*`` is added at both ends;
several patterns may be given, or comma-separated), then ``--limit`` keeps the first N.

Each tool runs as its own process, one at a time (never in parallel), with the instance's
timeout capped by ``--timeout-cap``, and is killed (its whole process group) when it runs
``--grace`` seconds past that limit:

* hybridver: ``python -m hybridver.cli verify ONNX VNNLIB --timeout T --results-file F``;
* Marabou:   ``Marabou ONNX VNNLIB --timeout T --verbosity 0 --summary-file F`` (the
  ``Marabou`` command of ``pip install maraboupy``, extra ``compare`` of this project).

Times are wall-clock seconds of the whole process (start-up and model loading included,
for both tools).  ``--threads`` (default 1) sets ``OMP_NUM_THREADS`` for both.  A definite
verdict that contradicts the expected answer is flagged ``WRONG``, and two tools that
contradict each other ``DISAGREE``; both are repeated after the table, and the script then
exits with status 1.  Where Marabou is not installed, hybridver runs alone and the script
says so.  Marabou's counterexamples are not re-checked here.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import gzip
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hybridver.commands.run_instances import judge  # noqa: E402
from hybridver.specs.instances import (Instance, existing_file, read_expected,  # noqa: E402
                                       read_instances, strip_gz)
from hybridver.errors import HybridverInputError  # noqa: E402
from hybridver.result import read_results_file  # noqa: E402

TOOLS = ("hybridver", "marabou")
DEFINITE = ("sat", "unsat")


@dataclasses.dataclass
class ToolRun:
    """One tool on one instance: ``verdict`` is sat / unsat / timeout / unknown / error,
    ``killed`` when it overran its limit plus grace and was stopped."""

    verdict: str
    time_s: float
    killed: bool = False
    detail: str = ""


def run_process(cmd: list[str], limit_s: float, env: dict[str, str]
                ) -> tuple[str, str, int | None, float, bool]:
    """Run ``cmd`` in its own process group; kill the group after ``limit_s`` seconds.
    Returns ``(stdout, stderr, returncode, wall seconds, killed)``."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    killed = False
    try:
        out, err = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        killed = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return out, err, proc.returncode, time.monotonic() - t0, killed


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def run_hybridver(onnx: Path, vnnlib: Path, timeout_s: float, grace_s: float,
                  env: dict[str, str], work: Path, mode: str, backend: str) -> ToolRun:
    results, report = work / "hybridver_result.txt", work / "hybridver_report.json"
    for path in (results, report):
        path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "hybridver.cli", "verify", str(onnx), str(vnnlib),
           "--timeout", f"{timeout_s:g}", "--results-file", str(results), "--json",
           str(report), "--progress", "off", "--mode", mode, "--backend", backend]
    out, err, code, wall, killed = run_process(cmd, timeout_s + grace_s, env)
    if killed:
        return ToolRun("timeout", wall, True, "killed after limit + grace")
    if code != 0 or not results.exists():
        return ToolRun("error", wall, detail=_last_line(err) or f"exit status {code}")
    try:
        verdict = read_results_file(results).verdict.value
    except HybridverInputError as exc:
        return ToolRun("error", wall, detail=str(exc))
    detail = ""
    if report.exists():
        data = json.loads(report.read_text())
        detail = f"own time {data.get('time_s', float('nan')):.2f}s"
        if data.get("message"):
            detail += f"; {data['message']}"
    return ToolRun(verdict, wall, detail=detail)


_MARABOU_WORDS = {"sat": "sat", "unsat": "unsat", "timeout": "timeout", "unknown": "unknown",
                  "error": "error"}


def plain_copy(path: Path, work: Path) -> Path:
    """``path`` itself, or a decompressed copy in ``work`` for a ``.gz`` file."""
    if path.suffix != ".gz":
        return path
    target = work / path.name[:-3]
    with gzip.open(path, "rb") as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return target


def run_marabou(marabou: str, onnx: Path, vnnlib: Path, timeout_s: float, grace_s: float,
                env: dict[str, str], work: Path) -> ToolRun:
    summary = work / "marabou_summary.txt"
    summary.unlink(missing_ok=True)
    try:
        onnx, vnnlib = plain_copy(onnx, work), plain_copy(vnnlib, work)
    except OSError as exc:
        return ToolRun("error", 0.0, detail=f"cannot decompress: {exc}")
    cmd = [marabou, str(onnx), str(vnnlib), "--timeout", str(max(1, math.ceil(timeout_s))),
           "--verbosity", "0", "--summary-file", str(summary)]
    out, err, code, wall, killed = run_process(cmd, timeout_s + grace_s, env)
    if killed:
        return ToolRun("timeout", wall, True, "killed after limit + grace")
    # the summary file starts with the verdict (sat / unsat / TIMEOUT / UNKNOWN / ERROR);
    # stdout has it alone on a line
    words = summary.read_text().split() if summary.exists() else []
    verdict = _MARABOU_WORDS.get(words[0].lower()) if words else None
    if verdict is None:
        for line in out.splitlines():
            verdict = _MARABOU_WORDS.get(line.strip().lower()) or verdict
    if verdict is None:
        return ToolRun("error", wall, detail=_last_line(err) or _last_line(out)
                       or f"exit status {code}")
    return ToolRun(verdict, wall)


def select(instances: list[Instance], patterns: list[str]) -> list[Instance]:
    if not patterns:
        return instances
    return [inst for inst in instances
            if any(fnmatch.fnmatch(f"{Path(inst.onnx).name} {Path(inst.vnnlib).name}",
                                   f"*{p}*") for p in patterns)]


def short_name(inst: Instance) -> str:
    onnx = strip_gz(Path(inst.onnx).name).removesuffix(".onnx")
    vnnlib = strip_gz(Path(inst.vnnlib).name).removesuffix(".vnnlib")
    return f"{onnx} {vnnlib}"


def check(runs: dict[str, ToolRun], expected: str | None) -> str:
    wrong = [tool for tool, r in runs.items() if judge(r.verdict, expected) == "WRONG"]
    if wrong:
        return "WRONG: " + ",".join(wrong)
    definite = {r.verdict for r in runs.values() if r.verdict in DEFINITE}
    if len(definite) > 1:
        return "DISAGREE"
    return "ok" if expected in DEFINITE and definite else "-"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", metavar="CSV")
    parser.add_argument("--expected", metavar="FILE",
                        help="expected results (default: expected_results.csv beside CSV)")
    parser.add_argument("--root", metavar="DIR", help="folder the CSV's paths are relative to")
    parser.add_argument("--timeout-cap", type=float, metavar="S",
                        help="cap each instance's timeout at S seconds")
    parser.add_argument("--select", action="append", default=[], metavar="PATTERN",
                        help="glob on 'ONNX VNNLIB' file names (repeat or comma-separate)")
    parser.add_argument("--limit", type=int, metavar="N", help="run the first N selected")
    parser.add_argument("--tools", default="hybridver,marabou",
                        help="comma-separated subset of: " + ", ".join(TOOLS))
    parser.add_argument("--grace", type=float, default=5.0, metavar="S",
                        help="seconds past the limit before a tool is killed (default 5)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="OMP_NUM_THREADS for both tools (default 1)")
    parser.add_argument("--mode", choices=["hybrid", "exact"], default="hybrid",
                        help="hybridver's --mode")
    parser.add_argument("--backend", default="highs", help="hybridver's --backend (exact mode)")
    parser.add_argument("--json", metavar="F", help="write one JSON line per instance")
    args = parser.parse_args(argv)
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = sorted(set(args.tools) - set(TOOLS))
    if unknown or not args.tools:
        parser.error(f"--tools: unknown tool(s) {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(TOOLS)}")
    args.select = [p.strip() for item in args.select for p in item.split(",") if p.strip()]
    for name in ("timeout_cap", "grace", "limit", "threads"):
        value = getattr(args, name)
        if value is not None and (value < 0 or (name != "grace" and value == 0)):
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    csv_path = Path(args.csv)
    try:
        instances = read_instances(csv_path)
    except HybridverInputError as exc:
        print(f"compare: error: {exc}", file=sys.stderr)
        return 2
    expected_path = Path(args.expected) if args.expected else csv_path.parent / \
        "expected_results.csv"
    if args.expected and not expected_path.is_file():
        print(f"compare: error: file not found: {expected_path}", file=sys.stderr)
        return 2
    expected = read_expected(expected_path)
    root = Path(args.root) if args.root else csv_path.parent
    instances = select(instances, args.select)[: args.limit]
    if not instances:
        print("compare: error: no instance selected", file=sys.stderr)
        return 2

    tools = list(args.tools)
    marabou = shutil.which("Marabou")
    if "marabou" in tools and marabou is None:
        print("compare: Marabou is not installed (pip install 'maraboupy==2.0.0', or the "
              "project's 'compare' extra): running hybridver only", file=sys.stderr)
        tools.remove("marabou")
        if not tools:
            return 2
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "OPENBLAS_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}

    name_w = max(len("instance"), *(len(short_name(i)) for i in instances))
    head = f"{'instance':<{name_w}}  {'timeout':>7}  {'expected':<8}"
    for tool in tools:
        head += f"  {tool:<9} {'time_s':>7}"
    head += "  check"
    print(head)
    print("-" * len(head))
    records, flagged = [], []
    json_out = open(args.json, "w") if args.json else None
    try:
        with tempfile.TemporaryDirectory(prefix="hybridver_compare_") as tmp:
            work = Path(tmp)
            for inst in instances:
                timeout = min(inst.timeout_s, args.timeout_cap) if args.timeout_cap \
                    else inst.timeout_s
                onnx, vnnlib = existing_file(root / inst.onnx), existing_file(root / inst.vnnlib)
                exp = expected.get((strip_gz(inst.onnx), strip_gz(inst.vnnlib)))
                runs: dict[str, ToolRun] = {}
                for tool in tools:  # one after the other, never in parallel
                    if tool == "hybridver":
                        runs[tool] = run_hybridver(onnx, vnnlib, timeout, args.grace, env,
                                                   work, args.mode, args.backend)
                    else:
                        runs[tool] = run_marabou(marabou, onnx, vnnlib, timeout, args.grace,
                                                 env, work)
                verdict = check(runs, exp)
                line = f"{short_name(inst):<{name_w}}  {timeout:>7g}  {exp or '-':<8}"
                for tool in tools:
                    r = runs[tool]
                    word = r.verdict + ("!" if r.killed else "")
                    line += f"  {word:<9} {r.time_s:>7.2f}"
                line += f"  {verdict}"
                if verdict.startswith(("WRONG", "DISAGREE")):
                    line += "   <<<<<<<<"
                    flagged.append((short_name(inst), verdict, exp, runs))
                print(line, flush=True)
                record = {"onnx": inst.onnx, "vnnlib": inst.vnnlib, "timeout_s": timeout,
                          "expected": exp, "check": verdict,
                          **{tool: dataclasses.asdict(r) for tool, r in runs.items()}}
                records.append(record)
                if json_out:
                    json_out.write(json.dumps(record) + "\n")
                    json_out.flush()
    finally:
        if json_out:
            json_out.close()

    print()
    print(f"{'tool':<10} {'solved':>7} {'sat':>4} {'unsat':>6} {'timeout':>8} {'other':>6} "
          f"{'wrong':>6} {'total_s':>8}")
    for tool in tools:
        verdicts = [rec[tool]["verdict"] for rec in records]
        wrong = sum(judge(rec[tool]["verdict"], rec["expected"]) == "WRONG" for rec in records)
        sat, unsat = verdicts.count("sat"), verdicts.count("unsat")
        timeouts = verdicts.count("timeout")
        total = sum(rec[tool]["time_s"] for rec in records)
        print(f"{tool:<10} {sat + unsat:>4}/{len(records):<2} {sat:>4} {unsat:>6} "
              f"{timeouts:>8} {len(records) - sat - unsat - timeouts:>6} {wrong:>6} "
              f"{total:>8.1f}")
    print("(times: wall seconds per process, start-up included; '!' = killed after the "
          f"limit + {args.grace:g}s grace)")
    for rec in records:
        for tool in tools:
            if rec[tool]["verdict"] == "error":
                print(f"error: {tool} on {Path(rec['onnx']).name} {Path(rec['vnnlib']).name}: "
                      f"{rec[tool]['detail']}")
    if flagged:
        print(file=sys.stderr)
        print("!" * 72, file=sys.stderr)
        for name, verdict, exp, runs in flagged:
            said = ", ".join(f"{t} said {r.verdict}" for t, r in runs.items())
            print(f"!!! {verdict} on {name}: expected {exp or 'unknown'}; {said}",
                  file=sys.stderr)
        print("!" * 72, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
