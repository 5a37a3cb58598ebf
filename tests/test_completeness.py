"""Completeness on small networks: where exact mode reaches a verdict, hybrid mode reaches
the same one (and never the opposite)."""

from __future__ import annotations

import csv

import pytest

import hybridver
from hybridver.config import ExactConfig, Mode, VerifyConfig
from hybridver.result import Verdict
from tests.conftest import EXAMPLES

DECIDED = (Verdict.SAT, Verdict.UNSAT)


def _example_instances() -> list[tuple[str, str]]:
    with (EXAMPLES / "instances.csv").open() as handle:
        return [(row[0], row[1]) for row in csv.reader(handle)]


def _both(onnx_path, vnnlib_path, timeout: float):
    model = hybridver.load_model(onnx_path)
    spec = hybridver.load_spec(vnnlib_path, model)
    exact = hybridver.verify(model, spec, VerifyConfig(timeout_s=timeout, mode=Mode.EXACT,
                                                       exact=ExactConfig(backend="highs")))
    hybrid = hybridver.verify(model, spec, VerifyConfig(timeout_s=timeout))
    return exact, hybrid


@pytest.mark.parametrize("onnx_name,vnnlib_name", _example_instances())
def test_hybrid_decides_what_exact_decides_on_the_examples(onnx_name, vnnlib_name):
    exact, hybrid = _both(EXAMPLES / onnx_name, EXAMPLES / vnnlib_name, 60)
    assert exact.verdict in DECIDED   # the examples are all within the exact mode's reach
    assert hybrid.verdict is exact.verdict


@pytest.mark.parametrize("net,prop", [("4_5", 3), ("2_1", 3), ("4_5", 4)])
def test_hybrid_decides_what_exact_decides_on_acasxu(shared_benchmarks, net, prop):
    folder = shared_benchmarks / "acasxu"
    exact, hybrid = _both(folder / f"ACASXU_run2a_{net}_batch_2000.onnx",
                          folder / f"prop_{prop}.vnnlib", 60)
    if exact.verdict in DECIDED:
        assert hybrid.verdict is exact.verdict
    assert {exact.verdict, hybrid.verdict} != {Verdict.SAT, Verdict.UNSAT}
