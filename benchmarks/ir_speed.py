"""Import time and batched evaluation time of the IR against onnxruntime.

Usage: python benchmarks/ir_speed.py [--batch 1000] [--root ../shared/benchmarks]

Prints one row per model: file size, import time (ONNX -> simplified IR), IR float64 and
float32 evaluation time of one batch, onnxruntime time for the same batch (one call when
the model's batch dimension is dynamic, one call per sample otherwise), and the largest
relative difference (per sample, as `hybridver info --check` measures it).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from hybridver.ir.evaluate import evaluate
from hybridver.frontends.onnx import load_onnx
from hybridver.frontends.onnx import OnnxRuntimeModel
from hybridver.ir.passes import simplify

DEFAULT_MODELS = [
    "acasxu/ACASXU_run2a_1_1_batch_2000.onnx",
    "mnist_fc_2022/onnx/mnist-net_256x6.onnx.gz",
    "dist_shift_2023/onnx/mnist_concat.onnx.gz",
    "lsnc_2024/onnx/quadrotor2d_output.onnx.gz",
    "ml4acopf_2023/onnx/300_ieee_ml4acopf.onnx.gz",
    "cgan_2023/onnx/cGAN_imgSz32_nCh_3_nonlinear_activations.onnx.gz",
    "nn4sys_2023/onnx/mscn_128d.onnx.gz",
    "vit_2023/onnx/pgd_2_3_16.onnx.gz",
]


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared"
                                              / "benchmarks"))
    parser.add_argument("models", nargs="*", default=DEFAULT_MODELS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}")
    print(f"{'model':<55} {'MB':>5} {'import_s':>8} {'ir64_s':>7} {'ir32_s':>7} {'ort_s':>7}"
          f" {'max_rel':>8}")
    for name in args.models:
        path = Path(args.root) / name
        if not path.exists():
            print(f"{name:<55} (absent)")
            continue
        t0 = time.perf_counter()
        graph = simplify(load_onnx(path))
        import_s = time.perf_counter() - t0
        ort = OnnxRuntimeModel(path)
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, (args.batch, *graph.input_node.shape))
        with torch.no_grad():
            ir64 = best_of(lambda: evaluate(graph, x))
            ir32 = best_of(lambda: evaluate(graph, x, dtype=torch.float32))
            out = evaluate(graph, x).numpy()
        ort_s = best_of(lambda: ort(x), repeats=1)
        ref = ort(x)
        flat_out, flat_ref = out.reshape(len(x), -1), ref.reshape(len(x), -1)
        scale = np.maximum(1.0, np.abs(flat_ref).max(axis=1, keepdims=True))
        rel = float(np.max(np.abs(flat_out - flat_ref) / scale))  # as `info --check`
        size = path.stat().st_size / 2**20
        print(f"{name:<55} {size:>5.1f} {import_s:>8.3f} {ir64:>7.3f} {ir32:>7.3f} "
              f"{ort_s:>7.3f} {rel:>8.1e}", flush=True)


if __name__ == "__main__":
    main()
