"""Bound engine benchmark: mean bound width and time of IBP, CROWN and alpha-CROWN.

    python benchmarks/bounds.py [--repeats 5] [--threads N] [--device cpu|cuda] [--batch 1024]

Per network and box, the bounds of every (flattened) output are computed with each method
(default settings: float32, CROWN intermediate bounds, alpha-CROWN 20 Adam steps); the
table gives the mean width ``upper - lower`` over the outputs and the median wall time of
``compute_bounds`` over ``--repeats`` runs after one warm-up run (which builds the cached
graph plan).  With ``--batch N`` it also times CROWN on N ACAS Xu subdomains (the property-1
box split into N slices along its widest input) and reports subdomains per second.
Shared networks are skipped where ../shared/benchmarks is absent.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hybridver.api import load_model, load_spec  # noqa: E402
from hybridver.bounds import BoundConfig, UnsupportedBoundError, compute_bounds  # noqa: E402

SHARED = REPO.parent / "shared" / "benchmarks"
EXAMPLES = REPO / "examples"

NETWORKS = [
    ("ACAS Xu 1_1, prop 1", SHARED / "acasxu/ACASXU_run2a_1_1_batch_2000.onnx",
     SHARED / "acasxu/prop_1.vnnlib"),
    ("mnist 784-256-256-10", SHARED / "mnist_fc_2022/onnx/mnist-net_256x2.onnx.gz",
     SHARED / "mnist_fc_2022/vnnlib/prop_0_0.03.vnnlib.gz"),
    ("digits_relu 64-32-32-10", EXAMPLES / "digits_relu.onnx",
     EXAMPLES / "digits_relu_eps_large_2.vnnlib"),
    ("digits_sigmoid 64-32-32-10", EXAMPLES / "digits_sigmoid.onnx",
     EXAMPLES / "digits_sigmoid_eps_large_2.vnnlib"),
    ("digits_tanh 64-32-32-10", EXAMPLES / "digits_tanh.onnx",
     EXAMPLES / "digits_tanh_eps_large_2.vnnlib"),
    ("tiny_relu 2-8-8-2", EXAMPLES / "tiny_relu.onnx", EXAMPLES / "tiny_relu.vnnlib"),
    ("dist_shift mnist_concat (relu+sigmoid)",
     SHARED / "dist_shift_2023/onnx/mnist_concat.onnx.gz",
     SHARED / "dist_shift_2023/vnnlib/index4462_delta0.13.vnnlib.gz"),
]


def _box(model, spec_path: Path | None) -> tuple[np.ndarray, np.ndarray]:
    if spec_path is not None:
        region = load_spec(spec_path, model).cases[0].region
        return region.lower[None], region.upper[None]
    c = np.random.default_rng(0).random(model.n_inputs)
    return (c - 0.02)[None], (c + 0.02)[None]


def _time(fn, repeats: int) -> tuple[float, object]:
    result = fn()  # warm-up: builds and caches the graph plan
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=1024)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    print()
    print("| network | inputs | IBP width | IBP time | CROWN width | CROWN time "
          "| alpha-CROWN width | alpha-CROWN time |")
    print("|---|---|---|---|---|---|---|---|")
    for label, path, spec in NETWORKS:
        if not path.exists():
            print(f"| {label} | (absent) | | | | | | |")
            continue
        model = load_model(path)
        lo, hi = _box(model, spec)
        cells = []
        for method in ("ibp", "crown", "alpha-crown"):
            config = BoundConfig(method=method)
            try:
                seconds, res = _time(lambda: compute_bounds(model.graph, lo, hi, config=config,
                                                             device=device), args.repeats)
            except UnsupportedBoundError as exc:
                cells += ["unsupported", str(exc)[:30]]
                continue
            width = float((res.upper - res.lower).mean())
            cells += [f"{width:.4g}", f"{seconds * 1e3:.1f} ms"]
        print(f"| {label} | {model.n_inputs} | " + " | ".join(cells) + " |")
        sys.stdout.flush()
    acas = NETWORKS[0]
    if args.batch and acas[1].exists():
        model = load_model(acas[1])
        lo, hi = _box(model, acas[2])
        axis = int(np.argmax(hi[0] - lo[0]))
        edges = np.linspace(lo[0, axis], hi[0, axis], args.batch + 1)
        los, his = np.repeat(lo, args.batch, 0), np.repeat(hi, args.batch, 0)
        los[:, axis], his[:, axis] = edges[:-1], edges[1:]
        C = np.zeros((4, 5))
        C[:, 0] = 1
        C[np.arange(4), np.arange(1, 5)] = -1  # y0 - y_j rows
        for method in ("crown", "alpha-crown"):
            config = BoundConfig(method=method)
            seconds, _ = _time(lambda: compute_bounds(model.graph, los, his, C, config=config,
                                                      bound_upper=False, device=device),
                               max(1, args.repeats // 2))
            print(f"\n{method}: {args.batch} ACAS Xu subdomains (4 spec rows, lower bounds "
                  f"only) in {seconds:.3f} s = {args.batch / seconds:.0f} subdomains/s")


if __name__ == "__main__":
    main()
