"""Branch-and-bound throughput: domains bounded per second, per device and batch size.

    python benchmarks/throughput.py [--device cpu [cuda ...]] [--batch 64 256 1024]
                                    [--seconds 15] [--threads N] [--workloads NAME ...]

Each workload runs one branch-and-bound search on a hard instance for ``--seconds`` (no
probe: no attack, so the time is all bounding and branching) with the given batch size
and device, and reports the domains bounded, the batches, domains per second and where
the search stopped.  Workloads (instances from ``../shared/benchmarks``, skipped where
absent):

* ``acas-input``: input splitting (CROWN per sub-box) on ACAS Xu 3_3 property 2, the
  hardest unsat instance of the group;
* ``mnist-relu``: activation splitting (alpha-beta-CROWN) on mnist_fc 256x4 property 6
  at eps 0.03;
* ``dist-sigmoid``: activation splitting (CROWN, sigmoid split at its tabulated points)
  on dist_shift's mnist_concat, index1205 (both unsat; neither decided in 3 s).

CUDA rows run only when ``torch.cuda.is_available()``; the device tool lends a GPU to
some sessions, where this script is the one to run (docs/benchmarks.md, "Throughput").
Nothing here is a test: no assertion on time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hybridver.api import load_model, load_spec  # noqa: E402
from hybridver.bab.activation_split import ActivationSplitConfig, activation_split_bab  # noqa: E402
from hybridver.bab.input_split import Bounded, InputSplitConfig, input_split_bab  # noqa: E402
from hybridver.bounds.engine import compute_bounds  # noqa: E402
from hybridver.bounds.options import BoundConfig, BoundMethod  # noqa: E402
from hybridver.pipeline.whole_box import StackedCase  # noqa: E402

SHARED = Path(os.environ.get("HYBRIDVER_SHARED_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))

WORKLOADS = {
    "acas-input": ("input", "acasxu/ACASXU_run2a_3_3_batch_2000.onnx", "acasxu/prop_2.vnnlib"),
    "mnist-relu": ("activation", "mnist_fc_2022/onnx/mnist-net_256x4.onnx.gz",
                   "mnist_fc_2022/vnnlib/prop_6_0.03.vnnlib.gz"),
    "dist-sigmoid": ("activation", "dist_shift_2023/onnx/mnist_concat.onnx.gz",
                     "dist_shift_2023/vnnlib/index1205_delta0.13.vnnlib.gz"),
}


def _existing(relative: str) -> Path | None:
    """The shared file, or its gzip copy / plain form, or None."""
    path = SHARED / relative
    for candidate in (path, path.with_suffix("") if path.suffix == ".gz" else
                      path.with_name(path.name + ".gz")):
        if candidate.exists():
            return candidate
    return None


def run_search(kind: str, model, case, device: str, batch: int, seconds: float):
    """One search on the case's box for ``seconds``: (outcome, wall seconds)."""
    stacked = StackedCase.of(case)
    graph = model.graph
    start = time.monotonic()
    deadline = start + seconds
    if kind == "input":
        config = BoundConfig(method=BoundMethod.CROWN, deadline=deadline)

        def bound_fn(lo, hi, restrictions) -> Bounded:
            result = compute_bounds(graph, lo, hi, stacked.C, stacked.d, config=config,
                                    restrictions=restrictions, bound_upper=False,
                                    device=device, input_coefficients=True)
            return Bounded(result.lower, result.input_coef, {})

        outcome = input_split_bab(bound_fn, case.region.lower, case.region.upper,
                                  stacked.groups, deadline,
                                  config=InputSplitConfig(batch_size=batch), device=device)
    else:
        outcome = activation_split_bab(graph, case.region.lower, case.region.upper, stacked.C,
                                       stacked.d, stacked.groups, deadline,
                                       config=ActivationSplitConfig(batch_size=batch),
                                       device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return outcome, time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", nargs="+", default=["cpu"])
    parser.add_argument("--batch", nargs="+", type=int, default=[64, 256, 1024])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS),
                        choices=list(WORKLOADS))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [d for d in args.device if not d.startswith("cuda") or torch.cuda.is_available()]
    for skipped in sorted(set(args.device) - set(devices)):
        print(f"skipped device {skipped}: torch.cuda.is_available() is False")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{args.seconds:g} s per row")
    print("| workload | device | batch | domains | batches | domains/s | stopped |")
    print("|---|---|---|---|---|---|---|")
    for name in args.workloads:
        kind, model_rel, spec_rel = WORKLOADS[name]
        model_path, spec_path = _existing(model_rel), _existing(spec_rel)
        if model_path is None or spec_path is None:
            print(f"| {name} | skipped: {SHARED / model_rel} or its spec is absent |||||")
            continue
        model = load_model(model_path)
        case = load_spec(spec_path, model).cases[0]
        for device in devices:
            run_search(kind, model, case, device, args.batch[0], min(2.0, args.seconds))  # warm-up
            for batch in args.batch:
                outcome, wall = run_search(kind, model, case, device, batch, args.seconds)
                stats = outcome.stats
                print(f"| {name} | {device} | {batch} | {stats.domains_bounded} | "
                      f"{stats.batches} | {stats.domains_bounded / wall:.0f} | "
                      f"{outcome.status.value} after {wall:.1f} s |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
