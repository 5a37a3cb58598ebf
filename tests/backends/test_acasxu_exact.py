"""Exact mode on ACAS Xu instances from ``../shared/benchmarks/acasxu`` (skipped where that
folder is absent), against ``expected_results.csv``.

Chosen to solve in seconds with LP-tightened bounds (properties 3 and 4 have small input
boxes; properties 1 and 2 on the whole box take minutes as one MILP, see
``docs/benchmarks.md``).  Back ends whose declared ``max_binaries_hint`` is below the
~30-60 binaries these instances keep after tightening (z3) are not asked.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from hybridver.backends import backend_names, get_backend
from hybridver.backends.options import ExactConfig
from hybridver.pipeline.exact import verify_exact
from hybridver.result import Verdict
from tests.conftest import SHARED_BENCHMARKS

ACAS = SHARED_BENCHMARKS / "acasxu"
INSTANCES = [("1_7", 3), ("1_7", 4), ("2_1", 4), ("1_1", 4)]


def _milp_sized() -> list[str]:
    names = []
    for name in backend_names():
        try:
            backend = get_backend(name)
        except Exception:  # noqa: BLE001 - unavailable: not part of this test
            continue
        hint = backend.capabilities.max_binaries_hint
        if hint is None or hint >= 100:
            names.append(name)
    return names


def _expected(net: str, prop: int) -> str:
    with open(ACAS / "expected_results.csv") as f:
        for row in csv.DictReader(f):
            if row["onnx"] == f"ACASXU_run2a_{net}_batch_2000.onnx" and \
                    row["vnnlib"] == f"prop_{prop}.vnnlib":
                return row["expected"]
    pytest.skip(f"no expected result for {net} prop {prop}")


@pytest.mark.parametrize("net,prop", INSTANCES, ids=[f"{n}-prop{p}" for n, p in INSTANCES])
@pytest.mark.parametrize("name", _milp_sized())
def test_acasxu_exact(shared_benchmarks, name, net, prop):
    from hybridver.api import load_model, load_spec

    onnx = ACAS / f"ACASXU_run2a_{net}_batch_2000.onnx"
    vnnlib = ACAS / f"prop_{prop}.vnnlib"
    if not (onnx.exists() and vnnlib.exists() and (ACAS / "expected_results.csv").exists()):
        pytest.skip("ACAS Xu files absent")
    expected = _expected(net, prop)
    model = load_model(onnx)
    spec = load_spec(vnnlib, model)
    result = verify_exact(model, spec, ExactConfig(backend=name), timeout_s=60.0)
    assert result.verdict.value == expected, result.message
    if result.verdict is Verdict.SAT:
        cex = result.counterexample
        y = np.asarray(model.real_model(cex.x.astype(np.float32).reshape(
            1, *model.graph.input_node.shape)),
                       dtype=np.float64).reshape(-1)
        assert spec.is_counterexample(cex.x, y)
