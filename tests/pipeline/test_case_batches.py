"""Cases bounded and attacked in batches: a case is proven only by its own rows, one
counterexample among many cases is never lost, and batches give the per-case answers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import hybridver
from hybridver.bab.attack import AttackConfig
from hybridver.config import Schedule, StageName, VerifyConfig, WholeBoxConfig
from hybridver.pipeline.case_batches import case_batches
from hybridver.pipeline.context import RunContext
from hybridver.pipeline.whole_box import WholeBoxStage
from hybridver.result import Verdict
from hybridver.specs import InputBox, OutputConstraints, Spec, SpecCase
from hybridver.specs.vnnlib import write_vnnlib

N_IN = 6
_RNG = np.random.default_rng(3)  # the network's weights
W1 = np.round(_RNG.uniform(-1, 1, (N_IN, 8)), 2)
B1 = np.round(_RNG.uniform(-0.2, 0.2, (8,)), 2)
W2 = np.round(_RNG.uniform(-1, 1, (8, 2)), 2)


def _onnx(path: Path) -> Path:
    """``y = relu(x W1 + B1) W2``: x (1, 6) -> y (1, 2)."""
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h0"]),
             helper.make_node("Add", ["h0", "B1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h"]),
             helper.make_node("MatMul", ["h", "W2"], ["y"])]
    inits = [numpy_helper.from_array(v.astype(np.float32), k)
             for k, v in {"W1": W1, "B1": B1, "W2": W2}.items()]
    graph = helper.make_graph(nodes, "two_layer",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, N_IN])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _net(x: np.ndarray) -> np.ndarray:
    return np.maximum(x @ W1 + B1, 0) @ W2


def _spec(n_cases: int, bad: int | None, half_width: float = 1 / 64) -> Spec:
    """``n_cases`` boxes of width ``2 half_width`` in two inputs (the others fixed), with
    three output shapes in turn: ``y0 >= t`` (one row), ``y0 >= t and y1 >= s`` (two
    rows), ``y0 >= t or y1 >= s`` (two disjuncts).  Every threshold is 1 above the
    output's sampled range on the box (provable), except case ``bad``: its first row's
    threshold is below the value at the box's centre, a known counterexample."""
    rng = np.random.default_rng(n_cases)
    cases = []
    for k in range(n_cases):
        centre = np.round(rng.uniform(-1, 1, N_IN) * 512) / 512  # float32 numbers
        lower, upper = centre.copy(), centre.copy()
        lower[k % 2::3] -= half_width
        upper[k % 2::3] += half_width
        corners = _net(lower + np.random.default_rng(k).random((256, N_IN)) * (upper - lower))
        t = corners.max(axis=0) + 1.0
        if k == bad:
            t[0] = float(_net(centre)[0]) - 0.05
        row0 = OutputConstraints(np.array([[-1.0, 0.0]]), np.array([t[0]]))
        row1 = OutputConstraints(np.array([[0.0, -1.0]]), np.array([t[1]]))
        both = OutputConstraints(np.array([[-1.0, 0.0], [0.0, -1.0]]), np.array(t))
        disjuncts = [(row0,), (both,), (row0, row1)][k % 3]
        if k == bad:
            disjuncts = (row0,)
        cases.append(SpecCase(InputBox(lower, upper), disjuncts))
    return Spec(tuple(cases), N_IN, 2)


BOUNDS_ONLY = dict(attack=AttackConfig(samples=0, rounds=0),
                   schedule=Schedule(stages=(StageName.WHOLE_BOX,)))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return hybridver.load_model(_onnx(tmp_path_factory.mktemp("net") / "net.onnx"))


@pytest.mark.parametrize("case_batch", [1, 16])
def test_one_counterexample_among_fifty_cases_is_never_unsat(model, tmp_path, case_batch):
    spec = _spec(50, bad=37)
    path = write_vnnlib(spec, tmp_path / "many.vnnlib")
    spec = hybridver.load_spec(path, model)
    bounds_only = VerifyConfig(timeout_s=60, whole_box=WholeBoxConfig(case_batch=case_batch),
                               **BOUNDS_ONLY)
    result = hybridver.verify(model, spec, bounds_only)
    assert result.verdict is not Verdict.UNSAT
    full = VerifyConfig(timeout_s=60, whole_box=WholeBoxConfig(case_batch=case_batch),
                        attack_case_batch=case_batch)
    result = hybridver.verify(model, spec, full)
    assert result.verdict is Verdict.SAT
    assert result.counterexample.case == 37
    assert spec.cases[37].region.contains(result.counterexample.x)


def test_batched_pgd_finds_the_counterexample_among_fifty_cases(model):
    spec = _spec(50, bad=37)
    config = VerifyConfig(timeout_s=60, attack=AttackConfig(samples=0),
                          schedule=Schedule(stages=(StageName.PGD,)))
    result = hybridver.verify(model, spec, config)
    assert result.verdict is Verdict.SAT
    assert result.counterexample.case == 37
    assert result.counterexample.source == "pgd"


def test_the_same_fifty_cases_without_the_counterexample_are_proven(model):
    result = hybridver.verify(model, _spec(50, bad=None),
                              VerifyConfig(timeout_s=60, **BOUNDS_ONLY))
    assert result.verdict is Verdict.UNSAT
    assert result.stats["bounds"]["cases_proven"] == 50


@pytest.mark.parametrize("methods", [("ibp",), ("crown-ibp",), ("crown",)])
def test_batched_bounds_prove_the_cases_that_per_case_bounds_prove(model, methods):
    spec = _spec(30, bad=None)
    # thresholds at the box maximum plus a spread, so some cases are proven and some not
    shifted = Spec(tuple(dataclasses.replace(case, disjuncts=tuple(
        OutputConstraints(dj.C, dj.d - (0.6 + 0.4 * (k % 4))) for dj in case.disjuncts))
        for k, case in enumerate(spec.cases)), N_IN, 2)
    proven = {}
    for size in (1, 7, 64):
        config = VerifyConfig(timeout_s=60, whole_box=WholeBoxConfig(methods=methods,
                                                                     case_batch=size,
                                                                     ibp_case_batch=size),
                              **BOUNDS_ONLY)
        results = WholeBoxStage().run(RunContext(model, shifted, config),
                                      list(range(len(shifted.cases))))
        proven[size] = sorted(i for i, r in results.items() if r.status.value == "proven")
    assert proven[1] == proven[7] == proven[64]
    assert 0 < len(proven[1]) < 30


def test_batches_group_cases_of_one_output_shape():
    spec = _spec(20, bad=None)
    batches = case_batches(list(spec.cases), list(range(20)), 4)
    assert sorted(i for b in batches for i in b.indices) == list(range(20))
    for batch in batches:
        assert len(batch) <= 4
        for row, index in enumerate(batch.indices):
            case = spec.cases[index]
            assert np.array_equal(batch.lower[row], case.region.lower)
            rows = np.concatenate([dj.C for dj in case.disjuncts])
            assert np.array_equal(batch.C[row], rows)
            assert [g.stop - g.start for g in batch.groups] == [dj.n_rows
                                                               for dj in case.disjuncts]


def test_input_splitting_counts_only_the_inputs_that_vary(model):
    """Six inputs, two of which vary: input splitting (at most 2 inputs to split) takes
    the case only when fixed inputs are not counted."""
    spec = _spec(1, bad=None)
    schedule = Schedule(stages=(StageName.INPUT_SPLIT, StageName.ACTIVATION_SPLIT))
    for varying_only, split in ((True, 1), (False, 0)):
        config = VerifyConfig(timeout_s=60, input_split_max_dim=2,
                              input_split_varying_only=varying_only,
                              attack=AttackConfig(samples=0, rounds=0), schedule=schedule)
        result = hybridver.verify(model, spec, config)
        assert result.verdict is Verdict.UNSAT
        assert result.stats["input_split"]["cases"] == split


def _tight(spec: Spec, k_shift) -> Spec:
    """``spec`` with each case's thresholds lowered by ``k_shift(k)``."""
    return Spec(tuple(dataclasses.replace(case, disjuncts=tuple(
        OutputConstraints(dj.C, dj.d - k_shift(k)) for dj in case.disjuncts))
        for k, case in enumerate(spec.cases)), N_IN, 2)


def _proven_by(model, spec, **whole_box) -> list[int]:
    config = VerifyConfig(timeout_s=60, whole_box=WholeBoxConfig(split_min_cases=1,
                                                                 **whole_box),
                          **BOUNDS_ONLY)
    results = WholeBoxStage().run(RunContext(model, spec, config), list(range(len(spec.cases))))
    return sorted(i for i, r in results.items() if r.status.value == "proven")


@pytest.mark.parametrize("methods", [("crown-ibp-split",), ("crown-ibp", "crown-ibp-split")])
def test_bisection_never_proves_the_case_with_a_counterexample(model, methods):
    spec = _spec(50, bad=37)
    proven = _proven_by(model, spec, methods=methods, split_rounds=10,
                        split_max_domains=1024)
    assert 37 not in proven
    assert len(proven) == 49
    config = VerifyConfig(timeout_s=60, whole_box=WholeBoxConfig(
        methods=("crown-ibp-split",), split_min_cases=1, split_rounds=10), **BOUNDS_ONLY)
    assert hybridver.verify(model, spec, config).verdict is not Verdict.UNSAT


def test_bisection_proves_cases_one_bound_on_the_whole_box_does_not(model):
    spec = _tight(_spec(30, bad=None, half_width=1 / 8), lambda k: 0.95)
    once = _proven_by(model, spec, methods=("crown-ibp",))
    split = _proven_by(model, spec, methods=("crown-ibp-split",), split_rounds=6)
    assert set(once) < set(split)
    assert _proven_by(model, spec, methods=("crown-ibp-split",), split_rounds=0) == once
