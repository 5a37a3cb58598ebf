"""``hybridver verify``: verdict word as the last stdout line, results file, JSON report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hybridver import __version__
from hybridver.config import Mode, VerifyConfig
from hybridver.result import Verdict, format_results_file


def run_verify(args: argparse.Namespace) -> int:
    from hybridver.api import verify_files

    config = VerifyConfig(timeout_s=args.timeout, mode=Mode(args.mode), backend=args.backend)
    result = verify_files(args.model, args.spec, config)
    if args.results_file:
        Path(args.results_file).write_text(format_results_file(result))
    if args.json:
        report = {"hybridver": __version__, "model": str(args.model), "spec": str(args.spec),
                  "mode": args.mode, "backend": args.backend if args.mode == "exact" else None,
                  "timeout_s": args.timeout, **result.to_json()}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    detail = f"{result.time_s:.2f}s"
    if result.message:
        detail += f"; {result.message}"
    if result.verdict is Verdict.SAT and result.counterexample is not None:
        detail += (f"; counterexample confirmed by {result.counterexample.checked_by} "
                   f"(margin {result.counterexample.margin:.3g})")
    print(f"{Path(args.model).name} {Path(args.spec).name}: {detail}", file=sys.stderr)
    print(result.verdict.value)
    return 0
