"""``hybridver bounds MODEL SPEC``: bounds of every output and every spec row.

For each case of the spec (its input box), one call of
:func:`hybridver.bounds.engine.compute_bounds` bounds the flattened network outputs and the
case's rows ``C y + d`` (all disjuncts' rows, in order).  All cases go through the engine
as one batch.  Printed per case: one line per output ``y[i]`` and one per spec row.

JSON (``--json F``)::

    {"method", "dtype", "lower": [...], "upper": [...], "spec_lower": [...],
     "spec_upper": [...], "time_s", "cases": [{"lower", "upper", "spec_lower",
     "spec_upper"}, ...]}

``lower``/``upper`` bound the outputs over the union of the cases' boxes (the elementwise
min/max over cases; for a single-case spec they are that case's bounds); ``spec_lower``/
``spec_upper`` list the rows of every case, case after case; ``cases`` holds the per-case
values; ``time_s`` is the time of the bound computation alone (not loading).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from hybridver.errors import HybridverInputError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``bounds`` on an argparse sub-parser collection."""
    parser = subparsers.add_parser(
        "bounds", help="bounds of every network output and spec row (IBP, CROWN, alpha-CROWN)")
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("spec", metavar="SPEC")
    parser.add_argument("--method", choices=["ibp", "crown", "alpha-crown", "alpha-beta-crown"],
                        default="crown", help="bound propagation method")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="arithmetic of the bound computation (float32 with a rigorous "
                             "rounding margin)")
    parser.add_argument("--json", metavar="F", help="JSON file to write")
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.set_defaults(handler=run_bounds)
    return parser


def _number(x: float) -> float | str:
    """JSON has no infinities: write them as the strings "inf" / "-inf"."""
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf" if x < 0 else "nan")


def run_bounds(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from hybridver.api import load_model, load_spec
    from hybridver.commands.settings import check_device
    from hybridver.bounds.engine import compute_bounds
    from hybridver.bounds.intervals import UnsupportedBoundError
    from hybridver.bounds.options import BoundConfig
    from hybridver.relaxations import registered_ops

    for path in (args.model, args.spec):
        if not Path(path).exists():
            raise HybridverInputError(f"file not found: {path}")
    check_device(args.device)
    model = load_model(args.model)
    spec = load_spec(args.spec, model)
    if not spec.cases:
        raise HybridverInputError(f"{args.spec}: the spec has no cases, nothing to bound")
    n_out = model.n_outputs
    rows = [np.concatenate([dj.C for dj in case.disjuncts]) if case.disjuncts
            else np.zeros((0, n_out)) for case in spec.cases]
    offsets = [np.concatenate([dj.d for dj in case.disjuncts]) if case.disjuncts
               else np.zeros(0) for case in spec.cases]
    m = max(r.shape[0] for r in rows)
    C = np.zeros((len(spec.cases), n_out + m, n_out))
    d = np.zeros((len(spec.cases), n_out + m))
    for k, (rk, dk) in enumerate(zip(rows, offsets)):
        C[k, :n_out] = np.eye(n_out)
        C[k, n_out:n_out + rk.shape[0]] = rk
        d[k, n_out:n_out + rk.shape[0]] = dk
    lower = np.stack([case.region.lower for case in spec.cases])
    upper = np.stack([case.region.upper for case in spec.cases])
    config = BoundConfig(method=args.method, dtype=args.dtype)
    registered_ops()  # import the relaxation families before timing
    t0 = time.perf_counter()
    try:
        result = compute_bounds(model.graph, lower, upper, C, d, config=config,
                                device=torch.device(args.device))
    except UnsupportedBoundError as exc:
        print(f"bounds unavailable: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - t0
    low, up = result.lower.cpu().numpy(), result.upper.cpu().numpy()
    cases = []
    for k, rk in enumerate(rows):
        cases.append({"lower": low[k, :n_out].tolist(), "upper": up[k, :n_out].tolist(),
                      "spec_lower": low[k, n_out:n_out + rk.shape[0]].tolist(),
                      "spec_upper": up[k, n_out:n_out + rk.shape[0]].tolist()})
    for k, case in enumerate(cases):
        if len(cases) > 1:
            print(f"case {k}:")
        for i, (lo_i, hi_i) in enumerate(zip(case["lower"], case["upper"])):
            print(f"  y[{i}]    in [{lo_i:.9g}, {hi_i:.9g}]")
        for j, (lo_j, hi_j) in enumerate(zip(case["spec_lower"], case["spec_upper"])):
            proven = "  (row > 0: refuted)" if lo_j > 0 else ""
            print(f"  row[{j}]  in [{lo_j:.9g}, {hi_j:.9g}]{proven}")
    print(f"{args.method} ({args.dtype}): {elapsed:.3f}s", file=sys.stderr)
    if args.json:
        report = {
            "method": args.method, "dtype": args.dtype,
            "lower": [_number(x) for x in low[:, :n_out].min(0)],
            "upper": [_number(x) for x in up[:, :n_out].max(0)],
            "spec_lower": [_number(x) for c in cases for x in c["spec_lower"]],
            "spec_upper": [_number(x) for c in cases for x in c["spec_upper"]],
            "time_s": elapsed,
            "cases": [{key: [_number(x) for x in value] for key, value in c.items()}
                      for c in cases]}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
