"""``hybridver info``: structure of models, optionally checked against onnxruntime."""

from __future__ import annotations

import sys
from pathlib import Path

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


def run_info(models: list[str], check: int | None, seed: int) -> int:
    from hybridver.frontends.onnx import load_onnx
    from hybridver.frontends.onnx import CHECK_TOLERANCE, compare_ir_with_onnxruntime
    from hybridver.ir.passes import simplify

    for path in models:
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
            max_abs, max_rel = compare_ir_with_onnxruntime(path, graph, check, seed=seed)
            ok = max_rel <= CHECK_TOLERANCE
            print(f"  check ({check} inputs): max abs diff {max_abs:.3g}, "
                  f"max rel diff {max_rel:.3g} {'ok' if ok else 'MISMATCH'}")
            worst_abs, worst_rel = max(worst_abs, max_abs), max(worst_rel, max_rel)
            if not ok:
                failed.append(path)
        sys.stdout.flush()
    if check:
        verdict = "ok" if not failed else f"MISMATCH in {len(failed)} model(s)"
        print(f"max abs diff {worst_abs:.3g}, max rel diff {worst_rel:.3g} "
              f"(tolerance {CHECK_TOLERANCE:g} relative): {verdict}")
        return 1 if failed else 0
    return 0
