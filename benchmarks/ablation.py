"""Ablation: the same instances with each of issue 12's pieces switched off in turn.

    python benchmarks/ablation.py GROUP [--sample N --seed S | --rows I J ...]
        [--timeout-cap S] [--variants NAME ...] [--out DIR]

``GROUP`` is a folder of ``../shared/benchmarks`` (``mnist_fc_2022``, ``lsnc_2024``,
``acasxu``...) with an ``instances.csv`` (ACAS Xu: ``acasxu_instances.csv``) and
``expected_results.csv``.  The rows run are either ``--rows`` (0-based row numbers of the
instances file) or ``--sample N`` rows drawn with ``--seed`` (stated in the output, so a
sample can be repeated).  Each variant is a TOML settings file (README, "Command line")
given to ``hybridver run-instances --config``, run in a fresh process one after the other
(never in parallel: they would share the cores); the table gives, per variant, instances
solved, wrong answers (against ``expected_results.csv``), total time and the time of the
solved ones.  Variants (``--variants``, default all):

* ``all``: the defaults, every piece on;
* ``no-domain-handoff``: item 1 off (activation splitting hands no domain to exact back
  ends; the whole-case race stays);
* ``no-learning``: item 2 off (the scheduler's fixed rules only);
* ``no-warm-start`` / ``babsr``: item 3 in branch-and-bound off (cold alphas and betas per
  domain / the cheap branching score instead of filtered smart branching);
* ``no-intermediate-alpha``: item 3 in the engine off (whole-box alpha-CROWN with fixed
  CROWN intermediate bounds; branch-and-bound's alpha-beta-CROWN keeps them fixed anyway);
* ``no-smooth-split``: item 4 off (input splitting as before it);
* ``no-quadratic-forms``: item 4's bounds of quadratic forms off (a Lyapunov function
  ``u^T P u`` bounded as products, not as weighted squares: :mod:`hybridver.ir.quadratic`).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hybridver.config import Event, Schedule  # noqa: E402

SHARED = Path(os.environ.get("HYBRIDVER_SHARED_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))


def _escalations_without(event: Event) -> str:
    """The default schedule's escalations minus ``event``, as a TOML table."""
    kept = Schedule().without(event).escalations
    items = ", ".join(f'{{event = "{e.event.value}", after_s = {e.after_s}}}' for e in kept)
    return f"[schedule]\nescalations = [{items}]\n"


#: every variant starts without a saved scheduler model (a run must not depend on the
#: runs before it); "no-learning" adds its key to that table
FRESH_SCHEDULER = '[scheduler]\nmodel_path = ""\n'

VARIANTS: dict[str, str] = {
    "all": FRESH_SCHEDULER,
    "no-domain-handoff": FRESH_SCHEDULER + _escalations_without(Event.DOMAIN_HANDOFF),
    "no-learning": FRESH_SCHEDULER + "learning = false\n",
    "no-warm-start": FRESH_SCHEDULER + "[activation_split]\nwarm_start = false\n",
    "babsr": FRESH_SCHEDULER + '[activation_split]\nbranching = "babsr"\n',
    "no-intermediate-alpha": FRESH_SCHEDULER + "[whole_box.alpha]\noptimize_intermediate = false\n",
    "no-smooth-split": FRESH_SCHEDULER + "[input_split]\nsmooth_splitting = false\n"
                       "clip_domains = false\n",
    "no-quadratic-forms": FRESH_SCHEDULER + "[input_split]\nquadratic_forms = false\n"
                          "[whole_box]\nquadratic_forms = false\n",
}


@dataclasses.dataclass
class Row:
    onnx: str
    vnnlib: str
    timeout_s: str


def _instances_file(group: Path) -> Path:
    for name in ("instances.csv", f"{group.name}_instances.csv"):
        if (group / name).is_file():
            return group / name
    raise SystemExit(f"no instances.csv in {group}")


def _read_rows(path: Path) -> list[Row]:
    with path.open(newline="") as handle:
        return [Row(*[c.strip() for c in r[:3]]) for r in csv.reader(handle) if len(r) >= 3]


def _strip_gz(name: str) -> str:
    return name[:-3] if name.endswith(".gz") else name


def _expected(group: Path) -> dict[tuple[str, str], str]:
    path = group / "expected_results.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        return {(_strip_gz(r["onnx"]), _strip_gz(r["vnnlib"])): r["expected"].strip()
                for r in csv.DictReader(handle)}


def run_variant(name: str, toml: str, group: Path, rows: list[Row], cap: float | None,
                out: Path) -> list[dict]:
    """``hybridver run-instances`` on ``rows`` with the variant's settings: its rows."""
    out.mkdir(parents=True, exist_ok=True)
    sample = out / "sample.csv"
    with sample.open("w", newline="") as handle:
        csv.writer(handle).writerows([r.onnx, r.vnnlib, r.timeout_s] for r in rows)
    config = out / f"{name}.toml"
    config.write_text(toml)
    result = out / f"{name}.csv"
    command = [sys.executable, "-m", "hybridver", "run-instances", str(sample), "--root",
               str(group), "--output", str(result), "--progress", "off", "--config", str(config)]
    if cap:
        command += ["--timeout-cap", str(cap)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"variant {name} failed: {done.stderr.strip().splitlines()[-1:]}")
    with result.open(newline="") as handle:
        return list(csv.DictReader(handle))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("group")
    parser.add_argument("--rows", nargs="+", type=int)
    parser.add_argument("--sample", type=int)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--timeout-cap", type=float)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    group = SHARED / args.group
    if not group.is_dir():
        print(f"skipped: {group} is absent")
        return 0
    every = _read_rows(_instances_file(group))
    if args.rows:
        chosen = [every[i] for i in args.rows]
        how = f"rows {' '.join(map(str, args.rows))}"
    elif args.sample:
        picks = sorted(random.Random(args.seed).sample(range(len(every)),
                                                       min(args.sample, len(every))))
        chosen = [every[i] for i in picks]
        how = f"{len(picks)} rows drawn with seed {args.seed}: {' '.join(map(str, picks))}"
    else:
        chosen, how = every, "every row"
    expected = _expected(group)
    out = args.out or Path(tempfile.mkdtemp(prefix="ablation-"))
    print(f"{args.group}: {how}; cap {args.timeout_cap or 'none'}; results in {out}")
    print("| variant | solved | wrong | total time (s) | time of solved (s) |")
    print("|---|---|---|---|---|")
    for name in args.variants:
        rows = run_variant(name, VARIANTS[name], group, chosen, args.timeout_cap, out)
        solved = [r for r in rows if r["verdict"] in ("sat", "unsat")]
        wrong = sum(expected.get((_strip_gz(r["onnx"]), _strip_gz(r["vnnlib"])), r["verdict"])
                    not in (r["verdict"], "unknown") for r in solved)
        total = sum(float(r["time_s"]) for r in rows)
        print(f"| {name} | {len(solved)}/{len(rows)} | {wrong} | {total:.1f} | "
              f"{sum(float(r['time_s']) for r in solved):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
