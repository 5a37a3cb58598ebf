"""Distributed input splitting on a Ray cluster: domains per second and time to verdict
with 1, 2, ... shard workers, beside the local (one-process) search, and a model of how
the time grows with workers, fitted to the measurements.

    python benchmarks/cluster_scaling.py --cluster HOST:PORT|auto [--workers 1 2]
        [--instances 'ACASXU_run2a_1_1_*:prop_5' ...] [--root DIR] [--timeout 300]
        [--no-local] [--slice 0.5]

Every run is ``hybridver.api.verify_files`` with the escalations off (no hand-off, no
region race, no face attack: the time is the branch-and-bound's), on instances named
``ONNX_GLOB:VNNLIB_GLOB`` under ``--root`` (default ``../shared/benchmarks/acasxu``;
skipped where absent): input splitting on ACAS Xu, activation splitting on larger inputs
(e.g. ``--root ../shared/benchmarks/mnist_fc_2022 --instances
'onnx/mnist-net_256x2*:vnnlib/prop_6_0.03*'``).  Printed: per run the verdict,
the time, the input-splitting phase, domains bounded and per second, the shards' busy
fraction, the coordinator's round trips and its own time per round trip, the steals
(count, domains, bytes, the seconds idle shards waited) and the snapshot bytes.  Then
the model (docs/benchmarks.md, "Issue 14").  A warm-up run on the first instance with the
most workers starts the shard actors first (``keep_shards``: they stay for the later
runs), so no timed run pays for a worker's start (a ``verify --cluster`` from the command
line does: its actors start with the run, overlapping its first stages).  The model:

* ``r``: domains per second of one shard while it works (the 1-worker run);
* ``c``: coordinator seconds per report; with slices of ``s`` seconds, ``n`` shards send
  ``n / s`` reports per second, and the coordinator saturates at ``n* = s / c``;
* ``w``: idle seconds per shard per run (start-up, waiting for a steal, the tail when
  too few domains are left to share), measured at 2 workers and assumed to grow with
  ``log2 n`` (each steal halves a shard's domains: a domain reaches a shard in at most
  ``log2 n`` steals);
* prediction ``T(n) = T0 + W / (n r min(1, n*/n)) + w log2(n)``, with ``W`` the
  domains of the 1-worker run and ``T0`` the time outside the search.

Nothing here is a test: no assertion on time.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from hybridver.api import verify_files  # noqa: E402
from hybridver.config import ClusterConfig, VerifyConfig  # noqa: E402

ACAS = REPO.parent / "shared" / "benchmarks" / "acasxu"
DEFAULT = ["ACASXU_run2a_1_1_*:prop_3.vnnlib", "ACASXU_run2a_1_1_*:prop_5.vnnlib",
           "ACASXU_run2a_4_2_*:prop_2.vnnlib", "ACASXU_run2a_3_3_*:prop_2.vnnlib"]


def _instances(root: Path, patterns: list[str]) -> list[tuple[Path, Path]]:
    found = []
    for pattern in patterns:
        net, prop = pattern.split(":")
        nets, specs = sorted(root.glob(net)), sorted(root.glob(prop))
        if nets and specs:
            found.append((nets[0], specs[0]))
    return found


def _run(onnx: Path, spec: Path, timeout: float, cluster: ClusterConfig | None) -> dict:
    config = VerifyConfig(timeout_s=timeout)
    config = dataclasses.replace(config, schedule=dataclasses.replace(
        config.schedule, escalations=()))
    if cluster is not None:
        config = dataclasses.replace(config, cluster=cluster)
    result = verify_files(onnx, spec, config)
    split = result.stats.get("input_split", {})
    bab_s = result.phase_times.get("input_split", 0.0)
    if (result.stats.get("activation_split") or {}).get("domains_bounded"):
        split = result.stats["activation_split"]
        bab_s = result.phase_times.get("activation_split", 0.0)
    row = {"verdict": result.verdict.value, "time_s": result.time_s, "bab_s": bab_s,
           "domains": split.get("domains_bounded", 0)}
    row["domains_per_s"] = row["domains"] / max(bab_s, 1e-9)
    row["cluster"] = split.get("cluster", {})
    return row


def _fmt(name: str, mode: str, row: dict) -> str:
    c = row["cluster"]
    shards = c.get("shards", 0)
    busy = sum(c.get("busy_s", {}).values())
    wall = c.get("wall_s", 0.0)
    reports = c.get("reports", 0)
    own = (wall - c.get("wait_s", 0.0)) / reports if reports else float("nan")
    frac = busy / (shards * wall) if shards and wall else float("nan")
    return (f"{name:<26} {mode:<9} {row['verdict']:<8} {row['time_s']:>8.1f} "
            f"{row['bab_s']:>8.1f} {row['domains']:>9,} {row['domains_per_s']:>8.0f} "
            f"{frac:>6.2f} {reports:>7} {own * 1e3:>7.2f} {c.get('steals', 0):>6} "
            f"{c.get('stolen_domains', 0):>8,} {c.get('stolen_bytes', 0) / 1024:>8.1f} "
            f"{c.get('steal_wait_s', 0.0):>7.2f} {c.get('snapshot_bytes', 0) / 1024:>9.1f}")


def _model(rows: dict, slice_s: float) -> None:
    print("\nmodel (fitted per instance; predictions, not measurements):")
    print(f"{'instance':<26} {'r dom/s':>8} {'c ms':>6} {'n*':>6} {'w s':>6} "
          f"{'T(1)':>7} {'T(2) pred':>9} {'T(2) meas':>9} {'T(8)':>7} {'T(64)':>7} "
          f"{'T(512)':>7}")
    for name, runs in rows.items():
        one, two = runs.get(1), runs.get(2)
        if not one or not one["cluster"] or one["verdict"] not in ("unsat", "sat"):
            continue
        c1 = one["cluster"]
        busy1 = sum(c1.get("busy_s", {}).values())
        r = one["domains"] / max(busy1, 1e-9)
        costs = [(x["cluster"]["wall_s"] - x["cluster"]["wait_s"]) / x["cluster"]["reports"]
                 for x in runs.values() if x["cluster"].get("reports")]
        c = max(costs) if costs else 0.0
        n_star = slice_s / c if c else math.inf
        idle = 0.0
        if two and two["cluster"].get("shards"):
            c2 = two["cluster"]
            idle = (2 * c2["wall_s"] - sum(c2["busy_s"].values())) / 2
        t0 = one["time_s"] - c1.get("wall_s", 0.0)
        work = one["domains"]

        def predict(n: int) -> float:
            return t0 + work / (n * r * min(1.0, n_star / n)) + idle * math.log2(max(n, 1))
        measured = f"{two['time_s']:>9.1f}" if two else f"{'-':>9}"
        print(f"{name:<26} {r:>8.0f} {c * 1e3:>6.2f} {n_star:>6.0f} {idle:>6.2f} "
              f"{one['time_s']:>7.1f} {predict(2):>9.1f} {measured} {predict(8):>7.1f} "
              f"{predict(64):>7.1f} {predict(512):>7.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cluster", required=True, help="HOST:PORT or auto")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--instances", nargs="+", default=DEFAULT,
                        help="ONNX_GLOB:VNNLIB_GLOB under --root, e.g. "
                             "'ACASXU_run2a_3_3_*:prop_2.vnnlib'")
    parser.add_argument("--root", type=Path, default=ACAS)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--slice", type=float, default=0.5)
    parser.add_argument("--no-local", action="store_true")
    args = parser.parse_args()
    instances = _instances(args.root, args.instances)
    if not instances:
        print(f"no instances found under {args.root}; nothing to do")
        return 0
    print(f"{'instance':<26} {'mode':<9} {'verdict':<8} {'time_s':>8} {'bab_s':>8} "
          f"{'domains':>9} {'dom/s':>8} {'busy':>6} {'reports':>7} {'ms/rep':>7} "
          f"{'steals':>6} {'stolen':>8} {'KB':>8} {'wait_s':>7} {'snap KB':>9}")
    rows: dict[str, dict[int, dict]] = {}
    # warm-up, not counted: the shard actors start (a torch import each) and stay
    _run(*instances[0], min(args.timeout, 30.0),
         ClusterConfig(address=args.cluster, shards=max(args.workers), slice_s=args.slice,
                       keep_shards=True))
    for onnx, spec in instances:
        name = f"{onnx.name.split('.')[0].split('_batch')[0]} {spec.name.split('.vnnlib')[0]}"
        name = name.replace("ACASXU_", "").replace("mnist-net_", "")
        if not args.no_local:
            print(_fmt(name, "local", _run(onnx, spec, args.timeout, None)), flush=True)
        for n in args.workers:
            cluster = ClusterConfig(address=args.cluster, shards=n, slice_s=args.slice,
                                    keep_shards=True)
            row = _run(onnx, spec, args.timeout, cluster)
            rows.setdefault(name, {})[n] = row
            print(_fmt(name, f"ray x{n}", row), flush=True)
    _model(rows, args.slice)
    return 0


if __name__ == "__main__":
    sys.exit(main())
