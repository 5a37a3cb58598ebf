"""The SMT encoding (``hybridver.encode.smt``): exact rationals, known answers, tight
margins where float rounding would decide the verdict, the SMT-LIB2 export read back by z3,
splits, the exactness of every piecewise-linear op at a point, and smooth ops through
sound envelopes (checked against dense sampling)."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch

from hybridver.backends.z3_backend import encode_smt, z3_value
from hybridver.encode.affine_form import NotEncodableError, interval_node_bounds
from hybridver.encode.smt import (outward, rational, smt_linear, smt_number, smt_script,
                                  to_smt2)
from hybridver.ir import NetworkGraph, Node, OpKind
from hybridver.ir.evaluate import evaluate
from hybridver.problem import Subproblem
from hybridver.specs import InputBox, OutputConstraints

z3 = pytest.importorskip("z3")


# ---------------------------------------------------------------------- helpers
def mlp(layers: list[tuple[np.ndarray, np.ndarray]], act: OpKind = OpKind.RELU,
        attrs: dict | None = None) -> NetworkGraph:
    """Dense layers with ``act`` between them (none after the last)."""
    n_in = layers[0][0].shape[1]
    nodes = [Node("x", OpKind.INPUT, shape=(1, n_in))]
    prev = "x"
    for i, (W, b) in enumerate(layers):
        W, b = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)
        nodes.append(Node(f"l{i}", OpKind.LINEAR, (prev,), consts={"weight": W, "bias": b},
                          shape=(1, W.shape[0])))
        prev = f"l{i}"
        if i < len(layers) - 1:
            nodes.append(Node(f"a{i}", act, (prev,), attrs=attrs or {}, shape=(1, W.shape[0])))
            prev = f"a{i}"
    return NetworkGraph(nodes, ["x"], [prev])


def problem(graph: NetworkGraph, lower, upper, C, d, splits=None, bounds=None) -> Subproblem:
    box = InputBox(np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64))
    return Subproblem(graph, box, OutputConstraints(np.asarray(C, dtype=np.float64),
                                                    np.asarray(d, dtype=np.float64)),
                      node_bounds=bounds or {}, relu_splits=splits or {})


def solve(p: Subproblem, timeout_ms: int = 20000):
    """(z3 answer, exact input values, exact output values) for the encoding of ``p``."""
    enc = encode_smt(p)
    solver = z3.Solver(ctx=enc.context)
    solver.set("timeout", timeout_ms)
    solver.add(enc.assertions)
    answer = solver.check()
    if answer != z3.sat:
        return answer, None, None
    model = solver.model()
    return (answer, [z3_value(model, v) for v in enc.inputs],
            [z3_value(model, v) for v in enc.outputs])


def net_out(graph: NetworkGraph, x) -> np.ndarray:
    """float64 outputs ``(batch, n_out)`` of the IR."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    return evaluate(graph, x.reshape(x.shape[0], *graph.input_node.shape)).reshape(
        x.shape[0], -1).numpy()


def abs_diff_net() -> NetworkGraph:
    """``y = relu(x1 - x2) + relu(x2 - x1) = |x1 - x2|``: max 2 on [-1, 1]^2 at two corners."""
    return mlp([(np.array([[1.0, -1.0], [-1.0, 1.0]]), np.zeros(2)),
                (np.array([[1.0, 1.0]]), np.zeros(1))])


# ---------------------------------------------------------------------- exact rationals
def test_float32_weight_round_trips_exactly():
    w = np.float32(0.1)
    q = rational(float(w))
    assert q == Fraction(13421773, 134217728) and float(q) == float(w)
    ctx = z3.Context()
    (eq,) = z3.parse_smt2_string(f"(declare-fun v () Real)(assert (= v {smt_number(float(w))}))",
                                 ctx=ctx)
    assert Fraction(z3.simplify(eq.arg(1)).as_fraction()) == q
    # negative, integral and tiny values too
    for value in (-3.0, 0.0, -np.float32(1e-30), 2.0 ** -1074, -float(np.float32(7.3))):
        text = smt_number(value)
        (eq,) = z3.parse_smt2_string(f"(declare-fun v () Real)(assert (= v {text}))", ctx=ctx)
        assert Fraction(z3.simplify(eq.arg(1)).as_fraction()) == Fraction(float(value))
    with pytest.raises(NotEncodableError):
        rational(float("inf"))


def test_network_weights_appear_exactly_in_the_script():
    w = float(np.float32(0.1))
    graph = mlp([(np.array([[w, -w]]), np.array([float(np.float32(-0.7))]))])
    text = to_smt2(problem(graph, [0, 0], [1, 1], [[-1.0]], [0.0]))
    assert "(/ 13421773.0 134217728.0)" in text                  # +-0.1f exactly
    assert smt_number(float(np.float32(-0.7))) in text
    assert smt_linear([(Fraction(1), "a"), (Fraction(-1), "b")], Fraction(1, 2)) == \
        "(+ a (- b) (/ 1.0 2.0))"


def test_outward_rounding_contains_the_interval():
    rng = np.random.default_rng(0)
    for lo, hi in rng.normal(size=(200, 2)) * 10.0 ** rng.integers(-8, 8, size=(200, 1)):
        lo, hi = min(lo, hi), max(lo, hi)
        a, b = outward(lo, hi)
        assert a <= Fraction(lo) and Fraction(hi) <= b
        assert b - a <= Fraction(hi - lo) + Fraction(max(abs(lo), abs(hi))) * Fraction(2, 2 ** 7)
        assert len(str(a.denominator)) < 25 and len(str(b.denominator)) < 25


# ---------------------------------------------------------------------- known answers
@pytest.mark.parametrize("threshold, expected", [(1.5, "sat"), (2.0, "sat"),
                                                 (2.0 + 2.0 ** -40, "unsat"), (2.5, "unsat")])
def test_relu_net_with_known_answer(threshold, expected):
    graph = abs_diff_net()
    p = problem(graph, [-1, -1], [1, 1], [[-1.0]], [threshold])   # y >= threshold
    answer, x, y = solve(p)
    assert str(answer) == expected
    if answer == z3.sat:
        assert abs(x[0] - x[1]) == y[0] >= Fraction(threshold)      # exact witness
        assert all(-1 <= v <= 1 for v in x)


def test_tight_margin_where_float64_cancellation_would_lie():
    """y = relu(2^53 x1 + x2 - 2^53 x3) with x1 = x3 = 1: summed left to right in float64,
    2^53 + 1 rounds to 2^53 and y(x2 = 1) comes out 0, but it is 1 exactly; 'y >= 1' is sat
    at the boundary (and only there)."""
    big = 2.0 ** 53
    graph = mlp([(np.array([[big, 1.0, -big]]), np.zeros(1)), (np.array([[1.0]]), np.zeros(1))])
    assert (big * 1.0 + 1.0) - big * 1.0 == 0.0                      # float64 loses it
    p = problem(graph, [1, 0, 1], [1, 1, 1], [[-1.0]], [1.0])
    answer, x, y = solve(p)
    assert answer == z3.sat and y[0] == 1 and x[1] == 1
    answer, _, _ = solve(problem(graph, [1, 0, 1], [1, 1, 1], [[-1.0]], [1.0 + 2.0 ** -30]))
    assert answer == z3.unsat


def test_tight_margin_decided_by_exact_rationals():
    """y = relu(0.1f x1) + relu(0.2f x2) on [0, 0.3]^2: the true max M is a rational that is
    not a float64; thresholds at float64 neighbours of M get the verdict of exact arithmetic."""
    w1, w2, top = float(np.float32(0.1)), float(np.float32(0.2)), 0.3
    graph = mlp([(np.array([[w1, 0.0], [0.0, w2]]), np.zeros(2)),
                 (np.array([[1.0, 1.0]]), np.zeros(1))])
    M = Fraction(w1) * Fraction(top) + Fraction(w2) * Fraction(top)
    c = float(M)
    assert Fraction(c) != M
    for threshold in (np.nextafter(c, -1.0), c, np.nextafter(c, 2.0)):
        answer, _, y = solve(problem(graph, [0, 0], [top, top], [[-1.0]], [threshold]))
        assert (answer == z3.sat) == (M >= Fraction(float(threshold)))
        if answer == z3.sat:
            assert y[0] >= Fraction(float(threshold))


def test_hidden_counterexample_is_found():
    """A steep bump: y >= 1/2 only on a diamond of radius 2^-13 around a random point."""
    rng = np.random.default_rng(5)
    p1, p2 = (float(np.float32(v)) for v in rng.uniform(0.1, 0.9, 2))
    K = 4096.0
    graph = mlp([(np.array([[1.0, 0], [-1.0, 0], [0, 1.0], [0, -1.0]]),
                  np.array([-p1, p1, -p2, p2])),
                 (np.array([[-K, -K, -K, -K]]), np.array([1.0]))])
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 200), np.linspace(0, 1, 200)), -1).reshape(-1, 2)
    assert net_out(graph, grid).max() < 0.5                            # sampling misses it
    answer, x, y = solve(problem(graph, [0, 0], [1, 1], [[-1.0]], [0.5]))
    assert answer == z3.sat and y[0] >= Fraction(1, 2)
    assert net_out(graph, [float(v) for v in x])[0, 0] >= 0.5 - 1e-9


def test_multiple_rows_are_a_conjunction():
    graph = abs_diff_net()
    # y >= 1 and y <= 1.5: sat;  y >= 1.5 and y <= 1: unsat
    assert solve(problem(graph, [-1, -1], [1, 1], [[-1.0], [1.0]], [1.0, -1.5]))[0] == z3.sat
    assert solve(problem(graph, [-1, -1], [1, 1], [[-1.0], [1.0]], [1.5, -1.0]))[0] == z3.unsat
    # zero rows: 'true', any input is a counterexample
    assert solve(problem(graph, [-1, -1], [1, 1], np.zeros((0, 1)), np.zeros(0)))[0] == z3.sat


# ---------------------------------------------------------------------- SMT-LIB2 export
def _random_relu_net(seed: int, n_in: int = 3, width: int = 4) -> NetworkGraph:
    rng = np.random.default_rng(seed)
    f32 = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731
    return mlp([(f32(rng.normal(size=(width, n_in))), f32(0.3 * rng.normal(size=width))),
                (f32(rng.normal(size=(width, width)) / 2), f32(0.3 * rng.normal(size=width))),
                (f32(rng.normal(size=(1, width))), np.zeros(1))])


@pytest.mark.parametrize("seed", range(4))
def test_smt2_export_read_back_gives_the_same_verdict(seed):
    graph = _random_relu_net(seed)
    rng = np.random.default_rng(100 + seed)
    ys = net_out(graph, rng.uniform(-1, 1, (4000, 3)))[:, 0]
    for threshold in (ys.max() - 0.05, ys.max() + 1.0):
        p = problem(graph, -np.ones(3), np.ones(3), [[-1.0]], [threshold])
        direct, _, _ = solve(p)
        text = to_smt2(p)
        assert "(set-logic QF_LRA)" in text and "(check-sat)" in text
        solver = z3.Solver(ctx=z3.Context())
        solver.from_string(text)
        assert solver.check() == direct
        # the script run as a whole, as an external solver would
        ctx = z3.Context()   # keep a reference: the call only borrows it
        output = z3.Z3_eval_smtlib2_string(ctx.ref(), text)
        assert output.split()[0] == str(direct)
        if direct == z3.sat:   # with (get-value) of the inputs on request
            text = smt_script(p).text(get_values=True)
            ctx2 = z3.Context()
            output = z3.Z3_eval_smtlib2_string(ctx2.ref(), text)
            assert output.startswith("sat") and "(x_0 " in output


def test_smt2_export_needs_no_z3():
    code = ("import sys, numpy as np\n"
            "from hybridver.encode.smt import to_smt2\n"
            "from hybridver.ir import NetworkGraph, Node, OpKind\n"
            "from hybridver.problem import Subproblem\n"
            "from hybridver.specs import InputBox, OutputConstraints\n"
            "g = NetworkGraph([Node('x', OpKind.INPUT, shape=(1, 1)),\n"
            "                  Node('r', OpKind.RELU, ('x',), shape=(1, 1))], ['x'], ['r'])\n"
            "p = Subproblem(g, InputBox(-np.ones(1), np.ones(1)),\n"
            "               OutputConstraints(-np.ones((1, 1)), np.array([0.5])))\n"
            "text = to_smt2(p)\n"
            "assert '(check-sat)' in text and '(or ' in text\n"
            "assert 'z3' not in sys.modules, 'z3 imported'\n")
    from tests.conftest import REPO
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


# ---------------------------------------------------------------------- splits and bounds
def test_splits_are_honoured():
    graph = abs_diff_net()
    base = dict(lower=[-1, -1], upper=[1, 1], C=[[-1.0]], d=[0.5])     # y >= 0.5
    both_off = {"a0": np.array([-1, -1], dtype=np.int8)}
    assert solve(problem(graph, **base, splits=both_off))[0] == z3.unsat
    first_on = {"a0": np.array([1, -1], dtype=np.int8)}
    answer, x, y = solve(problem(graph, **base, splits=first_on))
    assert answer == z3.sat and x[0] - x[1] >= Fraction(1, 2)        # x1 - x2 >= 0 branch
    second_on = {"a0": np.array([0, 1], dtype=np.int8)}
    answer, x, _ = solve(problem(graph, **base, splits=second_on))
    assert answer == z3.sat and x[1] - x[0] >= 0
    # a split is applied even where the bounds call the neuron stable
    bounds = interval_node_bounds(graph, np.array([0.5, -1.0]), np.array([1.0, -0.5]))
    p = problem(graph, [0.5, -1], [1, -0.5], [[-1.0]], [0.5],
                splits={"a0": np.array([-1, 0], dtype=np.int8)}, bounds=bounds)
    assert solve(p)[0] == z3.unsat


def test_given_bounds_are_used_and_completed():
    graph = abs_diff_net()
    full = interval_node_bounds(graph, -np.ones(2), np.ones(2))
    assert smt_script(problem(graph, [-1, -1], [1, 1], [[-1.0]], [0.5])).n_unstable == 2
    # a tighter (sound on a sub-box) bound for l0 only: the rest comes from intervals
    sub = interval_node_bounds(graph, np.array([0.5, -1.0]), np.array([1.0, -0.5]))
    p = problem(graph, [0.5, -1], [1, -0.5], [[-1.0]], [0.5], bounds={"l0": sub["l0"]})
    assert smt_script(p).n_unstable == 0
    assert solve(p)[0] == z3.sat
    assert set(full) >= {"l0", "a0", "l1"}


# ---------------------------------------------------------------------- every PL op is exact
def _pool_net() -> NetworkGraph:
    rng = np.random.default_rng(2)
    nodes = [Node("x", OpKind.INPUT, shape=(1, 1, 4, 4)),
             Node("c", OpKind.CONV, ("x",), consts={"weight": rng.normal(size=(2, 1, 3, 3)),
                                                    "bias": rng.normal(size=2)},
                  attrs={"strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1),
                         "group": 1}, shape=(1, 2, 4, 4)),
             Node("p", OpKind.MAX_POOL, ("c",), attrs={"kernel_shape": (3, 3), "strides": (2, 2),
                                                       "pads": (1, 1, 1, 1)}, shape=(1, 2, 2, 2)),
             Node("f", OpKind.RESHAPE, ("p",), shape=(1, 8)),
             Node("o", OpKind.LINEAR, ("f",), consts={"weight": rng.normal(size=(2, 8))},
                  shape=(1, 2))]
    return NetworkGraph(nodes, ["x"], ["o"])


def _two_piece_net(op: OpKind, attrs: dict) -> NetworkGraph:
    rng = np.random.default_rng(7)
    return mlp([(rng.normal(size=(5, 2)), rng.normal(size=5) * 0.2),
                (rng.normal(size=(4, 5)), rng.normal(size=4) * 0.2),
                (rng.normal(size=(2, 4)), np.zeros(2))], act=op, attrs=attrs)


@pytest.mark.parametrize("graph", [
    _two_piece_net(OpKind.RELU, {}), _two_piece_net(OpKind.LEAKY_RELU, {"alpha": 0.125}),
    _two_piece_net(OpKind.LEAKY_RELU, {"alpha": 3.0}), _two_piece_net(OpKind.ABS, {}),
    _pool_net()], ids=["relu", "leaky", "leaky_concave", "abs", "maxpool"])
def test_piecewise_linear_ops_are_exact_at_a_point_and_on_a_box(graph):
    n = graph.input_node.size
    rng = np.random.default_rng(1)
    for x0 in rng.uniform(-1, 1, (3, n)):
        v = net_out(graph, x0)[0]
        p0 = problem(graph, x0, x0, np.zeros((0, v.size)), np.zeros(0))
        assert smt_script(p0).exact
        # the output is pinned to the network's value: y_0 >= v + 1e-6 is unsat, etc.
        for sign in (1.0, -1.0):
            row = np.zeros((1, v.size))
            row[0, 0] = -sign
            assert solve(problem(graph, x0, x0, row, [sign * (v[0] + sign * 1e-6)]))[0] \
                == z3.unsat
        answer, x, y = solve(p0)
        assert answer == z3.sat
        np.testing.assert_allclose([float(t) for t in y], v, rtol=1e-9, atol=1e-9)
    # on a box every model is a true input/output pair, and unsat survives sampling
    rng_c = rng.normal(size=(1, v.size))
    # (the conv/pool net on a small box off-centre: at 0 all its pooled values tie)
    center, radius = (rng.uniform(-1, 1, n), 0.1) if n > 4 else (np.zeros(n), 1.0)
    samples = net_out(graph, rng.uniform(center - radius, center + radius, (3000, n))) @ rng_c[0]
    for d in (-np.median(samples), 0.01 - samples.min()):     # c.y <= median; <= min - 0.01
        answer, x, y = solve(problem(graph, center - radius, center + radius, rng_c, [d]))
        if answer == z3.sat:
            real = net_out(graph, [float(t) for t in x])[0]
            np.testing.assert_allclose([float(t) for t in y], real, rtol=1e-9, atol=1e-9)
        else:
            assert answer == z3.unsat and not np.any(samples + d <= 0)


# ---------------------------------------------------------------------- smooth ops
def _smooth_relaxation(op: OpKind, monkeypatch):
    """The registered relaxation of ``op``; if the registry has none yet, a simple sound
    one (monotone: constant bounds f(l), f(u)) is installed for the test."""
    from hybridver.relaxations import base
    if base.get_relaxation(op) is None:
        fn = {OpKind.SIGMOID: torch.sigmoid, OpKind.TANH: torch.tanh}[op]

        class Monotone(base.UnaryRelaxation):
            traits = base.Traits(monotone="increasing")

            def function(self, x, attrs):
                return fn(x)

            def bounds(self, lower, upper, attrs, alpha_lower=None, alpha_upper=None):
                zero = torch.zeros_like(lower)
                return base.LinearBounds(zero, fn(lower), zero, fn(upper))
        Monotone.op = op
        monkeypatch.setitem(base._REGISTRY, op, Monotone())
    return base.get_relaxation(op)


@pytest.mark.parametrize("op", [OpKind.SIGMOID, OpKind.TANH])
def test_smooth_ops_unsat_only_when_true(op, monkeypatch):
    _smooth_relaxation(op, monkeypatch)
    rng = np.random.default_rng(11)
    graph = mlp([(rng.normal(size=(3, 2)), rng.normal(size=3) * 0.3),
                 (rng.normal(size=(1, 3)), np.zeros(1))], act=op)
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 301), np.linspace(-1, 1, 301)), -1)
    ys = net_out(graph, grid.reshape(-1, 2))[:, 0]
    top = ys.max()
    assert not smt_script(problem(graph, [-1, -1], [1, 1], [[-1.0]], [0.0])).exact
    verdicts = {}
    for gap in (-0.1, -1e-3, 1e-3, 0.05, 0.5, 5.0):
        threshold = top + gap
        answer, x, _ = solve(problem(graph, [-1, -1], [1, 1], [[-1.0]], [threshold]))
        verdicts[gap] = answer
        if gap < 0:   # a sampled point is a counterexample: never unsat
            assert answer == z3.sat
        if answer == z3.unsat:
            assert not np.any(ys >= threshold)
        if answer == z3.sat:
            assert all(-1 <= v <= 1 for v in x)
    assert verdicts[5.0] == z3.unsat          # far above the range: the envelope proves it


def test_op_without_relaxation_is_not_encodable(monkeypatch):
    from hybridver.relaxations import base
    monkeypatch.setattr(base, "get_relaxation", lambda op: None)
    graph = mlp([(np.ones((2, 1)), np.zeros(2)), (np.ones((1, 2)), np.zeros(1))],
                act=OpKind.SIGMOID)
    with pytest.raises(NotEncodableError, match="sigmoid"):
        smt_script(problem(graph, [-1], [1], [[-1.0]], [0.0]))
    soft = NetworkGraph([Node("x", OpKind.INPUT, shape=(1, 2)),
                         Node("s", OpKind.SOFTMAX, ("x",), attrs={"axis": 1}, shape=(1, 2))],
                        ["x"], ["s"])
    with pytest.raises(NotEncodableError):
        smt_script(problem(soft, [-1, -1], [1, 1], [[-1.0, 0.0]], [0.9]))


def test_product_of_two_variables_through_planes():
    """y = x1 * x2 on [-1, 1]^2 (range [-1, 1], max at two corners)."""
    from hybridver.relaxations import base
    if not isinstance(base.get_relaxation(OpKind.MUL), base.BinaryRelaxation):
        pytest.skip("no binary relaxation registered for mul")
    pick = lambda name, i: Node(name, OpKind.SLICE, ("x",), attrs={  # noqa: E731
        "starts": (i,), "ends": (i + 1,), "axes": (1,), "steps": (1,)}, shape=(1, 1))
    graph = NetworkGraph([Node("x", OpKind.INPUT, shape=(1, 2)), pick("a", 0), pick("b", 1),
                          Node("m", OpKind.MUL, ("a", "b"), shape=(1, 1))], ["x"], ["m"])
    assert not smt_script(problem(graph, [-1, -1], [1, 1], [[-1.0]], [0.0])).exact
    for threshold in (0.5, 1.0):            # true counterexamples exist: never unsat
        answer, x, _ = solve(problem(graph, [-1, -1], [1, 1], [[-1.0]], [threshold]))
        assert answer == z3.sat and all(-1 <= v <= 1 for v in x)
    assert solve(problem(graph, [-1, -1], [1, 1], [[-1.0]], [1.0 + 1e-6]))[0] == z3.unsat
