"""Bound engine benchmark: mean bound width and time of IBP, CROWN and alpha-CROWN.

    python benchmarks/bounds.py [--repeats 5] [--threads N] [--device cpu|cuda] [--batch 1024]
                                [--compare-auto-lirpa PYTHON]

Per network and box, the bounds of every (flattened) output are computed with each method
(default settings: float32, CROWN intermediate bounds, alpha-CROWN 20 Adam steps); the
table gives the mean width ``upper - lower`` over the outputs and the median wall time of
``compute_bounds`` over ``--repeats`` runs after one warm-up run (which builds the cached
graph plan).  With ``--batch N`` it also times CROWN on N ACAS Xu subdomains (the property-1
box split into N slices along its widest input) and reports subdomains per second.
Shared networks are skipped where ../shared/benchmarks is absent.

``--compare-auto-lirpa PYTHON``: also bound the same networks and boxes with auto_LiRPA, run
by ``PYTHON`` (an interpreter of a separate environment where auto_LiRPA is installed; it
runs ``benchmarks/_auto_lirpa_runner.py``, hybridver never imports auto_LiRPA), and print
both side by side: mean width and time per method, the ratios ours/theirs, and a sound
check of each side's bounds against onnxruntime outputs on sampled points of the box.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import tempfile
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
    ("mnist 784-256x6-10", SHARED / "mnist_fc_2022/onnx/mnist-net_256x6.onnx.gz",
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


METHODS = ("ibp", "crown", "alpha-crown")
THEIRS = {"ibp": "IBP", "crown": "CROWN", "alpha-crown": "alpha-CROWN"}


def _onnx_outputs(path: Path, lo: np.ndarray, hi: np.ndarray, samples: int) -> np.ndarray:
    """onnxruntime outputs ``(samples, n_out)`` on the box corners' midpoint and uniform
    samples of the box (one point per run: some networks fix the batch size to 1)."""
    import onnx
    import onnxruntime as ort

    data = path.read_bytes()
    proto = onnx.load_from_string(gzip.decompress(data) if path.suffix == ".gz" else data)
    inits = {i.name for i in proto.graph.initializer}
    inp = [i for i in proto.graph.input if i.name not in inits][0]
    shape = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]
    session = ort.InferenceSession(proto.SerializeToString())
    rng = np.random.default_rng(1)
    points = [(lo + hi) / 2] + [lo + (hi - lo) * rng.random(lo.shape) for _ in range(samples)]
    return np.stack([session.run(None, {inp.name: p.reshape(shape).astype(np.float32)})[0]
                     .reshape(-1) for p in points])


def _violation(ys: np.ndarray, lower, upper) -> float:
    """Largest amount by which a sampled output leaves ``[lower, upper]`` (0: sound here)."""
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    return float(max(0.0, (lower - ys).max(), (ys - upper).max()))


def _auto_lirpa(python: str, cases: list[dict], repeats: int, threads: int | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        job, out = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job.write_text(json.dumps({"repeats": repeats, "threads": threads,
                                   "iterations": BoundConfig().alpha.iterations,
                                   "cases": cases}))
        subprocess.run([python, str(REPO / "benchmarks" / "_auto_lirpa_runner.py"), str(job),
                        str(out)], check=True)
        return json.loads(out.read_text())


def _compare(python: str, rows: list[dict], repeats: int, threads: int | None,
             samples: int) -> None:
    cases = [{"label": r["label"], "onnx": str(r["path"]), "lower": r["lo"].reshape(-1).tolist(),
              "upper": r["hi"].reshape(-1).tolist()} for r in rows]
    theirs = _auto_lirpa(python, cases, repeats, threads)
    print(f"\nauto_LiRPA {theirs['version']} (torch {theirs['torch']}) on the same boxes; "
          "ratio = ours / theirs (width < 1: ours tighter; time < 1: ours faster); "
          f"sound = no violation on {samples} sampled points + centre (onnxruntime)\n")
    print("| network | method | ours width | theirs width | width ratio | ours time "
          "| theirs time | time ratio | sound (ours/theirs) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row, case in zip(rows, theirs["cases"]):
        if "error" in case:
            print(f"| {row['label']} | all | | {case['error'][:60]} | | | | | |")
            continue
        ys = _onnx_outputs(row["path"], row["lo"], row["hi"], samples)
        note = f" (model error {case['max_model_error']:.1e})"
        for method in METHODS:
            ours, other = row[method], case[THEIRS[method]]
            if ours is None or "error" in other:
                print(f"| {row['label']} | {method} | | {other.get('error', '')[:60]} "
                      "| | | | | |")
                continue
            w_o = float(np.mean(ours["upper"] - ours["lower"]))
            w_t = float(np.mean(np.subtract(other["upper"], other["lower"])))
            v_o = _violation(ys, ours["lower"], ours["upper"])
            v_t = _violation(ys, other["lower"], other["upper"])
            sound = "/".join("yes" if v == 0 else f"NO ({v:.1e})" for v in (v_o, v_t))
            print(f"| {row['label']}{note} | {method} | {w_o:.4g} | {w_t:.4g} | "
                  f"{w_o / w_t:.3f} | {ours['seconds'] * 1e3:.1f} ms | "
                  f"{other['seconds'] * 1e3:.1f} ms | {ours['seconds'] / other['seconds']:.2f} "
                  f"| {sound} |")
            note = ""
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--compare-auto-lirpa", metavar="PYTHON", default=None)
    parser.add_argument("--samples", type=int, default=200,
                        help="sampled points per box for the sound check of --compare")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    print()
    print("| network | inputs | IBP width | IBP time | CROWN width | CROWN time "
          "| alpha-CROWN width | alpha-CROWN time |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for label, path, spec in NETWORKS:
        if not path.exists():
            print(f"| {label} | (absent) | | | | | | |")
            continue
        model = load_model(path)
        lo, hi = _box(model, spec)
        row = {"label": label, "path": path, "lo": lo, "hi": hi}
        cells = []
        for method in METHODS:
            config = BoundConfig(method=method)
            try:
                seconds, res = _time(lambda: compute_bounds(model.graph, lo, hi, config=config,
                                                             device=device), args.repeats)
            except UnsupportedBoundError as exc:
                cells += ["unsupported", str(exc)[:30]]
                row[method] = None
                continue
            width = float((res.upper - res.lower).mean())
            row[method] = {"lower": res.lower[0].cpu().numpy(), "upper": res.upper[0].cpu().numpy(),
                           "seconds": seconds}
            cells += [f"{width:.4g}", f"{seconds * 1e3:.1f} ms"]
        rows.append(row)
        print(f"| {label} | {model.n_inputs} | " + " | ".join(cells) + " |")
        sys.stdout.flush()
    if args.compare_auto_lirpa:
        _compare(args.compare_auto_lirpa, rows, args.repeats, args.threads, args.samples)
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
