"""``hybridver crosscheck``: run verifiers on VNN-COMP instances and catch false claims.

Each (instance, tool) pair runs once (:func:`tools_run.run_tool`, ``settings.workers``
pairs at a time, or one Ray task per pair on ``settings.cluster``: the working folders
must then be on a file system every node sees); every ``sat`` counterexample is
re-checked on onnxruntime (:mod:`crosscheck_check`), and each finished pair is appended at once as one JSON line to
``REPORT_DIR/rows.jsonl``, so a killed run keeps what it finished and ``resume`` runs only
the rest.  At the end every row is judged against all the others, the planted witnesses
and the expected answers (:mod:`crosscheck_judge`), and ``report.json`` and
``report.html`` are written (:mod:`report_json`, :mod:`report_html`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import gzip
import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from hybridver.errors import HybridverInputError
from hybridver.progress import NullProgress, Progress
from hybridver.soundness.crosscheck_check import (CexCheck, InstanceChecker, instance_key,
                                                  read_witnesses)
from hybridver.soundness.crosscheck_judge import VIOLATIONS, judge, summarize
from hybridver.soundness.tools import Tool
from hybridver.soundness.tools_run import ToolAnswer, allow_runs, kill_running, run_tool
from hybridver.specs.instances import existing_file, read_expected, read_instances, strip_gz

__all__ = ["CrosscheckSettings", "run_crosscheck", "read_rows", "EXIT_VIOLATION",
           "EXIT_DISAGREEMENT"]

#: exit status when some row is FALSE_UNSAT or INVALID_SAT
EXIT_VIOLATION = 3
#: exit status when there is no violation but tools disagree on an open instance
EXIT_DISAGREEMENT = 4


@dataclasses.dataclass(frozen=True)
class CrosscheckSettings:
    """``workers``: (instance, tool) pairs run at once; ``grace_s``: seconds past an
    instance's limit before a tool's process group is killed; ``timeout_cap_s``: cap on
    each instance's limit; ``category``: the benchmark name passed to VNN-COMP scripts
    (default: the CSV's folder name); ``resume``: keep the rows of ``rows.jsonl`` and run
    only the missing pairs; ``plots``: draw the cactus and scatter plots (needs
    matplotlib); ``scatter``: the two tools of the scatter plot (default: the first two);
    ``cluster``: a Ray cluster's address (or ``auto``) to run the pairs on, one task per
    pair (``workers`` is then the cluster's CPUs)."""

    workers: int = 1
    grace_s: float = 10.0
    timeout_cap_s: float | None = None
    category: str = ""
    resume: bool = False
    plots: bool = True
    scatter: tuple[str, str] | None = None
    cluster: str | None = None


def read_rows(path: Path) -> list[dict]:
    """The rows of a ``rows.jsonl`` ([] when absent); a last line cut short by a kill is
    dropped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and {"onnx", "vnnlib", "tool", "verdict"} <= set(row):
            rows.append(row)
    return rows


class _Inputs:
    """Plain copies of ``.gz`` inputs for the tools (made once, in ``folder``)."""

    def __init__(self, folder: Path):
        self.folder, self._lock, self._made = folder, threading.Lock(), {}

    def plain(self, path: Path, index: int) -> Path:
        if path.suffix != ".gz":
            return path.resolve()
        with self._lock:
            if path not in self._made:
                folder = self.folder / str(index)  # the file keeps its own name
                folder.mkdir(parents=True, exist_ok=True)
                target = folder / path.name[:-3]
                with gzip.open(path, "rb") as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                self._made[path] = target.resolve()
            return self._made[path]


def _instances(csv_path: Path, root: Path, cap: float | None, witnesses_path: Path | None
               ) -> tuple[list[dict], list[tuple[Path, Path]], list[InstanceChecker]]:
    expected = read_expected(csv_path.parent / "expected_results.csv")
    witnesses = read_witnesses(witnesses_path) if witnesses_path else {}
    instances, files, checkers, seen = [], [], [], set()
    for inst in read_instances(csv_path):
        key = instance_key(inst.onnx, inst.vnnlib)
        if key in seen:
            continue
        seen.add(key)
        onnx, vnnlib = existing_file(root / inst.onnx), existing_file(root / inst.vnnlib)
        timeout = min(inst.timeout_s, cap) if cap else inst.timeout_s
        exp = expected.get((strip_gz(inst.onnx), strip_gz(inst.vnnlib)), "")
        checker = InstanceChecker(onnx, vnnlib)
        witness = None
        if key in witnesses:
            w = witnesses[key]
            check = checker.check(w.x, w.y, source="witness")
            witness = {**check.to_json(), "planted_margin": w.margin}
        instances.append({"index": len(instances), "onnx": key[0], "vnnlib": key[1],
                          "timeout_s": timeout, "csv_timeout_s": inst.timeout_s,
                          "expected": exp, "witness": witness})
        files.append((onnx, vnnlib))
        checkers.append(checker)
    return instances, files, checkers


def run_crosscheck(csv_path: Path, tools: list[Tool], report_dir: Path,
                   settings: CrosscheckSettings = CrosscheckSettings(),
                   witnesses_path: Path | None = None, root: Path | None = None,
                   progress: Progress | None = None,
                   on_row: Callable[[dict], None] | None = None) -> dict:
    """Run every tool on every instance of ``csv_path`` and write the report into
    ``report_dir``; returns the report (``report["exit_code"]``: 0, or
    :data:`EXIT_VIOLATION` / :data:`EXIT_DISAGREEMENT`).  ``on_row`` is called with each
    row as it finishes (in a worker thread, one at a time)."""
    from hybridver.soundness.report_json import build_report, write_report

    names = [t.name for t in tools]
    if len(set(names)) != len(names):
        raise HybridverInputError("two --tool entries have the same name")
    progress = NullProgress() if progress is None else progress
    root = root if root is not None else csv_path.parent
    report_dir = report_dir.resolve()  # tools run in folders of their own
    report_dir.mkdir(parents=True, exist_ok=True)
    progress.phase("checking witnesses" if witnesses_path else "reading instances")
    instances, files, checkers = _instances(csv_path, root, settings.timeout_cap_s,
                                            witnesses_path)
    category = settings.category or csv_path.resolve().parent.name
    rows_path = report_dir / "rows.jsonl"
    wanted = {(i["onnx"], i["vnnlib"], t) for i in instances for t in names}
    kept = [r for r in read_rows(rows_path) if (r["onnx"], r["vnnlib"], r["tool"]) in wanted
            ] if settings.resume else []
    done = {(r["onnx"], r["vnnlib"], r["tool"]) for r in kept}
    rows_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    pending = [(i, t) for i in instances for t in tools
               if (i["onnx"], i["vnnlib"], t.name) not in done]
    rows, lock, inputs = list(kept), threading.Lock(), _Inputs(report_dir / "inputs")
    total = len(pending)
    counter = {"done": 0}
    stopping = threading.Event()  # interrupted: runs cut short are not rows

    def prepare(inst: dict, tool: Tool) -> tuple:
        """The arguments of :func:`run_tool` for one pair (its folder made empty)."""
        k = inst["index"]
        work = report_dir / "runs" / f"{k}_{tool.name}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        onnx, vnnlib = files[k]
        if tool.kind != "results":
            onnx, vnnlib = inputs.plain(onnx, k), inputs.plain(vnnlib, k)
        return (tool, onnx, vnnlib, inst["timeout_s"], settings.grace_s, work, category,
                (inst["onnx"], inst["vnnlib"]))

    def record(inst: dict, tool: Tool, answer) -> None:
        k = inst["index"]
        cex = None
        if answer.verdict == "sat":
            cex = (CexCheck("unchecked", "recorded answer: no counterexample to check")
                   if tool.kind == "results" and answer.x is None
                   else checkers[k].check(answer.x, answer.y, tool.name))
        # a recorded answer ran under the instance's own limit, not the cap
        limit = inst["csv_timeout_s"] if tool.kind == "results" else inst["timeout_s"]
        row = {"onnx": inst["onnx"], "vnnlib": inst["vnnlib"], "tool": tool.name,
               "timeout_s": limit, "verdict": answer.verdict,
               "time_s": round(answer.time_s, 4), "prep_time_s": round(answer.prep_time_s, 4),
               "killed": answer.killed, "exit_code": answer.exit_code,
               "message": answer.message, "cex": None if cex is None else cex.to_json()}
        with lock:
            if stopping.is_set():
                return
            with rows_path.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            rows.append(row)
            counter["done"] += 1
            progress.update(runs=f"{counter['done']}/{total}")
            if on_row is not None:
                on_row(row)

    def one(inst: dict, tool: Tool) -> None:
        record(inst, tool, run_tool(*prepare(inst, tool)))

    allow_runs()
    progress.phase("running tools")
    progress.update(runs=f"0/{total}")
    if settings.cluster:
        _farm_pairs(settings, [(inst, tool, prepare(inst, tool)) for inst, tool in pending],
                    record, progress)
    else:
        _run_pairs(settings, pending, one, stopping)
    progress.phase("writing the report")
    order = {(i["onnx"], i["vnnlib"]): i["index"] for i in instances}
    rows.sort(key=lambda r: (order[(r["onnx"], r["vnnlib"])], names.index(r["tool"])))
    judged_instances, judged_rows = judge(instances, rows)
    summary = summarize(names, judged_rows)
    violations = sum(bool(set(r["flags"]) & set(VIOLATIONS)) for r in judged_rows)
    disagreements = sum("DISAGREEMENT" in r["flags"] for r in judged_rows)
    exit_code = (EXIT_VIOLATION if violations else EXIT_DISAGREEMENT if disagreements else 0)
    report = build_report(csv_path, tools, settings, judged_instances, judged_rows, summary,
                          exit_code, witnesses_path)
    write_report(report, report_dir, settings)
    return report


def _run_pairs(settings: CrosscheckSettings, pending: list, one, stopping) -> None:
    """The pairs on ``settings.workers`` threads of this process."""
    with concurrent.futures.ThreadPoolExecutor(max(1, settings.workers)) as pool:
        futures = [pool.submit(one, inst, tool) for inst, tool in pending]
        try:
            for future in concurrent.futures.as_completed(futures):
                future.result()
        except BaseException:
            stopping.set()
            for future in futures:
                future.cancel()
            kill_running()
            raise


def run_pair(arguments: tuple) -> ToolAnswer:
    """:func:`run_tool` on a cluster worker (module level: Ray sends it by reference)."""
    return run_tool(*arguments)


#: seconds past a tool's own kill (limit + grace) before its cluster task is killed
CLUSTER_GRACE_S = 30.0


def _farm_pairs(settings: CrosscheckSettings, jobs: list, record, progress: Progress) -> None:
    """One Ray task per pair on ``settings.cluster``; each answer is recorded here, as it
    comes (counterexamples are checked by this process)."""
    from hybridver.cluster.connect import connect
    from hybridver.cluster.farm import farm

    connect(settings.cluster)
    results = farm(run_pair, [arguments for *_, arguments in jobs],
                   lambda arguments: arguments[3] + arguments[4], grace_s=CLUSTER_GRACE_S,
                   on_load=lambda load: progress.update(cluster=load.describe()))
    for result in results:
        inst, tool, _ = jobs[result.index]
        answer = result.value if result.status == "done" else ToolAnswer(
            "timeout" if result.status == "timeout" else "error", result.wall_s,
            killed=result.status == "timeout", message=f"cluster: {result.message}")
        record(inst, tool, answer)
