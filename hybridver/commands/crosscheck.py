"""``hybridver crosscheck INSTANCES.csv --tool NAME=KIND:ARG ... --report DIR``: run
verifiers on VNN-COMP instances, re-check their answers on onnxruntime, and report every
false claim (:mod:`hybridver.soundness.crosscheck`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hybridver.commands.settings import positive_float, positive_int
from hybridver.progress import MODES as PROGRESS_MODES

_EPILOG = """\
tool kinds:
  hybridver:MODE[:BACKEND]  this hybridver, e.g. hybridver:hybrid, hybridver:exact:highs,
                            hybridver:exact:z3, hybridver:exact:ortools
  marabou:[PATH]            Marabou's command line (pip install maraboupy)
  vnncomp:DIR               a VNN-COMP tool folder (prepare_instance.sh, run_instance.sh)
  cmd:TEMPLATE              a shell command with {onnx} {vnnlib} {results} {timeout}
                            {category}; it writes a VNN-COMP results file to {results}
  results:CSV[,CEDIR]       answers recorded in a VNN-COMP results CSV (nothing runs);
                            a sat is checked with ONNX_VNNLIB.counterexample[.gz] from
                            CEDIR (default: the CSV's folder) when there is one

flags per row: FALSE_UNSAT (unsat where a counterexample exists: a planted witness, a
confirmed counterexample of any tool, or expected sat), INVALID_SAT (sat without a valid
counterexample), DISAGREEMENT (sat against unsat, neither settled), OVER_TIME (answer
after the limit).

exit status: 0 no violation; 3 some FALSE_UNSAT or INVALID_SAT; 4 no violation but an
open DISAGREEMENT; 2 bad input; 1 internal error.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``crosscheck`` on an argparse sub-parser collection."""
    parser = subparsers.add_parser(
        "crosscheck", help="run verifiers on instances and catch false claims",
        description="Run each tool on each instance of a VNN-COMP instances.csv, re-check "
                    "every sat counterexample on onnxruntime, and report every false "
                    "claim (report.json and one self-contained report.html).",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", metavar="INSTANCES.csv",
                        help="rows onnx,vnnlib,timeout; an expected_results.csv beside it "
                             "gives known answers")
    parser.add_argument("--tool", action="append", required=True, metavar="NAME=KIND:ARG",
                        help="a tool to run (repeat); kinds below")
    parser.add_argument("--report", required=True, metavar="DIR",
                        help="folder of rows.jsonl, report.json, report.html")
    parser.add_argument("--witnesses", metavar="FILE",
                        help="planted witnesses (hybridver-witnesses/1, from hybridver "
                             "plant), re-checked before they are trusted")
    parser.add_argument("--root", metavar="DIR",
                        help="folder the CSV's paths are relative to (default: its own)")
    parser.add_argument("--workers", type=positive_int, default=1, metavar="N",
                        help="(instance, tool) pairs run at once (default: 1)")
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="run the pairs as Ray tasks on a cluster: HOST:PORT of its head "
                             "or auto (needs the [ray] extra; --report on a file system "
                             "every node sees)")
    parser.add_argument("--timeout-cap", type=positive_float, metavar="S",
                        help="cap each instance's time limit at S seconds")
    parser.add_argument("--grace", type=positive_float, default=10.0, metavar="S",
                        help="seconds past the limit before a tool's process tree is "
                             "killed (default: 10.0)")
    parser.add_argument("--category", metavar="NAME",
                        help="benchmark name given to VNN-COMP scripts (default: the CSV's "
                             "folder name)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the finished rows of DIR/rows.jsonl and run only the "
                             "missing pairs (without it, rows.jsonl starts empty)")
    parser.add_argument("--scatter", metavar="A,B",
                        help="the two tools of the time scatter plot (default: the first "
                             "two)")
    parser.add_argument("--no-plots", action="store_true",
                        help="no plots in the page (they need pip install "
                             "'hybridver[plots]')")
    parser.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                        help="live progress line on stderr: auto (when stderr is a "
                             "terminal), on, off (default: auto)")
    return parser


def _print_row(row: dict) -> None:
    name = f"{Path(row['onnx']).name} {Path(row['vnnlib']).name}"
    cex = f"  cex {row['cex']['status']}" if row.get("cex") else ""
    print(f"{row['tool']:<14} {name:<56} {row['verdict']:<8} {row['time_s']:>8.2f}{cex}",
          flush=True)


def run_crosscheck_command(args: argparse.Namespace) -> int:
    from hybridver.errors import HybridverInputError
    from hybridver.progress import make_progress
    from hybridver.soundness.crosscheck import CrosscheckSettings, run_crosscheck
    from hybridver.soundness.tools import parse_tool

    tools = [parse_tool(text) for text in args.tool]
    scatter = None
    if args.scatter:
        scatter = tuple(part.strip() for part in args.scatter.split(","))
        if len(scatter) != 2 or not set(scatter) <= {t.name for t in tools}:
            raise HybridverInputError("--scatter: expected two tool names A,B of --tool")
    if args.witnesses and not Path(args.witnesses).is_file():
        raise HybridverInputError(f"file not found: {args.witnesses}")
    settings = CrosscheckSettings(workers=args.workers, grace_s=args.grace,
                                  timeout_cap_s=args.timeout_cap, category=args.category or "",
                                  resume=args.resume, plots=not args.no_plots,
                                  scatter=scatter, cluster=args.cluster)
    report_dir = Path(args.report)
    with make_progress(args.progress, label="crosscheck") as progress:
        report = run_crosscheck(Path(args.csv), tools, report_dir, settings,
                                Path(args.witnesses) if args.witnesses else None,
                                Path(args.root) if args.root else None, progress, _print_row)
    print(f"{'tool':<14} {'solved':>6} {'wrong':>5} {'time_s':>9}  flags")
    for tool in tools:
        s = report["summary"][tool.name]
        flags = ", ".join(f"{k} {v}" for k, v in s["flags"].items() if v) or "-"
        print(f"{tool.name:<14} {s['solved']:>6} {s['wrong']:>5} {s['time_total_s']:>9.1f}  "
              f"{flags}")
    for row in report["rows"]:
        if row["flags"]:
            print(f"  {row['tool']}: {Path(row['onnx']).name} {Path(row['vnnlib']).name}: "
                  f"{', '.join(row['flags'])}", file=sys.stderr)
    print(f"violations {report['violations']}, disagreements {report['disagreements']} "
          f"(report in {report_dir / 'report.html'})")
    return report["exit_code"]
