"""The scheduler's back-end choices against an oracle that runs every back end.

Usage:
  python benchmarks/scheduler_oracle.py [--subdomains 24] [--cap 10] [--rounds N]
        [--per-instance 3] [--tighten 3] [--backends highs ortools z3] [--json rows.jsonl]
  python benchmarks/scheduler_oracle.py --table rows.jsonl [--policy KEY=VALUE ...]
        [--split SEED [--train-share 0.5]]

Hard subdomains: for each ACAS Xu instance of a fixed mix (sat and unsat, properties 1-4;
models and properties from ``../shared/benchmarks/acasxu``, skipped cleanly if absent),
the input box is bisected (``--rounds`` times, default per instance) along every box's
widest (relative) dimension; CROWN (:func:`hybridver.bounds.engine.compute_bounds`)
bounds each sub-box.  A sub-box is kept when CROWN does not prove it and its centre does
not violate (those the BaB's probing settles).  Up to ``--per-instance`` of them, spread
over the range of CROWN's gap (one with a violating random sample among them when there is
one, so that sat subdomains are represented), become Subproblems with CROWN node intervals
tightened by LPs (:func:`hybridver.backends.lp.lp_tightened_bounds`, at most
``--tighten`` s), as exact mode does.

Oracle: every back end runs every subdomain in this process with the same cap; a
CANDIDATE counts as decisive only when onnxruntime confirms it on the subdomain.  The
policy (:class:`hybridver.schedule.Policy`, defaults, or ``--policy`` overrides) sees the
subdomain's features (unstable ReLUs, CROWN gap, the margin at the centre, depth) and the
back ends' capabilities.  ``--table`` re-scores saved rows (e.g. with other policy
thresholds) without solving again.  ``--split SEED`` adds the out-of-sample comparison of
``benchmarks/scheduler_split.py``: the learned policy trained on the rows of some
instances, against the fixed policy and the oracle on the others.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ACAS = Path(os.environ.get("HYBRIDVER_SHARED_BENCHMARKS", REPO.parent / "shared" / "benchmarks")
            ) / "acasxu"

#: (network, property, bisection rounds): sat and unsat instances of properties 1-4,
#: interleaved so that a small --subdomains still covers every property.  Properties 1 and
#: 2 have large input boxes (about 150-200 unstable ReLUs under CROWN after 9-12 rounds),
#: 3 and 4 small ones (about 25-40 after 6-9 rounds).  The sat instances of properties 3
#: and 4 (1_7, 1_8, 1_9) violate at every box centre, so only property 2 gives sat
#: subdomains (2_1, 1_2, 4_5, 5_3 are sat; 3_3 is unsat).
MIX = [("1_1", 3, 6), ("2_1", 2, 10), ("1_1", 1, 10), ("1_2", 2, 10), ("1_1", 4, 6),
       ("4_5", 2, 10), ("2_1", 3, 6), ("5_3", 2, 10), ("3_3", 1, 10), ("3_3", 2, 10)]


# ---------------------------------------------------------------------- subdomains
def bisect(lower, upper, rounds: int, width0):
    """Every box split ``rounds`` times along its widest dimension relative to ``width0``."""
    import numpy as np

    boxes = [(np.asarray(lower, float), np.asarray(upper, float), 0)]
    for _ in range(rounds):
        nxt = []
        for lo, hi, depth in boxes:
            dim = int(np.argmax((hi - lo) / width0))
            mid = (lo[dim] + hi[dim]) / 2
            left_hi, right_lo = hi.copy(), lo.copy()
            left_hi[dim] = right_lo[dim] = mid
            nxt += [(lo, left_hi, depth + 1), (right_lo, hi, depth + 1)]
        boxes = nxt
    return boxes


def hard_subdomains(net: str, prop: int, rounds: int, args, rng):
    """``(Subproblem, features dict, info)`` for up to ``args.per_instance`` sub-boxes."""
    import numpy as np
    import torch

    from hybridver.api import load_model, load_spec
    from hybridver.backends.lp import lp_tightened_bounds
    from hybridver.bounds.engine import compute_bounds
    from hybridver.encode.milp import NotEncodableError
    from hybridver.ir.evaluate import evaluate
    from hybridver.problem import Subproblem
    from hybridver.specs import InputBox

    onnx = ACAS / f"ACASXU_run2a_{net}_batch_2000.onnx"
    model = load_model(onnx)
    spec = load_spec(ACAS / f"prop_{prop}.vnnlib", model)
    graph = model.graph
    shape = graph.input_node.shape
    out = []
    for ci, case in enumerate(spec.cases):
        for di, disjunct in enumerate(case.disjuncts):
            box = case.region
            width0 = np.where(box.upper > box.lower, box.upper - box.lower, 1.0)
            boxes = bisect(box.lower, box.upper, rounds, width0)
            lo = np.stack([b[0] for b in boxes])
            hi = np.stack([b[1] for b in boxes])
            res = compute_bounds(graph, lo, hi, disjunct.C, disjunct.d, bound_upper=False)
            gap = res.lower.max(dim=1).values.numpy()            # max_r lower_r
            # the margin at the box centre (what the BaB's probe sees): an upper bound of
            # the subdomain's margin
            y = evaluate(graph, torch.as_tensor(((lo + hi) / 2).reshape(-1, *shape))).reshape(
                len(boxes), -1).numpy()
            upper = (y @ disjunct.C.T + disjunct.d).max(axis=1)
            open_ = np.nonzero((gap <= 0) & (upper > 0))[0]
            # boxes with a violating random sample (not known to the policy): one of them
            # is taken first, so that sat subdomains are represented
            pts = box.lower + (box.upper - box.lower) * rng.random((4096, lo.shape[1]))
            ys = evaluate(graph, torch.as_tensor(pts.reshape(-1, *shape))).numpy()
            bad = pts[(ys.reshape(len(pts), -1) @ disjunct.C.T + disjunct.d).max(axis=1) <= 0]
            hidden = [k for k in open_ if len(bad) and np.any(
                np.all((bad >= lo[k]) & (bad <= hi[k]), axis=1))]
            info = {"boxes": len(boxes), "proven": int(np.sum(gap > 0)),
                    "centre_cex": int(np.sum(upper <= 0)), "open": len(open_),
                    "with_sampled_cex": len(hidden)}
            if not len(open_):
                continue
            order = open_[np.argsort(gap[open_])]
            take = list(order[np.unique(np.linspace(0, len(order) - 1,
                                                    min(args.per_instance, len(order)))
                                        .round().astype(int))])
            if hidden and not set(hidden) & set(take):
                take[len(take) // 2] = hidden[0]
            for k in take:
                sub_box = InputBox(lo[k], hi[k])
                bounds = {name: (iv.lower[k if iv.lower.shape[0] > 1 else 0].reshape(-1)
                                 .double().numpy(),
                                 iv.upper[k if iv.upper.shape[0] > 1 else 0].reshape(-1)
                                 .double().numpy())
                          for name, iv in res.intervals.items()}
                label = f"acas {net} p{prop} box {k}"
                problem = Subproblem(graph, sub_box, disjunct, bounds, case=ci, disjunct=di,
                                     label=label)
                t0 = time.perf_counter()
                try:
                    tight, _ = lp_tightened_bounds(problem, args.tighten)
                    problem = dataclasses.replace(problem, node_bounds=tight)
                except NotEncodableError:
                    pass
                feats = {"gap": float(gap[k]), "upper": float(upper[k]),
                         "depth": rounds, "tighten_s": time.perf_counter() - t0}
                out.append((model, problem, feats, info))
    return out


# ---------------------------------------------------------------------- oracle
def confirmed(model, problem, x) -> bool:
    """Does the real model violate ``problem`` at ``x`` (rounded into the box)?"""
    import numpy as np

    dtype = model.input_dtype
    xm = np.asarray(x, dtype=dtype).reshape(-1)
    for _ in range(2):
        above = xm.astype(np.float64) > problem.box.upper
        xm[above] = np.nextafter(xm[above], np.asarray(-np.inf, dtype=dtype))
        below = xm.astype(np.float64) < problem.box.lower
        xm[below] = np.nextafter(xm[below], np.asarray(np.inf, dtype=dtype))
    if not problem.box.contains(xm.astype(np.float64)):
        return False
    y = np.asarray(model.real_model(xm.reshape(1, *model.graph.input_node.shape)),
                   dtype=np.float64).reshape(-1)
    return bool(np.all(problem.constraints.C @ y + problem.constraints.d <= 0))


def solve_all(args) -> list[dict]:
    import numpy as np

    from hybridver.backends import Limits, Status
    from hybridver.schedule import run_job

    rng = np.random.default_rng(args.seed)
    rows: list[dict] = []
    sink = open(args.json, "a") if args.json else None
    mix = MIX[: args.instances] if args.instances else MIX
    per_instance = max(1, math.ceil(args.subdomains / len(mix)))
    args.per_instance = min(args.per_instance, per_instance) if args.per_instance else \
        per_instance
    for net, prop, rounds in mix:
        if len(rows) >= args.subdomains:
            break
        if not (ACAS / f"ACASXU_run2a_{net}_batch_2000.onnx").exists():
            continue
        rounds = args.rounds if args.rounds is not None else rounds
        for model, problem, feats, info in hard_subdomains(net, prop, rounds, args, rng):
            if len(rows) >= args.subdomains:
                break
            form = problem.form()
            row = {"label": problem.label, "instance": f"{net} p{prop}",
                   "unstable_relus": form.unstable_relus, "n_inputs": form.n_inputs,
                   "n_nodes": form.n_nodes, "n_rows": form.n_rows,
                   "other_nonlinear_ops": sorted(form.other_nonlinear_ops), **feats,
                   "boxes": info, "results": {}}
            for backend in args.backends:
                outcome = run_job(problem, backend, Limits(time_s=args.cap))
                status = outcome.status.value
                if outcome.status is Status.CANDIDATE:
                    ok = outcome.candidate is not None and confirmed(model, problem,
                                                                     outcome.candidate.x)
                    status = "sat" if ok else "candidate?"
                elif outcome.status is Status.INFEASIBLE:
                    status = "unsat"
                row["results"][backend] = {"status": status,
                                           "time_s": round(outcome.time_s, 3),
                                           "solver_status": outcome.solver_status}
            rows.append(row)
            cells = "  ".join(f"{b} {r['status']} {r['time_s']:.2f}"
                              for b, r in row["results"].items())
            print(f"{row['label']:26s} u={row['unstable_relus']:3d} gap={row['gap']:9.3g} "
                  f"upper={row['upper']:9.3g}  {cells}", flush=True)
            if sink:
                sink.write(json.dumps(row) + "\n")
                sink.flush()
    return rows


# ---------------------------------------------------------------------- scoring
def policy_from(overrides: list[str]):
    from hybridver.schedule import Policy, PolicyConfig

    fields = {f.name: f for f in dataclasses.fields(PolicyConfig)}
    values = {}
    for item in overrides:
        key, _, text = item.partition("=")
        if key not in fields:
            raise SystemExit(f"unknown PolicyConfig field {key!r}")
        default = getattr(PolicyConfig(), key)
        if isinstance(default, bool):
            values[key] = text.lower() in ("1", "true", "yes")
        elif isinstance(default, tuple):
            values[key] = tuple(t for t in text.split(",") if t)
        else:
            values[key] = type(default)(float(text)) if isinstance(default, int) else \
                float(text)
    return Policy(PolicyConfig(**values))


def capabilities_for(backends):
    from hybridver.backends.base import Capabilities
    from hybridver.schedule import available_capabilities

    caps = available_capabilities()
    return {b: caps.get(b, Capabilities()) for b in backends}


def score(rows: list[dict], policy, cap: float) -> str:
    from hybridver.problem import SubproblemForm
    from hybridver.schedule import Action, SubproblemFeatures

    backends = list(rows[0]["results"]) if rows else []
    caps = capabilities_for(backends)
    decisive = ("sat", "unsat")
    head = (f"{'subdomain':26s} {'u':>3s} {'gap':>8s} {'upper':>8s} {'lik':>4s} " +
            " ".join(f"{b:>15s}" for b in backends) + f"  {'fastest':8s} {'policy':14s} "
            f"{'lost_s':>6s}")
    lines = [head, "-" * len(head)]
    hits = misses = kept = kept_hopeless = solvable = 0
    lost = policy_time = best_time = wasted = 0.0
    wrong = []
    for row in rows:
        res = row["results"]
        form = SubproblemForm(row["n_inputs"], row["unstable_relus"],
                              frozenset(row["other_nonlinear_ops"]), row["n_nodes"],
                              row["n_rows"])
        feats = SubproblemFeatures(form, gap=row["gap"], upper=row["upper"],
                                   depth=row["depth"], time_left_s=100 * cap,
                                   label=row["label"])
        decision = policy.decide(feats, caps)
        answers = {r["status"] for r in res.values() if r["status"] in decisive}
        if len(answers) > 1:
            wrong.append(row["label"])
        ok = {b: r["time_s"] for b, r in res.items() if r["status"] in decisive}
        fastest = min(ok, key=ok.get) if ok else "-"
        t_best = ok[fastest] if ok else cap
        if decision.action is Action.RUN:
            # a race costs the fastest member's time (all members' CPU, not shown here)
            members = [b for b in decision.backends if b in res]
            t_pol = min((ok.get(b, cap) for b in members), default=cap)
            choice = decision.choice
        else:
            t_pol, choice = cap, "keep"
            kept += 1
            kept_hopeless += not ok
        if decision.action is Action.RUN and not ok:
            wasted += min(cap, decision.budget_s) * len(decision.backends)
        best_time += t_best
        policy_time += t_pol
        if ok:
            solvable += 1
            if decision.action is Action.RUN and (fastest in decision.backends or
                                                  t_pol <= ok[fastest] + 0.05):
                hits += 1
            else:
                misses += 1
            lost += t_pol - t_best
        lik = feats.cex_likelihood
        cells = " ".join(f"{r['status'] + ' ' + format(r['time_s'], '.2f'):>15s}"
                         for r in res.values())
        lines.append(f"{row['label']:26s} {row['unstable_relus']:3d} {row['gap']:8.3g} "
                     f"{row['upper']:8.3g} {'' if lik is None else format(lik, '.2f'):>4s} "
                     f"{cells}  {fastest:8s} {choice:14s} {t_pol - t_best:6.2f}")
    lines.append("-" * len(head))
    for b in backends:
        solved = [r["results"][b] for r in rows if r["results"][b]["status"] in decisive]
        total = sum(min(r["results"][b]["time_s"], cap) if r["results"][b]["status"] in
                    decisive else cap for r in rows)
        fastest_n = sum(1 for r in rows if _fastest(r, decisive) == b)
        lines.append(f"{b:8s} solved {len(solved):3d}/{len(rows)}  fastest on {fastest_n:3d}  "
                     f"time with timeouts at cap {total:8.1f}s")
    lines.append(f"{'oracle':8s} solved {solvable:3d}/{len(rows)}  virtual best time "
                 f"{best_time:8.1f}s")
    lines.append(f"{'policy':8s} picked the fastest decisive back end on {hits}/{solvable} "
                 f"solvable subdomains (missed {misses}); time {policy_time:.1f}s, lost "
                 f"{lost:.1f}s against the oracle")
    lines.append(f"{'':8s} kept branching on {kept} ({kept_hopeless} that no back end "
                 f"solved in {cap:g} s); {wasted:.1f}s of budget given to subdomains no "
                 "back end solved")
    if wrong:
        lines.append("DISAGREEMENT (sat and unsat on one subdomain): " + ", ".join(wrong))
    return "\n".join(lines)


def _fastest(row: dict, decisive) -> str | None:
    ok = {b: r["time_s"] for b, r in row["results"].items() if r["status"] in decisive}
    return min(ok, key=ok.get) if ok else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subdomains", type=int, default=24)
    parser.add_argument("--instances", type=int, default=0, help="first N of the mix (0: all)")
    parser.add_argument("--per-instance", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=None,
                        help="bisection rounds for every instance (default: per instance)")
    parser.add_argument("--cap", type=float, default=10.0, help="seconds per back end")
    parser.add_argument("--tighten", type=float, default=3.0, help="LP tightening seconds")
    parser.add_argument("--backends", nargs="+", default=["highs", "ortools", "z3"])
    parser.add_argument("--seed", type=int, default=0, help="of the random samples")
    parser.add_argument("--json", help="append one JSON line per subdomain to this file")
    parser.add_argument("--table", nargs="+", metavar="JSONL", help="score saved rows only")
    parser.add_argument("--policy", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="PolicyConfig overrides for scoring")
    parser.add_argument("--split", type=int, default=None, metavar="SEED",
                        help="also train the learned policy on some instances, test on the rest")
    parser.add_argument("--train-share", type=float, default=0.5)
    args = parser.parse_args()
    policy = policy_from(args.policy)
    if args.table:
        rows = [json.loads(line) for p in args.table for line in open(p) if line.strip()]
    else:
        if not ACAS.is_dir():
            print(f"skipped: ACAS Xu benchmarks not found at {ACAS}")
            return 0
        import torch
        torch.set_num_threads(1)
        from hybridver.schedule import available_capabilities
        missing = [b for b in args.backends if b not in available_capabilities()]
        if missing:
            print(f"back ends not available, left out: {', '.join(missing)}")
            args.backends = [b for b in args.backends if b not in missing]
        rows = solve_all(args)
    if not rows:
        print("no hard subdomains")
        return 0
    cap = args.cap
    print()
    print(f"policy: {policy.config}")
    print(score(rows, policy, cap))
    if args.split is not None:
        from scheduler_split import report
        print()
        print(report(rows, cap, args.split, args.train_share))
    return 0


if __name__ == "__main__":
    sys.exit(main())
