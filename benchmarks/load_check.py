"""Cost of the load-time check of the IR against onnxruntime (``verify``'s first step).

    python benchmarks/load_check.py [--points 8] [--repeats 5] [--threads 1] [--sweep]

For the first instance of each of the first ``--per-benchmark`` models of each
shared benchmark (and ACAS Xu property 2, whose spec has
one box, next to property 1), the model and spec are loaded, then
``check_loaded_model(model, spec, points)`` is timed: the median wall time over
``--repeats`` runs after one warm-up.  ``locate s`` is the time of
``first_differing_node`` on one point, the extra cost paid only when the check fails
(onnxruntime again with every intermediate tensor as an output).  Instances whose model
cannot be imported are listed as skipped.  ``--threads``: torch threads of the IR's
evaluation (on a loaded machine torch's thread pool can cost a fraction of a second per
call; one thread measures the work).  ``--sweep``: the check on every instance
of every benchmark instead, counting mismatches (false alarms) and the worst difference.  Nothing runs where ../shared/benchmarks is absent.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hybridver.api import load_model, load_spec  # noqa: E402
from hybridver.errors import HybridverInputError  # noqa: E402
from hybridver.frontends.model_check import (ModelMismatchError,  # noqa: E402
                                             check_loaded_model, probe_points)
from hybridver.frontends.onnx.runtime import output_differences  # noqa: E402
from hybridver.frontends.onnx.runtime_check import first_differing_node  # noqa: E402
from hybridver.ir.evaluate import evaluate  # noqa: E402

SHARED = Path(os.environ.get("HYBRIDVER_SHARED_BENCHMARKS",
                           REPO.parent / "shared" / "benchmarks"))


def _existing(path: Path) -> Path:
    gz = path.with_name(path.name + ".gz")
    return path if path.exists() or not gz.exists() else gz


def instances(per_benchmark: int) -> list[tuple[str, Path, Path]]:
    """(label, model, spec): of every benchmark's instances CSV, the first row of each of
    its first ``per_benchmark`` models that are there."""
    rows = []
    for csv_path in sorted(SHARED.glob("*/*instances.csv")):
        seen: set[Path] = set()
        with csv_path.open(encoding="utf-8-sig") as handle:
            for row in csv.reader(handle):
                model = _existing(csv_path.parent / row[0])
                if model.exists() and model not in seen and len(seen) < per_benchmark:
                    seen.add(model)
                    rows.append((csv_path.parent.name, model,
                                 _existing(csv_path.parent / row[1])))
    acas = SHARED / "acasxu"
    if acas.is_dir():
        rows.append(("acasxu prop 2", acas / "ACASXU_run2a_2_1_batch_2000.onnx",
                     acas / "prop_2.vnnlib"))
    return rows


def sweep(points: int) -> None:
    """The check on every row of every instances CSV whose model is there: the number of
    mismatches and the worst per-point relative difference (the tolerance's margin); and
    per model, whether ``first_differing_node`` wrongly names a node on a correct model."""
    models: dict[Path, object] = {}
    count, failed, located, worst = 0, 0, 0, (0.0, "")
    for csv_path in sorted(SHARED.glob("*/*instances.csv")):
        with csv_path.open(encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
        for row in rows:
            model_path = _existing(csv_path.parent / row[0])
            if not model_path.exists():
                continue
            fresh = model_path not in models
            if fresh:
                models[model_path] = load_model(model_path)
            model = models[model_path]
            spec = load_spec(_existing(csv_path.parent / row[1]), model)
            if fresh:  # no node of a correct model is named as differing
                x0 = probe_points(spec, 1).astype(model.input_dtype)
                where = first_differing_node(model_path, model.graph, x0)
                if where:
                    located += 1
                    print(f"{model_path.name}: {where}", flush=True)
            x = probe_points(spec, points).reshape(-1, *model.graph.input_node.shape)
            x = x.astype(model.input_dtype)
            ref = np.stack([model.real_model(x[k:k + 1]).reshape(-1) for k in range(len(x))])
            ours = evaluate(model.graph, x.astype(np.float64)).numpy().reshape(len(x), -1)
            rel = float(output_differences(ours, ref)[1].max())
            worst = max(worst, (rel, f"{model_path.name} {Path(row[1]).name}"))
            count += 1
            try:
                check_loaded_model(model, spec, points)
            except ModelMismatchError as exc:
                failed += 1
                print(exc, flush=True)
    print(f"{count} instances, {failed} mismatches, worst relative difference "
          f"{worst[0]:.2g} ({worst[1]}); {len(models)} models, {located} with a node "
          "named as differing")


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--per-benchmark", type=int, default=3)
    parser.add_argument("--sweep", action="store_true",
                        help="check every instance instead (false alarms, margin)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not SHARED.is_dir():
        print(f"shared benchmarks not found at {SHARED}")
        return
    if args.sweep:
        sweep(args.points)
        return
    print(f"{'benchmark':<16} {'model':<52} {'inputs':>7} {'params':>10} {'points':>6} "
          f"{'check s':>8} {'locate s':>8}")
    for label, model_path, spec_path in instances(args.per_benchmark):
        try:
            model = load_model(model_path)
            spec = load_spec(spec_path, model)
        except HybridverInputError as exc:
            print(f"{label:<16} {model_path.name:<52} skipped: {str(exc)[:60]}")
            continue
        check = _median_time(lambda: check_loaded_model(model, spec, args.points),
                             args.repeats)
        x = probe_points(spec, 1).astype(model.input_dtype)
        locate = _median_time(lambda: first_differing_node(model_path, model.graph, x), 1)
        print(f"{label:<16} {model_path.name:<52} {model.n_inputs:>7} "
              f"{model.graph.parameter_count():>10,} {args.points:>6} {check:>8.4f} "
              f"{locate:>8.4f}", flush=True)


if __name__ == "__main__":
    main()
