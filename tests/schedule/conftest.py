"""Small real subproblems from the example networks, and one shared worker pool."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hybridver.backends import Limits, Status, get_backend
from hybridver.encode.subproblems import exact_subproblems, subproblem_bounds
from hybridver.problem import Subproblem
from hybridver.specs import InputBox
from tests.conftest import EXAMPLES


@dataclasses.dataclass
class Instance:
    model: object
    spec: object
    problems: list[Subproblem]


def load(onnx: str, vnnlib: str) -> Instance:
    from hybridver.api import load_model, load_spec

    model = load_model(EXAMPLES / onnx)
    spec = load_spec(EXAMPLES / vnnlib, model)
    return Instance(model, spec, [p for _, _, p in exact_subproblems(model.graph, spec)])


def to_input_dtype(problem: Subproblem, x: np.ndarray, dtype) -> np.ndarray:
    """``x`` rounded to ``dtype``, moved one ulp inwards where rounding left the box."""
    xm = np.asarray(x, dtype=dtype).reshape(-1)
    hi = xm.astype(np.float64) > problem.box.upper
    xm[hi] = np.nextafter(xm[hi], np.asarray(-np.inf, dtype=dtype))
    lo = xm.astype(np.float64) < problem.box.lower
    xm[lo] = np.nextafter(xm[lo], np.asarray(np.inf, dtype=dtype))
    return xm


def violates(instance: Instance, problem: Subproblem, x: np.ndarray) -> bool:
    """Does the real model (onnxruntime) at ``x`` (rounded to its input dtype, into the
    box) violate ``problem``: inside its box, and ``C y + d <= 0`` on every row?"""
    model = instance.model
    xm = to_input_dtype(problem, x, model.input_dtype)
    if not problem.box.contains(xm.astype(np.float64)):
        return False
    y = np.asarray(model.real_model(xm.reshape(1, *model.graph.input_node.shape)),
                   dtype=np.float64).reshape(-1)
    return bool(np.all(problem.constraints.C @ y + problem.constraints.d <= 0))


def around(problem: Subproblem, x: np.ndarray, radius: float, label: str) -> Subproblem:
    """The part of ``problem`` within ``radius`` of ``x`` (interval node bounds)."""
    lo = np.maximum(problem.box.lower, x - radius)
    hi = np.minimum(problem.box.upper, x + radius)
    box = InputBox(lo, hi)
    return Subproblem(problem.graph, box, problem.constraints,
                      subproblem_bounds(problem.graph, box), case=problem.case,
                      disjunct=problem.disjunct, label=label)


@pytest.fixture(scope="session")
def tiny() -> Instance:
    return load("tiny_relu.onnx", "tiny_relu.vnnlib")


@pytest.fixture(scope="session")
def digits_sat() -> Instance:
    return load("digits_relu.onnx", "digits_relu_eps_large_2.vnnlib")


@pytest.fixture(scope="session")
def hidden_cex(digits_sat):
    """``(subproblem, x)``: a sub-box of a digits disjunct with a real counterexample ``x``
    inside (found by OR-Tools, confirmed with onnxruntime); small enough (about 8 unstable
    ReLUs) that every back end, z3 included, decides it in about a second."""
    backend = get_backend("ortools")
    for problem in digits_sat.problems:
        outcome = backend.solve(problem, Limits(time_s=10))
        if outcome.status is Status.CANDIDATE and \
                violates(digits_sat, problem, outcome.candidate.x):
            x = to_input_dtype(problem, outcome.candidate.x,
                               digits_sat.model.input_dtype).astype(np.float64)
            sub = around(problem, x, 0.05 * float(np.max(problem.box.upper - problem.box.lower)),
                         f"{problem.label} around a counterexample")
            assert violates(digits_sat, sub, x)
            return sub, x
    pytest.skip("no counterexample found to hide")


@pytest.fixture(scope="session")
def pool():
    """One 2-worker pool for the whole session (workers take ~2 s to start)."""
    from hybridver.schedule import LocalProcessExecutor

    executor = LocalProcessExecutor(max_workers=2, grace_s=2.0)
    executor.warm_up()
    yield executor
    executor.shutdown()
