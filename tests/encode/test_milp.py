"""The solver-neutral MILP encoding: soundness (every true execution of the network is a
feasible point), exactness of the piecewise-linear parts, errors, envelopes and their
refinement, the MPS/LP writers (read back with highspy), and the ``encode`` command
(safe LP bounds and LP tightening: ``tests/backends/test_lp.py``)."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch

from hybridver.api import from_module
from hybridver.encode import envelopes
from hybridver.encode.affine_form import NotEncodableError
from hybridver.encode.milp import encode_milp, format_lp, format_mps
from hybridver.ir.decompose import decompose_max_pool
from hybridver.ir.evaluate import evaluate_all
from hybridver.problem import Subproblem
from hybridver.specs import InputBox, OutputConstraints

highspy = pytest.importorskip("highspy")


def _module(*layers) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(*layers).double().eval()


class _AbsNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l1, self.l2 = torch.nn.Linear(2, 6), torch.nn.Linear(6, 2)

    def forward(self, x):
        return self.l2(torch.abs(self.l1(x)))


def _problem(module, n_in, lower=-1.0, upper=1.0, C=None, d=None, shape=None, splits=None):
    shape = shape or (1, n_in)
    graph = from_module(module, torch.zeros(*shape, dtype=torch.float64)).graph
    n_out = graph.output_node.size
    C = np.eye(1, n_out) if C is None else np.asarray(C, dtype=np.float64)
    d = np.zeros(C.shape[0]) if d is None else np.asarray(d, dtype=np.float64)
    return Subproblem(graph, InputBox(np.full(n_in, lower), np.full(n_in, upper)),
                      OutputConstraints(C, d), relu_splits=splits or {})


def _true_assignment(model, problem, x: np.ndarray) -> np.ndarray:
    """The MILP variables at the network's real execution on ``x`` (float64)."""
    graph = decompose_max_pool(problem.graph)
    values = {k: v[0].reshape(-1).numpy() for k, v in
              evaluate_all(graph, x.reshape(1, *graph.input_node.shape)).items()}
    v = np.zeros(model.n_vars)
    v[model.input_vars] = x
    for site in model.sites:
        z = values[site.operand]
        v[site.y_vars] = values[site.node]
        if site.z_vars.ndim == 1:
            v[site.z_vars] = z
        for j in range(site.aux[0], site.aux[1]):
            name = model.var_names[j]
            parts = name[1:].split("_")
            if name.startswith("d"):          # binary of a two-line (ReLU-like) element
                v[j] = 1.0 if z[int(parts[1])] > 0 else 0.0
            elif name.startswith("p"):        # envelope piece selector
                i, k = int(parts[1]), int(parts[2])
                env = next(e for e in model.envelope_sites if e.node == site.node)
                q = [env.lower[i], *env.breakpoints[i], env.upper[i]]
                inside = [a for a in range(len(q) - 1) if q[a] <= z[i] <= q[a + 1]]
                v[j] = 1.0 if k == inside[0] else 0.0
    y = values[graph.output_node.name]
    v[model.output_vars] = y
    v[model.margin_var] = np.max(model.C @ y + model.d)
    return v


def _assert_feasible(model, v, tol=1e-9):
    scale = 1.0 + np.abs(v).max()
    assert np.all(v >= model.var_lower - tol * scale), "a variable bound cuts a true point"
    assert np.all(v <= model.var_upper + tol * scale)
    Av = model.A @ v
    assert np.all(Av >= model.row_lower - tol * scale), "a row cuts a true point"
    assert np.all(Av <= model.row_upper + tol * scale)


def _samples(problem, n=200, seed=0):
    rng = np.random.default_rng(seed)
    lo, hi = problem.box.lower, problem.box.upper
    corners = np.array([lo, hi, (lo + hi) / 2])
    return np.vstack([corners, lo + (hi - lo) * rng.random((n, lo.size))])


NETS = {
    "relu": lambda: _problem(_module(torch.nn.Linear(2, 8), torch.nn.ReLU(),
                                     torch.nn.Linear(8, 8), torch.nn.ReLU(),
                                     torch.nn.Linear(8, 2)), 2, C=[[1.0, -1.0]]),
    "leaky": lambda: _problem(_module(torch.nn.Linear(2, 6), torch.nn.LeakyReLU(0.2),
                                      torch.nn.Linear(6, 1)), 2),
    "leaky_steep": lambda: _problem(_module(torch.nn.Linear(2, 6), torch.nn.LeakyReLU(3.0),
                                            torch.nn.Linear(6, 1)), 2),
    "abs": lambda: _problem(_AbsNet().double(), 2, C=[[1.0, 0.0], [0.0, -1.0]]),
    "maxpool": lambda: _problem(_module(torch.nn.Conv2d(1, 2, 2), torch.nn.ReLU(),
                                        torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                                        torch.nn.Linear(8, 2)), 25, shape=(1, 1, 5, 5),
                                C=[[1.0, -1.0]]),
    "sigmoid": lambda: _problem(_module(torch.nn.Linear(2, 5), torch.nn.Sigmoid(),
                                        torch.nn.Linear(5, 5), torch.nn.Tanh(),
                                        torch.nn.Linear(5, 1)), 2, lower=-2.0, upper=2.0),
}


@pytest.mark.parametrize("net", sorted(NETS))
def test_every_true_execution_is_feasible(net):
    problem = NETS[net]()
    model = encode_milp(problem)
    assert model.exact == (net != "sigmoid")
    for x in _samples(problem, 50 if net == "maxpool" else 200):
        _assert_feasible(model, _true_assignment(model, problem, x))


def test_true_executions_feasible_with_envelope_pieces():
    problem = NETS["sigmoid"]()
    base = encode_milp(problem)
    points = {site.node: {i: (float(site.lower[i]) * 0.3 + float(site.upper[i]) * 0.7,
                              float(site.lower[i]) * 0.6 + float(site.upper[i]) * 0.4)
                          for i in range(site.y_vars.size)} for site in base.envelope_sites}
    model = encode_milp(problem, 3, points)
    assert model.n_integer > 0
    assert all(site.breakpoints for site in model.envelope_sites)
    for x in _samples(problem, 100):
        _assert_feasible(model, _true_assignment(model, problem, x))


def _solve(model, sense=1.0, cost_index=None):
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = model.n_vars, model.n_rows
    cost = model.objective.copy() if cost_index is None else np.zeros(model.n_vars)
    if cost_index is not None:
        cost[cost_index] = sense
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, model.var_lower, model.var_upper
    lp.row_lower_, lp.row_upper_ = model.row_lower, model.row_upper
    A = model.A.tocsr()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = A.indptr, A.indices, A.data
    lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                       for i in model.integer]
    h.passModel(lp)
    h.setOptionValue("mip_rel_gap", 0.0)
    h.run()
    return h


@pytest.mark.parametrize("net", ["relu", "leaky", "leaky_steep", "abs"])
def test_piecewise_linear_encoding_is_exact(net):
    """At the MILP optimum the outputs are the network's outputs at the optimal input, and
    the optimum is no worse than dense sampling (and at most slightly better)."""
    problem = NETS[net]()
    model = encode_milp(problem)
    h = _solve(model)
    assert h.modelStatusToString(h.getModelStatus()) == "Optimal"
    v = np.asarray(h.getSolution().col_value)
    x = model.input_point(v)
    graph = problem.graph
    y = evaluate_all(graph, x.reshape(1, 1, -1))[graph.output_node.name][0].numpy().reshape(-1)
    np.testing.assert_allclose(model.predicted_output(v), y, atol=1e-6)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 201)] * 2), -1).reshape(-1, 2)
    ys = evaluate_all(graph, grid[:, None])[graph.output_node.name].numpy().reshape(len(grid), -1)
    sampled = np.max(ys @ problem.constraints.C.T + problem.constraints.d, axis=1).min()
    assert model.margin_at(v) <= sampled + 1e-6
    assert model.margin_at(v) >= sampled - 0.05


def test_relu_splits_are_honoured():
    problem = NETS["relu"]()
    model = encode_milp(problem)
    site = model.sites[0]
    lo, hi = model.var_lower[site.z_vars], model.var_upper[site.z_vars]
    i = int(np.nonzero((lo < 0) & (hi > 0))[0][0])
    for sign in (1, -1):
        split = np.zeros(site.y_vars.size, dtype=np.int8)
        split[i] = sign
        restricted = Subproblem(problem.graph, problem.box, problem.constraints,
                                relu_splits={site.node: split})
        m2 = encode_milp(restricted)
        assert m2.n_integer == model.n_integer - 1
        for direction in (1.0, -1.0):
            h = _solve(m2, direction, m2.sites[0].z_vars[i])
            value = h.getInfo().objective_function_value * direction
            assert value * sign >= -1e-7   # the pre-activation keeps the split's sign


def test_true_condition_and_labels():
    problem = NETS["relu"]()
    empty = Subproblem(problem.graph, problem.box, OutputConstraints(np.zeros((0, 2)),
                                                                     np.zeros(0)))
    model = encode_milp(empty)
    assert model.var_lower[model.margin_var] == -1.0 and math.isinf(model.margin_at(
        np.zeros(model.n_vars)))


def test_infinite_bound_on_unstable_neuron_is_an_error():
    lin = torch.nn.Linear(1, 1).double()
    with torch.no_grad():
        lin.weight.fill_(10.0)
        lin.bias.fill_(0.0)
    graph = from_module(torch.nn.Sequential(lin, torch.nn.ReLU()).double(),
                        torch.zeros(1, 1, dtype=torch.float64)).graph
    problem = Subproblem(graph, InputBox([-1e308], [1e308]), OutputConstraints([[1.0]], [0.0]))
    with pytest.raises(NotEncodableError, match="infinite"):
        encode_milp(problem)


def test_op_without_relaxation_is_an_error(monkeypatch):
    monkeypatch.setattr(envelopes, "_relaxation", lambda op: None)
    with pytest.raises(NotEncodableError, match="no MILP encoding"):
        encode_milp(NETS["sigmoid"]())


def test_unsound_cut_is_dropped(monkeypatch):
    """A broken relaxation (a 'lower' line above f) is caught by sampling and not used."""
    real = envelopes._relaxation

    class Broken:
        def __init__(self, inner):
            self.inner = inner

        def function(self, x, attrs):
            return self.inner.function(x, attrs)

        def bounds(self, lower, upper, attrs, a=None, b=None):
            lb = self.inner.bounds(lower, upper, attrs, a, b)
            return type(lb)(lb.lower_slope, lb.lower_bias + 0.5, lb.upper_slope, lb.upper_bias)

    from hybridver.relaxations.base import UnaryRelaxation
    UnaryRelaxation.register(Broken)
    monkeypatch.setattr(envelopes, "_relaxation", lambda op: Broken(real(op)))
    problem = NETS["sigmoid"]()
    model = encode_milp(problem)
    for x in _samples(problem, 50):
        _assert_feasible(model, _true_assignment(model, problem, x))


def test_refinement_cuts_off_the_spurious_point():
    problem = NETS["sigmoid"]()
    C = np.array([[-1.0]])
    problem = Subproblem(problem.graph, problem.box, OutputConstraints(C, [0.0]))
    model = encode_milp(problem)
    h = _solve(model)
    v = np.asarray(h.getSolution().col_value)
    errors = envelopes.envelope_error(model, v)
    assert errors[0][0] > 1e-6              # the LP optimum sits off the true curve
    new = envelopes.refine_breakpoints(model, v, max_new=4)
    assert new is not None and sum(len(p) for s in new.values() for p in s.values()) >= 1
    refined = encode_milp(problem, 4, new)
    assert refined.n_integer > 0
    # the old solution (extended with any piece binaries) violates the refined model
    h2 = _solve(refined)
    assert h2.getInfo().objective_function_value >= h.getInfo().objective_function_value - 1e-7
    for x in _samples(problem, 50):
        _assert_feasible(refined, _true_assignment(refined, problem, x))


@pytest.mark.parametrize("net", ["relu", "sigmoid", "maxpool"])
@pytest.mark.parametrize("fmt", ["mps", "lp"])
def test_writers_round_trip_through_highs(tmp_path, net, fmt):
    problem = NETS[net]()
    model = encode_milp(problem)
    path = tmp_path / f"model.{fmt}"
    (model.to_mps if fmt == "mps" else model.to_lp)(path)
    text = path.read_text()
    assert text == (format_mps(model) if fmt == "mps" else format_lp(model))
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    assert h.readModel(str(path)) == highspy.HighsStatus.kOk
    lp = h.getLp()
    assert lp.num_col_ == model.n_vars
    assert sum(v == highspy.HighsVarType.kInteger for v in lp.integrality_) == model.n_integer
    h.setOptionValue("mip_rel_gap", 0.0)
    h.run()
    direct = _solve(model)
    assert h.getInfo().objective_function_value == pytest.approx(
        direct.getInfo().objective_function_value, abs=1e-7)
    # every coefficient and bound reads back exactly (shortest round-trip float text)
    names = list(h.getLp().col_names_)
    order = [names.index(n) for n in model.var_names]
    np.testing.assert_array_equal(np.asarray(lp.col_lower_)[order], model.var_lower)
    np.testing.assert_array_equal(np.asarray(lp.col_upper_)[order], model.var_upper)
    assert sorted(np.abs(np.asarray(lp.a_matrix_.value_))) == sorted(np.abs(model.A.data))


def test_encode_command_writes_one_file_per_disjunct(tmp_path, capsys):
    from hybridver.commands.encode import add_parser, run_encode
    from tests.conftest import EXAMPLES

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "q.lp"
    args = parser.parse_args(["encode", str(EXAMPLES / "digits_relu.onnx"),
                              str(EXAMPLES / "digits_relu_eps_small_0.vnnlib"), "-o", str(out)])
    assert run_encode(args) == 0
    written = sorted(tmp_path.glob("q.c0d*.lp"))
    assert len(written) == 9
    assert capsys.readouterr().out.split() == [str(p) for p in sorted(
        written, key=lambda p: int(p.name.split("d")[1].split(".")[0]))]
    for path in written:   # the example is unsat: every disjunct's margin is positive
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.readModel(str(path))
        h.run()
        assert h.getInfo().mip_dual_bound > 0
    single = tmp_path / "tiny.mps"
    args = parser.parse_args(["encode", str(EXAMPLES / "tiny_relu.onnx"),
                              str(EXAMPLES / "tiny_relu.vnnlib"), "-o", str(single),
                              "--bounds", "lp"])
    assert run_encode(args) == 0 and single.exists()
