"""Out of sample: the learned scheduler policy against the fixed one and the oracle.

Usage:
  python benchmarks/scheduler_split.py rows.jsonl [...] [--cap 5] [--seed 0]
        [--train-share 0.5] [--min-observations 5] [--save-model PATH]
  (or ``python benchmarks/scheduler_oracle.py ... --split SEED``)

Rows are ``benchmarks/scheduler_oracle.py --json`` lines: a subdomain's features and every
back end's outcome and time.  The instances (network and property) are shuffled with
``--seed`` and the first ``--train-share`` of them give the training rows: each row's
every back end is one observation of :class:`hybridver.schedule.TimingModel` (decisive:
``sat`` confirmed on the real model, or ``unsat``; time clipped at the cap).  On the other
instances' rows the fixed :class:`~hybridver.schedule.Policy`, the
:class:`~hybridver.schedule.LearnedPolicy` and the oracle (the fastest decisive back end)
are scored: subdomains solved, total time (a back end that does not decide, and keeping
branching, is charged the cap), and regret (time minus the oracle's).  ``--save-model``
also trains on all rows and saves the model where ``SchedulerConfig.model_path`` can read
it (to start runs from these timings).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DECISIVE = ("sat", "unsat")


def features_of(row: dict, cap: float):
    """The :class:`SubproblemFeatures` the policy saw for a saved row."""
    from hybridver.problem import SubproblemForm
    from hybridver.schedule import SubproblemFeatures

    form = SubproblemForm(row["n_inputs"], row["unstable_relus"],
                          frozenset(row["other_nonlinear_ops"]), row["n_nodes"], row["n_rows"])
    return SubproblemFeatures(form, gap=row["gap"], upper=row["upper"], depth=row["depth"],
                              time_left_s=100 * cap, label=row["label"])


def split(rows: list[dict], seed: int, share: float) -> tuple[list[dict], list[dict]]:
    """``(train, test)`` rows, split by instance (no instance on both sides)."""
    instances = sorted({r["instance"] for r in rows})
    random.Random(seed).shuffle(instances)
    cut = max(1, min(len(instances) - 1, round(share * len(instances))))
    train = set(instances[:cut])
    return [r for r in rows if r["instance"] in train], \
        [r for r in rows if r["instance"] not in train]


def train(rows: list[dict], cap: float, config=None):
    """A :class:`TimingModel` fed every back end's outcome on every row."""
    from hybridver.schedule import LearningConfig, TimingModel

    model = TimingModel(config or LearningConfig())
    for row in rows:
        feats = features_of(row, cap)
        for backend, res in row["results"].items():
            model.observe(feats, backend, res["status"] in DECISIVE, min(res["time_s"], cap))
    return model


def run_time(row: dict, backends: tuple[str, ...], cap: float) -> float:
    """Seconds to a decisive answer running ``backends`` (a race: its fastest), else cap."""
    res = row["results"]
    return min((min(res[b]["time_s"], cap) for b in backends
                if b in res and res[b]["status"] in DECISIVE), default=cap)


def compare(rows: list[dict], policies: dict, caps: dict, cap: float) -> list[str]:
    """One line per policy and the oracle: solved, total time, regret, choices."""
    from hybridver.schedule import Action

    oracle = [run_time(r, tuple(r["results"]), cap) for r in rows]
    lines = [f"{'policy':8s} {'solved':>9s} {'time_s':>8s} {'regret_s':>9s}  choices"]
    for name, policy in policies.items():
        times, solved, choices = [], 0, {}
        for row in rows:
            d = policy.decide(features_of(row, cap), caps)
            backends = d.backends if d.action is Action.RUN else ()
            times.append(run_time(row, backends, cap))
            solved += any(row["results"].get(b, {}).get("status") in DECISIVE
                          for b in backends)
            choices[d.choice] = choices.get(d.choice, 0) + 1
        lines.append(f"{name:8s} {solved:4d}/{len(rows):<4d} {sum(times):8.1f} "
                     f"{sum(times) - sum(oracle):9.1f}  "
                     + ", ".join(f"{k} {v}" for k, v in sorted(choices.items())))
    solvable = sum(any(r["status"] in DECISIVE for r in row["results"].values()) for row in rows)
    lines.append(f"{'oracle':8s} {solvable:4d}/{len(rows):<4d} {sum(oracle):8.1f} {0.0:9.1f}")
    return lines


def report(rows: list[dict], cap: float, seed: int, share: float = 0.5,
           min_observations: float | None = None) -> str:
    from hybridver.schedule import LearnedPolicy, LearningConfig, Policy

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from scheduler_oracle import capabilities_for

    config = LearningConfig() if min_observations is None else \
        LearningConfig(min_observations=min_observations)
    train_rows, test_rows = split(rows, seed, share)
    if not train_rows or not test_rows:
        return "out of sample: need rows of at least two instances"
    model = train(train_rows, cap, config)
    caps = capabilities_for(list(rows[0]["results"]))
    head = (f"out of sample (seed {seed}): trained on {len(train_rows)} rows of "
            f"{sorted({r['instance'] for r in train_rows})}, tested on {len(test_rows)} rows "
            f"of {sorted({r['instance'] for r in test_rows})}; cap {cap:g} s, "
            f"min_observations {config.min_observations:g}")
    return "\n".join([head] + compare(test_rows, {"fixed": Policy(),
                                                  "learned": LearnedPolicy(model=model)},
                                      caps, cap))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="+", help="JSON lines from scheduler_oracle.py --json")
    parser.add_argument("--cap", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-share", type=float, default=0.5)
    parser.add_argument("--min-observations", type=float, default=None)
    parser.add_argument("--save-model", metavar="PATH", help="train on all rows, save here")
    args = parser.parse_args()
    rows = [json.loads(line) for p in args.rows for line in open(p) if line.strip()]
    print(report(rows, args.cap, args.seed, args.train_share, args.min_observations))
    if args.save_model and train(rows, args.cap).save(args.save_model):
        print(f"model of all {len(rows)} rows saved to {args.save_model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
