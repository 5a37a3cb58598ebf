"""Activation splitting with and without the per-domain hand-off, per instance.

    python benchmarks/domain_handoff.py CSV [--root DIR] [--timeout 60] [--limit N]

Runs every instance of ``CSV`` (``onnx,vnnlib,...`` as in VNN-COMP's instances.csv or
expected_results.csv, paths relative to ``--root``, default the CSV's folder) under four
schedules, which differ only in their escalations:

* ``default``: the default schedule (whole-case race CASE_RACE and DOMAIN_HANDOFF);
* ``no-handoff``: the default without DOMAIN_HANDOFF (hybridver before the hand-off);
* ``handoff-only``: DOMAIN_HANDOFF without the whole-case race;
* ``bab-only``: neither (activation splitting alone).

It prints one line per instance and schedule (verdict, seconds, domains handed off /
proven there / given back, how the race ended) and, per schedule, solved counts, total
time and wrong answers (against an ``expected`` column of the CSV, when it has one).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from pathlib import Path

from hybridver.api import verify_files
from hybridver.config import Event, VerifyConfig

SCHEDULES = {
    "default": (),
    "no-handoff": (Event.DOMAIN_HANDOFF,),
    "handoff-only": (Event.CASE_RACE,),
    "bab-only": (Event.DOMAIN_HANDOFF, Event.CASE_RACE),
}


def _config(timeout: float, without: tuple[Event, ...]) -> VerifyConfig:
    config = VerifyConfig(timeout_s=timeout)
    return dataclasses.replace(config, schedule=config.schedule.without(*without))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--schedules", default=",".join(SCHEDULES))
    args = parser.parse_args(argv)
    root = args.root or args.csv.parent
    with args.csv.open() as handle:
        rows = [r for r in csv.DictReader(handle)][: args.limit]
    names = args.schedules.split(",")
    totals = {n: {"solved": 0, "time": 0.0, "wrong": 0} for n in names}
    for row in rows:
        for name in names:
            res = verify_files(root / row["onnx"], root / row["vnnlib"],
                               _config(args.timeout, SCHEDULES[name]))
            stats = res.to_json()["stats"].get("activation_split") or {}
            verdict = res.verdict.value
            expected = (row.get("expected") or "").strip().lower()
            wrong = verdict in ("sat", "unsat") and expected in ("sat", "unsat") \
                and verdict != expected
            total = totals[name]
            total["solved"] += verdict in ("sat", "unsat")
            total["time"] += res.time_s
            total["wrong"] += wrong
            print(f"{Path(row['vnnlib']).stem:24s} {name:13s} {verdict:8s} {res.time_s:6.1f} s "
                  f"handed off {stats.get('delegated', 0):3d} proven "
                  f"{stats.get('delegated_proven', 0):3d} returned "
                  f"{stats.get('delegated_returned', 0):3d} race {stats.get('races') or '-'}"
                  f"{'  WRONG' if wrong else ''}", flush=True)
    for name in names:
        t = totals[name]
        print(f"{name:13s} solved {t['solved']}/{len(rows)}  total {t['time']:.1f} s  "
              f"wrong {t['wrong']}")
    return 1 if any(t["wrong"] for t in totals.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
