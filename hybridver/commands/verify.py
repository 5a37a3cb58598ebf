"""``hybridver verify``: verdict word as the last stdout line, results file, JSON report.

The JSON report (``--json F``) is :meth:`VerificationResult.to_json` with the run's
settings in front.  Its schema is ``hybridver/schemas/report-v1.schema.json`` (shipped in
the package; :data:`REPORT_SCHEMA`); ``report_version`` changes only when a key changes
meaning::

    {"report_version": 1, "hybridver": "0.1.0", "model": ..., "spec": ...,
     "mode": "hybrid", "backend": null, "timeout_s": 300.0,
     "verdict": "unsat", "time_s": 1.23, "message": "",
     "phases": {"load": 0.05, "attack_sampling": 0.01, "bounds": 0.2, ...},
     "stats": {"confirmation": {"real_model_checks": 4, "confirmed": 0,
                                "unconfirmed_candidates": 0, "near_misses": 4},
               "bounds": {...}, "input_split": {...}, ...,
               "backends": {"highs": {"calls": 4, "time_s": 0.8,
                                      "outcomes": {"infeasible": 4}}},
               "scheduler": {...}},   # when exact back ends ran beside branch-and-bound
     "counterexample": null | {"x", "y", "case", "disjunct", "margin", "checked_by",
                               "source"},
     "unconfirmed_candidate": null | {"x", "predicted_y", "source"}}

``stats.confirmation`` counts the points run on the real model by what came of them:
``confirmed`` counterexamples; ``unconfirmed_candidates``, points predicted to violate
(on the IR, or a back end's solution) that the real model did not confirm; and
``near_misses``, the best points of a search checked although no violation was predicted
(on an ``unsat`` run every check is one of these: nothing was rejected).  The scheduler's
decision log (``stats.scheduler.decision_log``) is written only with ``--decision-log``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hybridver.version import __version__
from hybridver.commands.settings import (apply_process_settings, config_from_args,
                                         spec_warnings)
from hybridver.errors import HybridverInputError
from hybridver.progress import make_progress
from hybridver.result import Verdict, format_results_file

REPORT_VERSION = 1
#: the JSON schema of the report, inside the installed package
REPORT_SCHEMA = "schemas/report-v1.schema.json"
#: exit code of a run whose ``unsat`` an independent back end contradicted (``--crosscheck``)
SELF_CHECK_DISAGREEMENT = 3
#: seconds kept after the run for stopping worker processes and the interpreter's exit,
#: so that the whole process answers within ``--timeout``
EXIT_RESERVE_S = 0.5


def run_verify(args: argparse.Namespace) -> int:
    from hybridver.api import verify_files

    config = config_from_args(args)
    apply_process_settings(config)
    with spec_warnings(getattr(args, "strict", False)):
        with make_progress(getattr(args, "progress", "auto")) as progress:
            result = verify_files(args.model, args.spec, config, progress=progress,
                                  started=_started(args, config.timeout_s))
    if args.results_file:
        _write(args.results_file, format_results_file(result))
    if args.json:
        report = {"report_version": REPORT_VERSION, "hybridver": __version__,
                  "model": str(args.model), "spec": str(args.spec),
                  "mode": config.mode.value,
                  "backend": config.exact.backend if config.mode.value == "exact" else None,
                  "timeout_s": config.timeout_s, **result.to_json()}
        _write(args.json, json.dumps(report, indent=2, allow_nan=False) + "\n")
    detail = f"{result.time_s:.2f}s"
    if result.message:
        detail += f"; {result.message}"
    if result.verdict is Verdict.SAT and result.counterexample is not None:
        detail += (f"; counterexample confirmed by {result.counterexample.checked_by} "
                   f"(margin {result.counterexample.margin:.3g})")
    print(f"{Path(args.model).name} {Path(args.spec).name}: {detail}", file=sys.stderr)
    print(result.verdict.value)
    if result.stats.get("self_check", {}).get("status") == "disagrees":
        return SELF_CHECK_DISAGREEMENT
    return 0


def _started(args: argparse.Namespace, timeout_s: float) -> float | None:
    """When the time limit starts counting: the command's start, less the exit reserve
    (capped at a tenth of the limit)."""
    started = getattr(args, "started", None)
    if started is None:
        return None
    return started - min(EXIT_RESERVE_S, 0.1 * timeout_s)


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as exc:
        raise HybridverInputError(f"cannot write {path}: {exc.strerror}") from None
