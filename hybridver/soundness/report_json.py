"""``report.json`` of ``hybridver crosscheck`` (schema:
``hybridver/schemas/crosscheck-v1.schema.json``, shipped in the package)::

    {"format": "hybridver-crosscheck/1",
     "instances_csv": path, "witnesses": path or null, "category": name,
     "settings": {"workers", "grace_s", "timeout_cap_s", "resume"},
     "tools": [{"name", "kind", "command"}],
     "instances": [{"index", "onnx", "vnnlib", "timeout_s", "csv_timeout_s", "expected",
                    "witness": null or {"status", "reason", "margin", "input_excess",
                                        "y_rel_error", "planted_margin"},
                    "has_counterexample", "settled", "evidence": [...]}],
     "rows": [{"onnx", "vnnlib", "tool", "timeout_s", "verdict", "time_s", "prep_time_s",
               "killed", "exit_code", "message",
               "cex": null or {"status", "reason", "margin", "input_excess", "y_rel_error"},
               "flags": [...], "solved"}],
     "summary": {tool: {"runs", "solved", "wrong", "verdicts": {...}, "flags": {...},
                        "time_solved_s", "time_total_s"}},
     "violations": n, "disagreements": n, "exit_code": 0 | 3 | 4}

``verdict``: sat / unsat / timeout / unknown / error; ``cex.status``: confirmed /
tolerance / invalid / unchecked (:mod:`crosscheck_check`); ``flags``: FALSE_UNSAT,
INVALID_SAT, DISAGREEMENT, OVER_TIME (:mod:`crosscheck_judge`); ``margin``: ``max(C y +
d)`` of the violated disjunct on onnxruntime (<= 0 violates; null for -inf); an
instance's ``timeout_s`` is its CSV limit after ``--timeout-cap`` (``csv_timeout_s``
before), and a row's is the limit it ran under (a recorded answer's: the CSV's).  Rows are
in instance order, then tool order.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hybridver.soundness.crosscheck_judge import VIOLATIONS

__all__ = ["FORMAT", "SCHEMA", "build_report", "write_report"]

FORMAT = "hybridver-crosscheck/1"
#: the schema, relative to the package folder
SCHEMA = "schemas/crosscheck-v1.schema.json"


def _strict(value: Any) -> Any:
    """Non-finite floats as null (strict JSON)."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def build_report(csv_path: Path, tools, settings, instances: list[dict], rows: list[dict],
                 summary: dict, exit_code: int, witnesses_path: Path | None) -> dict:
    return _strict({
        "format": FORMAT,
        "instances_csv": str(csv_path),
        "witnesses": None if witnesses_path is None else str(witnesses_path),
        "category": settings.category or Path(csv_path).resolve().parent.name,
        "settings": {"workers": settings.workers, "grace_s": settings.grace_s,
                     "timeout_cap_s": settings.timeout_cap_s, "resume": settings.resume},
        "tools": [{"name": t.name, "kind": t.kind, "command": t.text} for t in tools],
        "instances": instances,
        "rows": rows,
        "summary": summary,
        "violations": sum(bool(set(VIOLATIONS) & set(r["flags"])) for r in rows),
        "disagreements": sum("DISAGREEMENT" in r["flags"] for r in rows),
        "exit_code": exit_code,
    })


def write_report(report: dict, folder: Path, settings) -> None:
    """``report.json`` and ``report.html`` into ``folder``."""
    from hybridver.soundness.report_html import render_html

    (folder / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (folder / "report.html").write_text(render_html(report, plots=settings.plots,
                                                    scatter=settings.scatter))
