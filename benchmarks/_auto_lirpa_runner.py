"""auto_LiRPA side of ``benchmarks/bounds.py --compare-auto-lirpa PYTHON`` (run in that interpreter).

    PYTHON benchmarks/_auto_lirpa_runner.py JOB.json OUT.json

Runs in auto_LiRPA's own environment, never imports hybridver, and is used only by that
benchmark.  ``JOB.json``: ``{"repeats": r, "iterations": k, "threads": t, "cases":
[{"label", "onnx", "lower", "upper"}, ...]}`` (boxes flattened, one box per case).  Each
network is rebuilt as a torch module from its ONNX weights (the small op set of the
benchmark networks: Gemm, MatMul, Add, Sub, Mul, Div, Relu, Sigmoid, Tanh, Flatten, Reshape,
Conv, Concat, Constant, Identity); its outputs are checked against onnxruntime on points of
the box (``max_model_error``).  Then IBP, CROWN and alpha-CROWN (``k`` iterations, auto_LiRPA's
other defaults) bound every output; ``OUT.json`` gets per case and method the lower and upper
bounds and the median time of ``r`` calls after one warm-up call (the wrapped module is
built once, outside the timing).
"""

from __future__ import annotations

import gzip
import json
import statistics
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from torch import nn


def _load(path: str) -> bytes:
    data = open(path, "rb").read()
    return gzip.decompress(data) if path.endswith(".gz") else data


class OnnxModule(nn.Module):
    """Interprets one ONNX graph with torch ops (initializers become buffers)."""

    def __init__(self, model: onnx.ModelProto):
        super().__init__()
        graph = model.graph
        self.consts: dict[str, str] = {}
        for i, init in enumerate(graph.initializer):
            self.register_buffer(f"c{i}", torch.tensor(numpy_helper.to_array(init).copy()))
            self.consts[init.name] = f"c{i}"
        inits = {i.name for i in graph.initializer}
        self.input = [i.name for i in graph.input if i.name not in inits][0]
        self.output = graph.output[0].name
        self.nodes = []
        for node in graph.node:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "Constant":
                k = len(self.consts)
                self.register_buffer(f"c{k}", torch.tensor(numpy_helper.to_array(attrs["value"])))
                self.consts[node.output[0]] = f"c{k}"
                continue
            self.nodes.append((node.op_type, list(node.input), node.output[0], attrs))

    def _value(self, env: dict, name: str):
        return env[name] if name in env else getattr(self, self.consts[name])

    def forward(self, x):
        env = {self.input: x}
        for op, ins, out, at in self.nodes:
            v = [self._value(env, i) for i in ins if i]
            if op == "Gemm":
                a = v[0].t() if at.get("transA", 0) else v[0]
                b = v[1].t() if at.get("transB", 0) else v[1]
                y = at.get("alpha", 1.0) * a.matmul(b)
                env[out] = y + at.get("beta", 1.0) * v[2] if len(v) > 2 else y
            elif op == "MatMul":
                env[out] = v[0].matmul(v[1])
            elif op in ("Add", "Sub", "Mul", "Div"):
                env[out] = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul,
                            "Div": torch.div}[op](v[0], v[1])
            elif op in ("Relu", "Sigmoid", "Tanh"):
                env[out] = {"Relu": torch.relu, "Sigmoid": torch.sigmoid,
                            "Tanh": torch.tanh}[op](v[0])
            elif op == "Flatten":
                env[out] = torch.flatten(v[0], at.get("axis", 1))
            elif op == "Reshape":
                shape = [int(s) for s in v[1].tolist()]
                shape = [v[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
                env[out] = v[0].reshape(shape)
            elif op == "Conv":
                pads = at.get("pads", [0, 0, 0, 0])
                env[out] = nn.functional.conv2d(
                    v[0], v[1], v[2] if len(v) > 2 else None, at.get("strides", 1),
                    (pads[0], pads[1]), at.get("dilations", 1), at.get("group", 1))
            elif op == "Concat":
                env[out] = torch.cat(v, at["axis"])
            elif op == "Identity":
                env[out] = v[0]
            else:
                raise NotImplementedError(f"runner: ONNX op {op} not supported")
        return env[self.output]


def _timed(fn, repeats: int):
    result = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def run_case(case: dict, repeats: int, iterations: int) -> dict:
    from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm

    proto = onnx.load_from_string(_load(case["onnx"]))
    module = OnnxModule(proto).eval()
    in_info = [i for i in proto.graph.input if i.name == module.input][0]
    shape = [d.dim_value or 1 for d in in_info.type.tensor_type.shape.dim]
    lo = torch.tensor(case["lower"], dtype=torch.float32).reshape(shape)
    hi = torch.tensor(case["upper"], dtype=torch.float32).reshape(shape)
    session = ort.InferenceSession(proto.SerializeToString())
    rng = np.random.default_rng(0)
    error = 0.0
    for _ in range(16):  # the torch rebuild must compute what onnxruntime computes
        x = (lo + (hi - lo) * torch.tensor(rng.random(shape), dtype=torch.float32)).numpy()
        want = session.run(None, {module.input: x})[0]
        with torch.no_grad():
            got = module(torch.tensor(x)).numpy()
        error = max(error, float(np.abs(got.reshape(-1) - want.reshape(-1)).max()))
    bounded = BoundedModule(module, torch.zeros(shape), device="cpu",
                            bound_opts={"optimize_bound_args": {"iteration": iterations}},
                            verbose=0)
    out = {"max_model_error": error}
    for method in ("IBP", "CROWN", "alpha-CROWN"):
        def call():
            x = BoundedTensor((lo + hi) / 2, PerturbationLpNorm(norm=np.inf, x_L=lo, x_U=hi))
            return bounded.compute_bounds(x=(x,), method=method)
        try:
            seconds, (lb, ub) = _timed(call, repeats)
        except Exception as exc:  # report, do not stop the other methods
            out[method] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
            continue
        out[method] = {"lower": lb.detach().reshape(-1).tolist(),
                       "upper": ub.detach().reshape(-1).tolist(), "seconds": seconds}
    return out


def main() -> None:
    job = json.load(open(sys.argv[1]))
    torch.set_num_threads(job.get("threads") or torch.get_num_threads())
    import auto_LiRPA
    results = {"version": auto_LiRPA.__version__, "torch": torch.__version__, "cases": []}
    for case in job["cases"]:
        try:
            results["cases"].append(run_case(case, job["repeats"], job["iterations"]))
        except Exception as exc:
            results["cases"].append({"error": f"{type(exc).__name__}: {exc}"[:300]})
    json.dump(results, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
