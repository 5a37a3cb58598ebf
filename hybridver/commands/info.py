"""``hybridver info``: structure of models, optionally checked against onnxruntime."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from hybridver.errors import HybridverInputError


def describe(graph) -> list[str]:
    """Human-readable lines about a graph: shapes, size, op counts."""
    lines = []
    for name in graph.inputs:
        lines.append(f"  input  {name!r} shape {tuple(graph.node(name).shape)}")
    for name in graph.outputs:
        lines.append(f"  output {name!r} shape {tuple(graph.node(name).shape)}")
    lines.append(f"  nodes {len(graph)}, parameters {graph.parameter_count():,}")
    ops = ", ".join(f"{op} x{count}" for op, count in sorted(graph.op_counts().items()))
    lines.append(f"  ops: {ops}")
    return lines


def _check_points(graph, check: int, seed: int, spec_path: str | None) -> np.ndarray:
    """``check`` inputs ``(check, *input_shape)``: uniform in [-1, 1], or the probe points
    of the spec's input region (:func:`~hybridver.frontends.model_check.probe_points`;
    the spec must match this model's dimensions)."""
    shape = tuple(graph.input_node.shape)
    if spec_path is None:
        return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(check, *shape))
    from hybridver.frontends.model_check import probe_points
    from hybridver.specs import load_vnnlib

    spec = load_vnnlib(spec_path, n_inputs=graph.input_node.size,
                       n_outputs=graph.output_node.size)
    return probe_points(spec, check, seed).reshape(-1, *shape)


def _first_difference(path: str, graph, points: np.ndarray) -> str | None:
    """The mismatch message naming the first node that differs (None if none is found)."""
    from hybridver.frontends.model_check import ModelMismatchError, check_model
    from hybridver.frontends.onnx import OnnxRuntimeModel
    from hybridver.frontends.onnx.runtime_check import first_differing_node

    real = OnnxRuntimeModel(path)
    try:
        check_model(graph, real, real.input_dtype, points.reshape(len(points), -1), path,
                    "onnxruntime", lambda x: first_differing_node(path, graph, x),
                    where="of the --check inputs")
    except ModelMismatchError as exc:
        return str(exc)
    return None


def run_info(models: list[str], check: int | None, seed: int,
             spec: str | None = None) -> int:
    """Describe each model; with ``check``, compare it with onnxruntime on ``check``
    inputs (uniform in [-1, 1], or probe points of ``spec``'s input region, the same spec
    for every model).  Returns 1 when some model differs, else 0."""
    from hybridver.frontends.onnx import load_onnx
    from hybridver.frontends.onnx import CHECK_TOLERANCE, compare_ir_with_onnxruntime
    from hybridver.ir.passes import simplify

    if spec is not None and not check:
        raise HybridverInputError("info: --spec is read by --check N; give both")
    for path in models + ([spec] if spec is not None else []):
        if not Path(path).exists():
            raise HybridverInputError(f"file not found: {path}")
    worst_abs = worst_rel = 0.0
    failed = []
    for path in models:
        graph = simplify(load_onnx(path))
        print(f"{path}")
        for line in describe(graph):
            print(line)
        if check:
            points = _check_points(graph, check, seed, spec)
            max_abs, max_rel = compare_ir_with_onnxruntime(path, graph, points=points)
            ok = max_rel <= CHECK_TOLERANCE
            region = "inputs" if spec is None else "points of the spec's input region"
            print(f"  check ({len(points)} {region}): max abs diff {max_abs:.3g}, "
                  f"max rel diff {max_rel:.3g} {'ok' if ok else 'MISMATCH'}")
            worst_abs, worst_rel = max(worst_abs, max_abs), max(worst_rel, max_rel)
            if not ok:
                failed.append(path)
                where = _first_difference(path, graph, points)
                if where:
                    print(f"  {where}")
        sys.stdout.flush()
    if check:
        verdict = "ok" if not failed else f"MISMATCH in {len(failed)} model(s)"
        print(f"max abs diff {worst_abs:.3g}, max rel diff {worst_rel:.3g} "
              f"(tolerance {CHECK_TOLERANCE:g} relative): {verdict}")
        return 1 if failed else 0
    return 0
