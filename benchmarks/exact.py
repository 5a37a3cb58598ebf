"""Exact mode, time per instance per back end.

Usage:
  python benchmarks/exact.py [--backends highs ortools z3] [--cap 30]
                             [--nets 1_1 1_7 2_1 4_5] [--props 1 2 3 4] [--no-examples]
                             [--json rows.jsonl]
  python benchmarks/exact.py --table rows1.jsonl rows2.jsonl     # merge runs into one table

Instances: ACAS Xu properties ``--props`` on networks ``--nets`` (from
``../shared/benchmarks/acasxu``, skipped if absent) and the example networks in
``examples/`` (ReLU ones first; the sigmoid/tanh ones exercise the envelopes).  Each runs
``verify_exact`` with a cap of ``--cap`` seconds and the interval pre-check OFF, so every
disjunct reaches the back end (the LP bound tightening, shared by all back ends, is on and
its time is included and shown separately).  A verdict that contradicts the expected
answer is flagged ``WRONG``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ACAS = REPO.parent / "shared" / "benchmarks" / "acasxu"
EXAMPLES = REPO / "examples"


def instances(nets: list[str], props: list[int], examples: bool):
    """``(label, onnx path, vnnlib path, expected)``."""
    expected: dict[tuple[str, str], str] = {}
    if (ACAS / "expected_results.csv").exists():
        with open(ACAS / "expected_results.csv") as f:
            for row in csv.DictReader(f):
                expected[(row["onnx"], row["vnnlib"])] = row["expected"]
        for prop in props:
            for net in nets:
                onnx = f"ACASXU_run2a_{net}_batch_2000.onnx"
                vnnlib = f"prop_{prop}.vnnlib"
                if (ACAS / onnx).exists() and (ACAS / vnnlib).exists():
                    yield (f"acas {net} p{prop}", ACAS / onnx, ACAS / vnnlib,
                           expected.get((onnx, vnnlib), "?"))
    if examples:
        with open(EXAMPLES / "expected_results.csv") as f:
            rows = list(csv.DictReader(f))
        rows.sort(key=lambda r: ("relu" not in r["onnx"], r["onnx"], r["vnnlib"]))
        for row in rows:
            label = row["vnnlib"].replace(".vnnlib", "")
            yield (label, EXAMPLES / row["onnx"], EXAMPLES / row["vnnlib"], row["expected"])


def run(args: argparse.Namespace) -> list[dict]:
    from hybridver.api import load_model, load_spec
    from hybridver.backends.options import ExactConfig
    from hybridver.pipeline.exact import verify_exact

    rows = []
    out = open(args.json, "a") if args.json else None
    for label, onnx, vnnlib, expected in instances(args.nets, args.props, args.examples):
        model = load_model(onnx)
        spec = load_spec(vnnlib, model)
        for backend in args.backends:
            config = ExactConfig(backend=backend, interval_precheck=False)
            t0 = time.perf_counter()
            result = verify_exact(model, spec, config, timeout_s=args.cap)
            elapsed = time.perf_counter() - t0
            info = result.stats.get("exact", {})
            row = {"instance": label, "expected": expected, "backend": backend,
                   "verdict": result.verdict.value, "time_s": round(elapsed, 3),
                   "tighten_s": round(info.get("lp_tightening", {}).get("time_s", 0.0), 3),
                   "refinements": info.get("refinement_rounds", 0),
                   "wrong": result.verdict.value in ("sat", "unsat")
                   and expected in ("sat", "unsat") and result.verdict.value != expected}
            rows.append(row)
            print(f"{label:28s} {backend:8s} {row['verdict']:8s} {elapsed:8.2f}s "
                  f"(tighten {row['tighten_s']:.2f}s) expected {expected}"
                  + ("  WRONG" if row["wrong"] else ""), flush=True)
            if out:
                out.write(json.dumps(row) + "\n")
                out.flush()
    return rows


def table(rows: list[dict], cap: float | None = None) -> str:
    known = ["highs", "ortools", "z3"]
    backends = sorted({r["backend"] for r in rows},
                      key=lambda b: (known.index(b) if b in known else len(known), b))
    order: list[str] = []
    for r in rows:
        if r["instance"] not in order:
            order.append(r["instance"])
    cell = {(r["instance"], r["backend"]): r for r in rows}
    head = f"{'instance':28s} {'expected':8s} {'tighten_s':>9s} " + " ".join(
        f"{b:>18s}" for b in backends) + "  fastest"
    lines = [head, "-" * len(head)]
    for inst in order:
        cells, fastest, best = [], "-", None
        tight = max((cell[(inst, b)]["tighten_s"] for b in backends if (inst, b) in cell),
                    default=0.0)
        expected = next(cell[(inst, b)]["expected"] for b in backends if (inst, b) in cell)
        for b in backends:
            r = cell.get((inst, b))
            if r is None:
                cells.append(f"{'':>18s}")
                continue
            text = f"{r['verdict']} {r['time_s']:.2f}" + ("!" if r["wrong"] else "")
            cells.append(f"{text:>18s}")
            if r["verdict"] in ("sat", "unsat") and not r["wrong"] and (
                    best is None or r["time_s"] < best):
                best, fastest = r["time_s"], b
        lines.append(f"{inst:28s} {expected:8s} {tight:9.2f} " + " ".join(cells) +
                     f"  {fastest}")
    solved = {b: sum(1 for r in rows if r["backend"] == b and r["verdict"] in ("sat", "unsat")
                     and not r["wrong"]) for b in backends}
    total = {b: sum(r["time_s"] for r in rows if r["backend"] == b) for b in backends}
    lines.append("-" * len(head))
    lines.append(f"{'solved / total time':47s} " + " ".join(
        f"{f'{solved[b]} / {total[b]:.0f}s':>18s}" for b in backends))
    if any(r["wrong"] for r in rows):
        lines.append("WRONG VERDICTS: " + ", ".join(
            f"{r['instance']} ({r['backend']})" for r in rows if r["wrong"]))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["highs", "ortools", "z3"])
    parser.add_argument("--cap", type=float, default=30.0, help="seconds per instance")
    parser.add_argument("--nets", nargs="+", default=["1_1", "1_7", "2_1", "4_5"])
    parser.add_argument("--props", nargs="+", type=int, default=[1, 2, 3, 4])
    parser.add_argument("--no-examples", dest="examples", action="store_false")
    parser.add_argument("--json", help="append one JSON line per run to this file")
    parser.add_argument("--table", nargs="+", metavar="JSONL",
                        help="only print the table of earlier --json runs")
    args = parser.parse_args()
    if args.table:
        rows = [json.loads(line) for path in args.table for line in open(path) if line.strip()]
    else:
        rows = run(args)
    print()
    print(table(rows))
    return 1 if any(r["wrong"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
