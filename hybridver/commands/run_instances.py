"""``hybridver run-instances``: run a VNN-COMP ``instances.csv``, compare with expected answers.

The CSV has rows ``onnx, vnnlib, timeout`` (no header) with paths relative to ``--root``
(default: the CSV's folder).  Files named without ``.gz`` are read from ``.gz`` copies when
only those exist.  An ``expected_results.csv`` beside the CSV (header ``onnx, vnnlib, ...,
expected``) adds the known answer and flags every contradicting verdict as WRONG.

Output: the table on stdout, one row per instance as it finishes, and the same rows in
``--output``, each written (and flushed to disk) as it finishes, so a killed run keeps
them; ``--resume`` keeps the rows already in ``--output`` and runs only the other
instances.  With ``--progress`` on (default ``auto``: when stderr is a terminal) a live line
on stderr names the running instance and its phase, and disappears before the instance's
row is printed.  With ``--cluster ADDRESS|auto`` the instances run as Ray tasks, one per
instance with its own time limit (:mod:`hybridver.cluster.farm`), and the live line shows
the cluster's workers.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from hybridver.errors import HybridverInputError
from hybridver.progress import make_progress
from hybridver.specs.instances import (Instance, read_expected, read_instances,  # noqa: F401
                                       strip_gz as _strip_gz)

FIELDS = ["onnx", "vnnlib", "timeout_s", "verdict", "expected", "time_s", "check", "message"]
#: seconds past an instance's time limit before its cluster task is killed (loading the
#: model and the final checks are not inside the limit)
CLUSTER_GRACE_S = 30.0


def judge(verdict: str, expected: str | None) -> str:
    """'ok' when it matches, 'WRONG' when a definite verdict contradicts, else '-'."""
    if expected not in ("sat", "unsat") or verdict not in ("sat", "unsat"):
        return "-"
    return "ok" if verdict == expected else "WRONG"


def read_rows(path: Path) -> list[dict]:
    """The finished rows of an output CSV ([] when absent); a last row cut short by a kill
    (no line end, or missing cells) is dropped."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = list(csv.DictReader(text.splitlines()))
    return [r for r in rows if all(r.get(f) is not None for f in FIELDS)
            and r["verdict"] and r["check"] in ("ok", "WRONG", "-")]


class RowWriter:
    """The output CSV, one row appended (and flushed to disk) at a time; starts with the
    header and ``kept`` rows."""

    def __init__(self, path: Path, kept: list[dict]):
        self.path = path
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows({f: r[f] for f in FIELDS} for r in kept)

    def append(self, row: dict) -> None:
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, fieldnames=FIELDS).writerow(row)
            handle.flush()
            os.fsync(handle.fileno())


def verify_instance(task: dict) -> tuple[str, str, float]:
    """``(verdict, message, seconds)`` of one instance; ``task``: ``onnx``, ``vnnlib``
    (paths), ``config`` (its :class:`~hybridver.config.VerifyConfig`), ``strict``.  Runs
    in a cluster worker (module level: Ray sends it by reference)."""
    from hybridver.api import verify_files
    from hybridver.commands.settings import apply_process_settings, spec_warnings

    t0 = time.monotonic()
    try:
        apply_process_settings(task["config"])
        with spec_warnings(task["strict"]):
            result = verify_files(task["onnx"], task["vnnlib"], task["config"])
        return result.verdict.value, result.message, time.monotonic() - t0
    except HybridverInputError as exc:
        return "error", str(exc), time.monotonic() - t0


def run_instances(args: argparse.Namespace) -> int:
    from hybridver.commands.settings import apply_process_settings, config_from_args

    csv_path = Path(args.csv)
    instances = read_instances(csv_path)
    if args.limit:
        instances = instances[: args.limit]
    root = Path(args.root) if args.root else csv_path.parent
    expected = read_expected(csv_path.parent / "expected_results.csv")
    base = config_from_args(args, 1.0)
    apply_process_settings(base)
    output = Path(args.output)
    wanted = {(i.onnx, i.vnnlib) for i in instances}
    kept = [r for r in read_rows(output) if (r["onnx"], r["vnnlib"]) in wanted] \
        if getattr(args, "resume", False) else []
    done = {(r["onnx"], r["vnnlib"]) for r in kept}
    todo = [(n, inst) for n, inst in enumerate(instances, start=1)
            if (inst.onnx, inst.vnnlib) not in done]
    writer = RowWriter(output, kept)
    rows = list(kept)
    print(f"{'instance':<60} {'verdict':<8} {'expected':<8} {'time_s':>8}  check")
    if kept:
        print(f"(resumed: {len(kept)} finished rows kept from {output})")
    run = _farmed if base.cluster.address else _local
    for inst, timeout, verdict, message, elapsed in run(args, todo, len(instances), root):
        name = f"{Path(inst.onnx).name} {Path(inst.vnnlib).name}"
        exp = expected.get((_strip_gz(inst.onnx), _strip_gz(inst.vnnlib)))
        check = judge(verdict, exp)
        print(f"{name:<60} {verdict:<8} {exp or '-':<8} {elapsed:>8.2f}  {check}", flush=True)
        if verdict == "error":
            print(f"  error: {message}", file=sys.stderr)
        row = {"onnx": inst.onnx, "vnnlib": inst.vnnlib, "timeout_s": timeout,
               "verdict": verdict, "expected": exp or "", "time_s": f"{elapsed:.3f}",
               "check": check, "message": " ".join(str(message).split())}
        writer.append(row)
        rows.append(row)
    solved = sum(r["verdict"] in ("sat", "unsat") for r in rows)
    wrong = sum(r["check"] == "WRONG" for r in rows)
    total = sum(float(r["time_s"]) for r in rows)
    print(f"solved {solved}/{len(rows)}, wrong {wrong}, total time {total:.1f}s "
          f"(results in {args.output})")
    return 0


def _timeout(args: argparse.Namespace, inst: Instance) -> float:
    return min(inst.timeout_s, args.timeout_cap) if args.timeout_cap else inst.timeout_s


def _local(args: argparse.Namespace, todo: list[tuple[int, Instance]], total: int,
           root: Path) -> Iterator[tuple[Instance, float, str, str, float]]:
    """One instance after the other in this process."""
    from hybridver.api import verify_files
    from hybridver.commands.settings import config_from_args, spec_warnings

    for number, inst in todo:
        timeout = _timeout(args, inst)
        name = f"{Path(inst.onnx).name} {Path(inst.vnnlib).name}"
        t0 = time.monotonic()
        message = ""
        # a live line while the instance runs (terminal only by default); it is gone
        # before the instance's row is printed
        with make_progress(getattr(args, "progress", "auto"),
                           label=f"[{number}/{total}] {name}") as progress:
            try:
                with spec_warnings(getattr(args, "strict", False)):
                    result = verify_files(root / inst.onnx, root / inst.vnnlib,  # .gz found there
                                          config_from_args(args, timeout), progress=progress)
                verdict, message = result.verdict.value, result.message
            except HybridverInputError as exc:
                verdict, message = "error", str(exc)
        yield inst, timeout, verdict, message, time.monotonic() - t0


def _farmed(args: argparse.Namespace, todo: list[tuple[int, Instance]], total: int,
            root: Path) -> Iterator[tuple[Instance, float, str, str, float]]:
    """Every instance as a Ray task (its verification on one worker, with no cluster of
    its own: farming the instances is the parallelism)."""
    from hybridver.cluster.connect import connect
    from hybridver.cluster.farm import farm
    from hybridver.commands.settings import config_from_args

    tasks = []
    for _, inst in todo:
        config = config_from_args(args, _timeout(args, inst))
        config = dataclasses.replace(config, cluster=dataclasses.replace(config.cluster,
                                                                         address=None))
        tasks.append({"onnx": (root / inst.onnx).resolve(),
                      "vnnlib": (root / inst.vnnlib).resolve(), "config": config,
                      "strict": getattr(args, "strict", False), "instance": inst})
    base = config_from_args(args, 1.0).cluster
    info = connect(base.address, base.ship_code)
    finished = total - len(todo)
    with make_progress(getattr(args, "progress", "auto"), label="run-instances") as progress:
        progress.phase(f"on {info.address}")

        def show(load) -> None:
            progress.update(cluster=load.describe(),
                            instances=f"{finished + load.done}/{total}")

        for result in farm(verify_instance, tasks, lambda t: t["config"].timeout_s,
                           grace_s=CLUSTER_GRACE_S, on_load=show):
            inst = result.item["instance"]
            if result.status == "done":
                verdict, message, elapsed = result.value
            else:
                verdict, message, elapsed = result.status, result.message, result.wall_s
            yield inst, result.item["config"].timeout_s, verdict, message, elapsed
