"""Differential fuzzing of hybridver for a time budget (the fast seeds run in the suite:
``tests/fuzz/``).

Usage:
  python benchmarks/fuzz.py [--minutes M] [--seed S] [--only import,backends,bounds]
                            [--out DIR] [--timeout T] [--replay FUZZER:SEED:INDEX]

Three fuzzers (``tests/fuzz/cases.py``):

* ``import``: random ONNX graphs of 1-3 ops (conv, pooling, resize, shape ops, casts,
  elementwise, Dropout, MatMul/Gemm, BatchNormalization), the IR against onnxruntime;
* ``backends``: random small piecewise-linear networks with planted ``sat``/``unsat``
  specs, every exact back end and hybrid mode (``--timeout`` seconds per verify call);
* ``bounds``: random small networks with smooth and piecewise-linear ops, every bound
  method in float32 and float64 against sampled outputs.

The ``--minutes`` budget is split evenly over the selected fuzzers, run one after the
other; case ``i`` of a fuzzer is drawn from ``default_rng([S, i])``.  Each disagreement
or crash is written to ``DIR/FUZZER-S-i/`` (``model.onnx``, ``case.json``: seed, index,
finding, drawn configuration) and can be rerun alone with ``--replay FUZZER:S:i``.  The
summary (printed, and written to ``DIR/summary.md``) is a Markdown table (cases,
agreements, clean refusals, undecided, invalid generated cases, disagreements with how
many are known gaps, crashes, seconds), counts per op and per back-end verdict, and the
findings grouped by known gap or message, each with its count and first reproducer.  Exit status 1 when any disagreement outside the known gaps, or any
crash, was found.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz.cases import FUZZERS, run_case  # noqa: E402
from tests.fuzz.oracles import BAD, Finding  # noqa: E402

COLUMNS = ("cases", "agree", "refused", "undecided", "invalid", "disagree", "crash")


def _write_reproducer(out: Path, fuzzer: str, seed: int, index: int, result) -> Path:
    folder = out / f"{fuzzer}-{seed}-{index}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(result.model)
    (folder / "case.json").write_text(json.dumps({
        "fuzzer": fuzzer, "seed": seed, "index": index, "kind": result.finding.kind,
        "known_gap": result.known, "detail": result.finding.detail, "label": result.label,
        "spec": result.spec,
        "replay": f"python benchmarks/fuzz.py --replay {fuzzer}:{seed}:{index}"},
        indent=1, default=str) + "\n")
    return folder


def run_fuzzer(fuzzer: str, seconds: float, seed: int, out: Path, timeout: float,
               log=print) -> tuple[collections.Counter, dict]:
    """Cases of ``fuzzer`` until ``seconds`` have passed (at least one case).  Returns the
    counts (also per op: ``"op:LABEL:KIND"``) and the findings grouped by known gap (or,
    outside them, by label and message), each group ``[count, first line]``.  Reproducers:
    every finding outside the known gaps, the first 3 of each known gap."""
    counts: collections.Counter = collections.Counter()
    groups: dict[str, list] = {}
    start, index = time.monotonic(), 0
    while index == 0 or time.monotonic() - start < seconds:
        try:
            result = run_case(fuzzer, seed, index, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - a bug of the fuzzer itself, counted apart
            result = None
            counts["invalid"] += 1
            key = f"fuzzer error {type(exc).__name__}"
            groups.setdefault(key, [0, f"{fuzzer} {seed}:{index} {key}: {exc}"])[0] += 1
        if result is not None:
            kind = result.finding.kind
            counts[kind] += 1
            counts[f"op:{result.label.split(' ')[0].split('+')[0]}:{kind}"] += 1
            for name, verdict in re.findall(r"(\w+):(sat|unsat|unknown|timeout|refused|crash)",
                                            result.finding.detail.split(";")[1]
                                            if fuzzer == "backends" and ";" in
                                            result.finding.detail else ""):
                counts[f"verdict:{name}:{verdict}"] += 1
            if result.label.endswith(("(sat)", "(unsat)")):
                counts[f"planted {result.label.rsplit('(', 1)[1][:-1]}"] += 1
            if kind in BAD:
                counts["known"] += bool(result.known)
                key = (f"known: {result.known}" if result.known
                       else f"{kind} {result.label}: {result.finding.detail[:60]}")
                group = groups.setdefault(key, [0, ""])
                group[0] += 1
                if not result.known or group[0] <= 3:
                    where = _write_reproducer(out, fuzzer, seed, index, result)
                    line = (f"{fuzzer} {seed}:{index} {kind} {result.label}: "
                            f"{result.finding.detail[:300]} -> {where}")
                    group[1] = group[1] or line
                    if not result.known:
                        log(line)
        counts["cases"] += 1
        index += 1
    counts["seconds"] = round(time.monotonic() - start)
    return counts, groups


def table(rows: dict[str, collections.Counter]) -> str:
    """The Markdown summary table."""
    lines = ["| fuzzer | " + " | ".join(COLUMNS) + " | seconds |",
             "|---" * (len(COLUMNS) + 2) + "|"]
    for fuzzer, c in rows.items():
        cells = [str(c[col]) for col in COLUMNS]
        cells[COLUMNS.index("disagree")] = f"{c['disagree']} ({c['known']} known)"
        lines.append(f"| {fuzzer} | " + " | ".join(cells) + f" | {c['seconds']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0,
                        help="total budget, split evenly over the fuzzers (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=",".join(FUZZERS),
                        help=f"comma-separated subset of {','.join(FUZZERS)}")
    parser.add_argument("--out", default="fuzz-findings", help="reproducer folder")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds per verify call of the backends fuzzer (default 10)")
    parser.add_argument("--replay", metavar="FUZZER:SEED:INDEX",
                        help="rerun one case and print its finding")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.replay:
        fuzzer, seed, index = args.replay.split(":")
        result = run_case(fuzzer, int(seed), int(index), timeout=args.timeout)
        print(json.dumps({"kind": result.finding.kind, "detail": result.finding.detail,
                          "known_gap": result.known, "label": result.label,
                          "spec": result.spec}, indent=1, default=str))
        return int(result.finding.kind in BAD and not result.known)
    selected = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = [f for f in selected if f not in FUZZERS]
    if unknown or not selected:
        parser.error(f"--only: unknown fuzzer(s) {unknown} (known: {', '.join(FUZZERS)})")
    share = args.minutes * 60.0 / len(selected)
    rows, findings = {}, {}
    for fuzzer in selected:
        print(f"{fuzzer}: {share:.0f} s, seed {args.seed}", file=sys.stderr, flush=True)
        rows[fuzzer], groups = run_fuzzer(fuzzer, share, args.seed, Path(args.out),
                                          args.timeout,
                                          log=lambda s: print(s, file=sys.stderr, flush=True))
        findings.update({f"{fuzzer} {key}": value for key, value in groups.items()})
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text)
        lines.append(text)

    say(f"Fuzzing, seed {args.seed}, {args.minutes:g} min "
        f"({time.strftime('%Y-%m-%d', time.gmtime())}):\n")
    say(table(rows))
    for fuzzer, c in rows.items():
        ops = sorted({key.split(":")[1] for key in c if key.startswith("op:")})
        say(f"\n{fuzzer} by first op / activations (cases: " + ", ".join(
            f"{op} {sum(v for k, v in c.items() if k.startswith(f'op:{op}:'))}"
            + "".join(f" {kind} {c[f'op:{op}:{kind}']}" for kind in ("refused", "disagree",
                                                                      "crash")
                      if c[f"op:{op}:{kind}"])
            for op in ops) + ")")
        names = sorted({key.split(":")[1] for key in c if key.startswith("verdict:")})
        for name in names:
            say(f"{fuzzer} {name}: " + ", ".join(
                f"{key.split(':')[2]} {c[key]}" for key in sorted(c)
                if key.startswith(f"verdict:{name}:")))
        planted = [f"{c[k]} {k}" for k in ("planted sat", "planted unsat") if c[k]]
        if planted:
            say(f"{fuzzer}: " + ", ".join(planted))
    if findings:
        say("\nFindings (count, first reproducer under " + args.out + "):")
        for key, (count, line) in sorted(findings.items()):
            say(f"- {key}: {count} case(s); first: {line}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.md").write_text("\n".join(lines) + "\n")
    unexplained = sum(c["disagree"] - c["known"] + c["crash"] for c in rows.values())
    return int(unexplained > 0)


if __name__ == "__main__":
    sys.exit(main())
