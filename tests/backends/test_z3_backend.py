"""The z3 back end beyond the shared conformance suite: lazy import, status mapping
(candidate values, infeasible, timeout, not encodable) and concurrent solves."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from hybridver.backends import Limits, Status, backend_names, get_backend
from hybridver.backends.z3_backend import Z3Backend
from hybridver.encode.affine_form import interval_node_bounds
from hybridver.ir import NetworkGraph, Node, OpKind
from hybridver.ir.evaluate import evaluate
from hybridver.problem import Subproblem
from hybridver.specs import InputBox, OutputConstraints
from tests.conftest import REPO

pytest.importorskip("z3")


def mlp(sizes: tuple[int, ...], seed: int, act: OpKind = OpKind.RELU) -> NetworkGraph:
    """Random dense net with float32-representable weights."""
    rng = np.random.default_rng(seed)
    nodes = [Node("x", OpKind.INPUT, shape=(1, sizes[0]))]
    prev = "x"
    for i in range(len(sizes) - 1):
        W = (rng.normal(size=(sizes[i + 1], sizes[i])) / np.sqrt(sizes[i])).astype(np.float32)
        b = (0.3 * rng.normal(size=sizes[i + 1])).astype(np.float32)
        nodes.append(Node(f"l{i}", OpKind.LINEAR, (prev,), consts={
            "weight": W.astype(np.float64), "bias": b.astype(np.float64)},
            shape=(1, sizes[i + 1])))
        prev = f"l{i}"
        if i < len(sizes) - 2:
            nodes.append(Node(f"r{i}", act, (prev,), shape=(1, sizes[i + 1])))
            prev = f"r{i}"
    return NetworkGraph(nodes, ["x"], [prev])


def outputs(graph: NetworkGraph, x: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(x)
    return evaluate(graph, x.reshape(len(x), 1, -1)).reshape(len(x), -1).numpy()


def problem(graph: NetworkGraph, threshold: float, radius: float = 1.0) -> Subproblem:
    """Is there x in [-radius, radius]^n with y_0 >= threshold?"""
    n = graph.input_node.size
    box = InputBox(-radius * np.ones(n), radius * np.ones(n))
    return Subproblem(graph, box, OutputConstraints(np.array([[-1.0]]), np.array([threshold])),
                      interval_node_bounds(graph, box.lower, box.upper))


def test_registered_available_and_declared():
    assert "z3" in backend_names()
    backend = get_backend("z3")
    assert isinstance(backend, Z3Backend) and backend.is_available()
    caps = backend.capabilities
    assert caps.exact_piecewise_linear and caps.exact_arithmetic and caps.smooth_envelopes
    assert 10 <= caps.max_binaries_hint <= 40


def test_importing_the_backends_does_not_import_z3():
    code = ("import sys\n"
            "import hybridver, hybridver.backends\n"
            "from hybridver.backends import backend_names\n"
            "assert 'z3' in backend_names()\n"
            "import hybridver.backends.z3_backend, hybridver.encode.smt\n"
            "assert 'z3' not in sys.modules, 'z3 was imported'\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_candidate_is_an_exact_point_of_the_network():
    graph = mlp((2, 6, 1), seed=0)
    xs = np.random.default_rng(0).uniform(-1, 1, (2000, 2))
    top = outputs(graph, xs)[:, 0].max()
    outcome = Z3Backend().solve(problem(graph, top - 0.01), Limits(time_s=20.0))
    assert outcome.status is Status.CANDIDATE and outcome.solver_status == "sat"
    cand = outcome.candidate
    assert cand.source == "z3" and cand.x.dtype == np.float64
    assert np.all(np.abs(cand.x) <= 1.0)
    y = outputs(graph, cand.x)[0]
    np.testing.assert_allclose(cand.predicted_y, y, rtol=1e-9, atol=1e-9)
    assert y[0] >= top - 0.01 - 1e-9
    assert outcome.stats["exact_encoding"] and outcome.stats["unstable"] >= 0


def test_infeasible_when_the_threshold_is_above_the_range():
    graph = mlp((2, 6, 1), seed=1)
    outcome = Z3Backend().solve(problem(graph, 1e3), Limits(time_s=20.0))
    assert outcome.status is Status.INFEASIBLE and outcome.candidate is None


def test_time_limit_gives_timeout_not_a_wrong_verdict():
    """A net with ~120 unstable ReLUs and a known counterexample: with 0.3 s z3 cannot
    finish; whatever it says must not be INFEASIBLE, and a candidate must be genuine."""
    graph = mlp((6, 40, 40, 40, 1), seed=2)
    x0 = np.random.default_rng(2).uniform(-1, 1, (20000, 6))
    threshold = outputs(graph, x0)[:, 0].max() - 1e-6      # x0's best is a counterexample
    p = problem(graph, threshold)
    assert p.form().unstable_relus > 60
    outcome = Z3Backend().solve(p, Limits(time_s=0.3))
    assert outcome.status in (Status.TIMEOUT, Status.UNKNOWN, Status.CANDIDATE)
    if outcome.status is Status.CANDIDATE:
        assert outcome_y(graph, outcome) >= threshold - 1e-9
    else:
        assert outcome.candidate is None and outcome.message


def outcome_y(graph: NetworkGraph, outcome) -> float:
    return float(outputs(graph, outcome.candidate.x)[0, 0])


def test_time_spent_encoding_counts():
    outcome = Z3Backend().solve(problem(mlp((2, 6, 1), seed=0), 0.0), Limits(time_s=1e-9))
    assert outcome.status is Status.TIMEOUT


def test_not_encodable_is_an_error_never_a_verdict():
    nodes = [Node("x", OpKind.INPUT, shape=(1, 2)),
             Node("s", OpKind.SOFTMAX, ("x",), attrs={"axis": 1}, shape=(1, 2))]
    graph = NetworkGraph(nodes, ["x"], ["s"])
    box = InputBox(-np.ones(2), np.ones(2))
    p = Subproblem(graph, box, OutputConstraints(np.array([[-1.0, 0.0]]), np.array([0.9])))
    outcome = Z3Backend().solve(p, Limits(time_s=5.0))
    assert outcome.status is Status.ERROR and outcome.solver_status == "not_encodable"
    assert "softmax" in outcome.message


def test_smooth_candidate_is_flagged_and_unsat_is_sound():
    graph = mlp((2, 4, 1), seed=3, act=OpKind.TANH)
    xs = np.random.default_rng(3).uniform(-1, 1, (20000, 2))
    top = outputs(graph, xs)[:, 0].max()
    sat = Z3Backend().solve(problem(graph, top - 0.05), Limits(time_s=20.0))
    assert sat.status is Status.CANDIDATE and not sat.stats["exact_encoding"]
    assert "over-approximation" in sat.message
    unsat = Z3Backend().solve(problem(graph, top + 10.0), Limits(time_s=20.0))
    assert unsat.status is Status.INFEASIBLE


def test_concurrent_solves_in_threads():
    """Each encoding has its own z3 context, so back ends may run in a thread pool."""
    graph = mlp((2, 6, 1), seed=4)
    xs = np.random.default_rng(4).uniform(-1, 1, (2000, 2))
    top = outputs(graph, xs)[:, 0].max()
    jobs = [(top - 0.05, Status.CANDIDATE), (1e3, Status.INFEASIBLE)] * 3
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda job: Z3Backend().solve(problem(graph, job[0]),
                                                              Limits(time_s=20.0)), jobs))
    assert [r.status for r in results] == [s for _, s in jobs]
