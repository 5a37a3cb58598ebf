"""``hybridver run-instances``: run a VNN-COMP ``instances.csv``, compare with expected answers.

The CSV has rows ``onnx, vnnlib, timeout`` (no header) with paths relative to ``--root``
(default: the CSV's folder).  Files named without ``.gz`` are read from ``.gz`` copies when
only those exist.  An ``expected_results.csv`` beside the CSV (header ``onnx, vnnlib, ...,
expected``) adds the known answer and flags every contradicting verdict as WRONG.

Output: the table on stdout, one row per instance as it finishes; with ``--progress`` on
(default ``auto``: when stderr is a terminal) a live line on stderr names the running
instance and its phase, and disappears before the instance's row is printed.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from hybridver.errors import HybridverInputError
from hybridver.progress import make_progress
from hybridver.specs.instances import (Instance, read_expected, read_instances,  # noqa: F401
                                       strip_gz as _strip_gz)


def judge(verdict: str, expected: str | None) -> str:
    """'ok' when it matches, 'WRONG' when a definite verdict contradicts, else '-'."""
    if expected not in ("sat", "unsat") or verdict not in ("sat", "unsat"):
        return "-"
    return "ok" if verdict == expected else "WRONG"


def run_instances(args: argparse.Namespace) -> int:
    from hybridver.api import verify_files
    from hybridver.commands.settings import (apply_process_settings, config_from_args,
                                             spec_warnings)

    csv_path = Path(args.csv)
    instances = read_instances(csv_path)
    if args.limit:
        instances = instances[: args.limit]
    root = Path(args.root) if args.root else csv_path.parent
    expected = read_expected(csv_path.parent / "expected_results.csv")
    apply_process_settings(config_from_args(args, 1.0))
    rows = []
    header = f"{'instance':<60} {'verdict':<8} {'expected':<8} {'time_s':>8}  check"
    print(header)
    for number, inst in enumerate(instances, start=1):
        timeout = min(inst.timeout_s, args.timeout_cap) if args.timeout_cap else inst.timeout_s
        name = f"{Path(inst.onnx).name} {Path(inst.vnnlib).name}"
        t0 = time.monotonic()
        message = ""
        # a live line while the instance runs (terminal only by default); it is gone
        # before the instance's row is printed
        with make_progress(getattr(args, "progress", "auto"),
                           label=f"[{number}/{len(instances)}] {name}") as progress:
            try:
                with spec_warnings(getattr(args, "strict", False)):
                    result = verify_files(root / inst.onnx, root / inst.vnnlib,  # .gz found there
                                          config_from_args(args, timeout), progress=progress)
                verdict, message = result.verdict.value, result.message
            except HybridverInputError as exc:
                verdict, message = "error", str(exc)
        elapsed = time.monotonic() - t0
        exp = expected.get((_strip_gz(inst.onnx), _strip_gz(inst.vnnlib)))
        check = judge(verdict, exp)
        print(f"{name:<60} {verdict:<8} {exp or '-':<8} {elapsed:>8.2f}  {check}", flush=True)
        if verdict == "error":
            print(f"  error: {message}", file=sys.stderr)
        rows.append({"onnx": inst.onnx, "vnnlib": inst.vnnlib, "timeout_s": timeout,
                     "verdict": verdict, "expected": exp or "", "time_s": f"{elapsed:.3f}",
                     "check": check, "message": message})
    with open(args.output, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["onnx"])
        writer.writeheader()
        writer.writerows(rows)
    solved = sum(r["verdict"] in ("sat", "unsat") for r in rows)
    wrong = sum(r["check"] == "WRONG" for r in rows)
    total = sum(float(r["time_s"]) for r in rows)
    print(f"solved {solved}/{len(rows)}, wrong {wrong}, total time {total:.1f}s "
          f"(results in {args.output})")
    return 0
