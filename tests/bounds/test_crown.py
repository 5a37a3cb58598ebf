"""CROWN: exact values on hand-made nets, a dense reference implementation, generic linear
ops, tightness against IBP, batching, restrictions, and refusal of unsupported nodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hybridver
from hybridver.bounds import BoundConfig, UnsupportedBoundError, compute_bounds
from hybridver.bounds.intervals import interval_bounds, spec_row_lower_bounds
from hybridver.ir import NetworkGraph, Node, OpKind, evaluate, evaluate_all

F64 = BoundConfig(dtype="float64")


def mlp(widths: list[int], seed: int = 0, act: OpKind = OpKind.RELU) -> NetworkGraph:
    """Random MLP ``widths[0] -> ... -> widths[-1]`` with ``act`` between LINEAR layers."""
    rng = np.random.default_rng(seed)
    nodes = [Node("x", OpKind.INPUT, shape=(1, widths[0]))]
    prev = "x"
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        nodes.append(Node(f"l{i}", OpKind.LINEAR, (prev,), consts={
            "weight": rng.normal(size=(b, a)) / np.sqrt(a), "bias": rng.normal(size=b) * 0.3},
            shape=(1, b)))
        prev = f"l{i}"
        if i < len(widths) - 2:
            nodes.append(Node(f"a{i}", act, (prev,), shape=(1, b)))
            prev = f"a{i}"
    return NetworkGraph(nodes, ["x"], [prev])


def sample_box(lower: np.ndarray, upper: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` uniform points of the box plus its corners when the dimension is <= 10."""
    rng = np.random.default_rng(seed)
    pts = lower + rng.random((n, lower.size)) * (upper - lower)
    if lower.size <= 10:
        corners = np.array(np.meshgrid(*[[a, b] for a, b in zip(lower, upper)])
                           ).reshape(lower.size, -1).T
        pts = np.concatenate([pts, corners])
    return pts


def assert_contains(graph: NetworkGraph, result, points: np.ndarray, C=None, d=None,
                    batch: int = 0) -> None:
    y = evaluate(graph, points.reshape(-1, *graph.input_node.shape)).reshape(len(points), -1)
    y = y.numpy()
    rows = y if C is None else y @ np.asarray(C).T + (0 if d is None else np.asarray(d))
    low = result.lower[batch].numpy()
    assert np.all(rows >= low), f"below lower bound by {float(np.max(low - rows))}"
    if result.upper is not None:
        up = result.upper[batch].numpy()
        assert np.all(rows <= up), f"above upper bound by {float(np.max(rows - up))}"


# ----------------------------------------------------------------------------- exact values
def _two_relu_net() -> NetworkGraph:
    return NetworkGraph([
        Node("x", OpKind.INPUT, shape=(1, 2)),
        Node("h", OpKind.LINEAR, ("x",), consts={"weight": np.array([[1.0, 1.0], [1.0, -1.0]])},
             shape=(1, 2)),
        Node("r", OpKind.RELU, ("h",), shape=(1, 2)),
        Node("y", OpKind.LINEAR, ("r",), consts={"weight": np.array([[1.0, 1.0]])},
             shape=(1, 1)),
    ], ["x"], ["y"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_hand_computed_crown_value(dtype):
    """y = relu(x1 + x2) + relu(x1 - x2) on [-1, 1]^2, h in [-2, 2]^2.  ReLU upper chord
    0.5 h + 1, so CROWN gives y <= x1 + 2 <= 3 (IBP: 4; true max 2).  CROWN's lower line
    (slope 1, as u >= -l) gives y >= 2 x1 >= -2, worse than IBP's 0: the result is the
    intersection [0, 3]."""
    g = _two_relu_net()
    r = compute_bounds(g, [[-1.0, -1.0]], [[1.0, 1.0]], config=BoundConfig(dtype=dtype))
    tol = 1e-12 if dtype == "float64" else 1e-4  # float32: relaxation margin ~ 64 ulp
    assert float(r.lower[0, 0]) == pytest.approx(0.0, abs=tol)
    assert float(r.upper[0, 0]) == pytest.approx(3.0, abs=tol)
    assert float(r.lower[0, 0]) <= 0.0 and float(r.upper[0, 0]) >= 3.0  # margin outward
    ibp = compute_bounds(g, [[-1.0, -1.0]], [[1.0, 1.0]], config=BoundConfig(method="ibp"))
    assert float(ibp.upper[0, 0]) == pytest.approx(4.0, abs=1e-12)


def test_purely_linear_graph_is_exact_over_many_ops():
    """For an affine network, CROWN's bound is the exact minimum over the box."""
    rng = np.random.default_rng(3)
    nodes = [
        Node("x", OpKind.INPUT, shape=(1, 2, 4, 4)),
        Node("c", OpKind.CONV, ("x",), {"strides": (1, 1), "pads": (1, 0, 0, 1)},
             {"weight": rng.normal(size=(3, 2, 2, 2)), "bias": rng.normal(size=3)},
             shape=(1, 3, 4, 4)),
        Node("bn", OpKind.BATCH_NORM, ("c",), {"epsilon": 1e-5}, {
            "scale": rng.normal(size=3), "bias": rng.normal(size=3),
            "mean": rng.normal(size=3), "var": rng.random(3) + 0.5}, shape=(1, 3, 4, 4)),
        Node("ct", OpKind.CONV_TRANSPOSE, ("bn",), {"strides": (2, 2), "pads": (1, 1, 1, 1)},
             {"weight": rng.normal(size=(3, 2, 3, 3))}, shape=(1, 2, 7, 7)),
        Node("ap", OpKind.AVERAGE_POOL, ("ct",), {"kernel_shape": (2, 2), "strides": (2, 2),
                                                  "pads": (0, 0, 0, 0)}, shape=(1, 2, 3, 3)),
        Node("up", OpKind.UPSAMPLE, ("ap",), {"scales": (1, 1, 2, 2)}, shape=(1, 2, 6, 6)),
        Node("pd", OpKind.PAD, ("up",), {"pads": (0, 0, 1, 0, 0, 0, 0, 1), "value": 0.5},
             shape=(1, 2, 7, 7)),
        Node("sl", OpKind.SLICE, ("pd",), {"starts": (1, 0), "ends": (7, 7), "axes": (2, 3),
                                           "steps": (2, 3)}, shape=(1, 2, 3, 3)),
        Node("tr", OpKind.TRANSPOSE, ("sl",), {"perm": (0, 3, 2, 1)}, shape=(1, 3, 3, 2)),
        Node("rs", OpKind.RESHAPE, ("tr",), shape=(1, 18)),
        Node("ga", OpKind.GATHER, ("rs",), {"axis": 1}, {"indices": np.array([0, 5, 5, 17, 3])},
             shape=(1, 5)),
        Node("k", OpKind.CONSTANT, consts={"value": rng.normal(size=(5, 4))}, shape=(5, 4)),
        Node("mm", OpKind.MATMUL, ("ga", "k"), shape=(1, 4)),
        Node("neg", OpKind.NEG, ("mm",), shape=(1, 4)),
        Node("s2", OpKind.SLICE, ("rs",), {"starts": (2,), "ends": (6,), "axes": (1,),
                                           "steps": (1,)}, shape=(1, 4)),
        Node("add", OpKind.ADD, ("neg", "s2"), shape=(1, 4)),
        Node("sub", OpKind.SUB, ("add", "mm"), shape=(1, 4)),
        Node("three", OpKind.CONSTANT, consts={"value": np.array([3.0, -2.0, 0.5, 4.0])},
             shape=(4,)),
        Node("dv", OpKind.DIV, ("sub", "three"), shape=(1, 4)),
        Node("cond", OpKind.CONSTANT, consts={"value": np.array([1, 0, 1, 0])}, shape=(4,)),
        Node("wh", OpKind.WHERE, ("cond", "dv", "add"), shape=(1, 4)),
        Node("ex", OpKind.EXPAND, ("wh",), shape=(2, 4)),
        Node("cat", OpKind.CONCAT, ("ex", "ex"), {"axis": 0}, shape=(4, 4)),
        Node("rsum", OpKind.REDUCE_SUM, ("cat",), {"axes": (1,), "keepdims": False}, shape=(4,)),
        Node("rm", OpKind.REDUCE_MEAN, ("cat",), {"axes": (0,), "keepdims": True},
             shape=(1, 4)),
        Node("gap_in", OpKind.RESHAPE, ("rm",), shape=(1, 1, 2, 2)),
        Node("gap", OpKind.GLOBAL_AVERAGE_POOL, ("gap_in",), shape=(1, 1, 1, 1)),
        Node("gflat", OpKind.RESHAPE, ("gap",), shape=(1,)),
        Node("out", OpKind.CONCAT, ("rsum", "gflat"), {"axis": 0}, shape=(5,)),
    ]
    g = NetworkGraph(nodes, ["x"], ["out"])
    c = rng.normal(size=32)
    lo, hi = c - 0.3, c + 0.3
    r = compute_bounds(g, lo[None], hi[None], config=F64)
    # exact extremes of an affine map over a box: the Jacobian's signs pick the corner
    x0 = torch.tensor(c.reshape(1, 1, 2, 4, 4), requires_grad=True)
    jac = torch.autograd.functional.jacobian(lambda t: evaluate(g, t).reshape(-1), x0)
    jac = jac.reshape(5, 32).numpy()
    y0 = evaluate(g, c.reshape(1, 1, 2, 4, 4)).reshape(-1).numpy()
    exact_lo = y0 - np.abs(jac) @ (hi - lo) / 2
    exact_hi = y0 + np.abs(jac) @ (hi - lo) / 2
    np.testing.assert_allclose(r.lower[0].numpy(), exact_lo, atol=1e-9)
    np.testing.assert_allclose(r.upper[0].numpy(), exact_hi, atol=1e-9)
    assert np.all(r.lower[0].numpy() <= exact_lo + 1e-12)
    assert np.all(r.upper[0].numpy() >= exact_hi - 1e-12)
    r32 = compute_bounds(g, lo[None], hi[None])
    assert_contains(g, r32, sample_box(lo, hi, 2000))


# ----------------------------------------------------------------------------- reference
def dense_crown(graph_widths: list[int], seed: int, lo: np.ndarray, hi: np.ndarray,
                C: np.ndarray) -> np.ndarray:
    """Textbook CROWN for an MLP made by :func:`mlp` (float64, no rounding margin):
    intermediate bounds by CROWN on the neurons IBP leaves unstable, intersected with IBP;
    adaptive ReLU lower slope (1 where u >= -l)."""
    g = mlp(graph_widths, seed)
    Ws = [np.asarray(g.node(f"l{i}").consts["weight"]) for i in range(len(graph_widths) - 1)]
    bs = [np.asarray(g.node(f"l{i}").consts["bias"]) for i in range(len(graph_widths) - 1)]

    def back(A: np.ndarray, layer: int, relax: list) -> np.ndarray:
        """Lower bound of A z_layer (pre-activation of layer ``layer``) over the box."""
        const = A @ bs[layer]
        A = A @ Ws[layer]
        for k in range(layer - 1, -1, -1):
            sl, su, bu = relax[k]
            pos, neg = np.clip(A, 0, None), np.clip(A, None, 0)
            const = const + neg @ bu
            A = pos * sl + neg * su
            const = const + A @ bs[k]
            A = A @ Ws[k]
        return const + np.clip(A, 0, None) @ lo + np.clip(A, None, 0) @ hi

    relax = []
    prev_l, prev_u = lo, hi
    for layer in range(len(Ws) - 1):
        W, b = Ws[layer], bs[layer]
        # IBP of this layer from the previous layer's (post-activation) box
        c, r = (prev_l + prev_u) / 2, (prev_u - prev_l) / 2
        ibp_l, ibp_u = W @ c + b - np.abs(W) @ r, W @ c + b + np.abs(W) @ r
        n = W.shape[0]
        # like the engine: CROWN only for neurons that IBP leaves unstable (tightening a
        # stable ReLU changes its relaxation nowhere)
        crossing = (ibp_l < 0) & (ibp_u > 0)
        l = np.where(crossing, np.maximum(ibp_l, back(np.eye(n), layer, relax)), ibp_l)
        u = np.where(crossing, np.minimum(ibp_u, -back(-np.eye(n), layer, relax)), ibp_u)
        unstable = (l < 0) & (u > 0)
        su = np.where(unstable, u / np.where(unstable, u - l, 1), (l >= 0).astype(float))
        bu = np.where(unstable, -su * l, 0.0)
        sl = np.where(unstable, (u >= -l).astype(float), (l >= 0).astype(float))
        relax.append((sl, su, bu))
        prev_l, prev_u = np.maximum(l, 0), np.maximum(u, 0)
    return back(C, len(Ws) - 1, relax)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_dense_reference_crown(seed):
    widths = [4, 12, 12, 12, 3]
    g = mlp(widths, seed)
    rng = np.random.default_rng(seed)
    c = rng.normal(size=4)
    lo, hi = c - 0.4, c + 0.4
    C = rng.normal(size=(5, 3))
    r = compute_bounds(g, lo[None], hi[None], C, config=F64, bound_upper=False)
    ref = dense_crown(widths, seed, lo, hi, C)
    ibp = spec_row_lower_bounds(interval_bounds(g, lo[None], hi[None])[g.outputs[0]], C,
                                np.zeros(5))[0].numpy()
    np.testing.assert_allclose(r.lower[0].numpy(), np.maximum(ref, ibp), rtol=1e-9, atol=1e-9)
    assert_contains(g, r, sample_box(lo, hi, 3000), C)


# ----------------------------------------------------------------------------- ordering
@pytest.mark.parametrize("act", [OpKind.RELU, OpKind.SIGMOID, OpKind.TANH])
def test_never_looser_than_ibp(act):
    g = mlp([6, 20, 20, 4], 5, act)
    rng = np.random.default_rng(5)
    c = rng.normal(size=6)
    for eps in (0.01, 0.3, 2.0):
        lo, hi = (c - eps)[None], (c + eps)[None]
        ibp = interval_bounds(g, lo, hi)[g.outputs[0]]
        r = compute_bounds(g, lo, hi)
        tol = 1e-9 * (1 + ibp.upper.abs() + ibp.lower.abs())
        assert torch.all(r.lower >= ibp.lower.reshape(1, -1) - tol)
        assert torch.all(r.upper <= ibp.upper.reshape(1, -1) + tol)
        assert_contains(g, r, sample_box(lo[0], hi[0], 2000))


# ----------------------------------------------------------------------------- batching
@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_batch_equals_one_by_one(method):
    g = mlp([5, 16, 16, 3], 7)
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(6, 5))
    eps = np.array([0.05, 0.3, 1.0, 0.2, 0.02, 0.6])[:, None]
    lo, hi = centres - eps, centres + eps
    C = rng.normal(size=(6, 4, 3))  # one spec per subdomain
    cfg = BoundConfig(method=method)
    together = compute_bounds(g, lo, hi, C, config=cfg)
    for b in range(6):
        alone = compute_bounds(g, lo[b:b + 1], hi[b:b + 1], C[b], config=cfg)
        torch.testing.assert_close(together.lower[b], alone.lower[0], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(together.upper[b], alone.upper[0], rtol=1e-6, atol=1e-6)
        for name in ("l0", "l1"):
            torch.testing.assert_close(together.intervals[name].lower[b],
                                       alone.intervals[name].lower[0], rtol=1e-6, atol=1e-6)


def test_memory_chunking_gives_same_bounds():
    g = mlp([5, 16, 16, 3], 8)
    lo, hi = -np.ones((3, 5)), np.ones((3, 5))
    full = compute_bounds(g, lo, hi)
    tiny = compute_bounds(g, lo, hi, config=BoundConfig(memory_limit_bytes=2000))
    torch.testing.assert_close(full.lower, tiny.lower, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(full.upper, tiny.upper, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- restrictions
def test_restrictions_tighten_and_stay_sound():
    g = mlp([3, 10, 10, 2], 11)
    lo, hi = -np.ones((1, 3)), np.ones((1, 3))
    base = compute_bounds(g, lo, hi)
    pre = base.intervals["l0"]
    crossing = np.nonzero(((pre.lower < 0) & (pre.upper > 0))[0, 0].numpy())[0]
    assert crossing.size >= 2
    j, k = crossing[:2]
    r_lo, r_hi = pre.lower.clone(), pre.upper.clone()
    r_lo[0, 0, j] = 0.0          # neuron j active
    r_hi[0, 0, k] = 0.0          # neuron k inactive
    res = compute_bounds(g, lo, hi, restrictions={"l0": (r_lo, r_hi)})
    assert torch.all(res.lower >= base.lower - 1e-6) and torch.all(res.upper <= base.upper + 1e-6)
    assert bool((res.lower > base.lower + 1e-6).any() or (res.upper < base.upper - 1e-6).any())
    pts = sample_box(lo[0], hi[0], 20000)
    h = evaluate_all(g, pts.reshape(-1, 1, 3))["l0"][:, 0].numpy()
    keep = (h[:, j] >= 0) & (h[:, k] <= 0)
    assert keep.sum() > 100
    assert_contains(g, res, pts[keep])
    for method in ("ibp", "alpha-crown"):
        other = compute_bounds(g, lo, hi, restrictions={"l0": (r_lo, r_hi)},
                               config=BoundConfig(method=method))
        assert_contains(g, other, pts[keep])


def test_contradictory_restrictions_mark_subdomain_infeasible():
    g = mlp([3, 6, 2], 12)
    lo, hi = -np.ones((2, 3)), np.ones((2, 3))
    r_lo = torch.full((2, 1, 6), -np.inf, dtype=torch.float64)
    r_hi = torch.full((2, 1, 6), np.inf, dtype=torch.float64)
    r_lo[1, 0, 0], r_hi[1, 0, 0] = 1e6, 1e6 + 1  # unreachable value
    res = compute_bounds(g, lo, hi, restrictions={"l0": (r_lo, r_hi)})
    assert res.infeasible.tolist() == [False, True]
    assert torch.isinf(res.lower[1]).all() and torch.isfinite(res.lower[0]).all()


# ----------------------------------------------------------------------------- unsupported
def test_relaxation_failure_is_unsupported():
    """Reciprocal of an interval containing 0 has no sound finite bound: refuse."""
    g = NetworkGraph([Node("x", OpKind.INPUT, shape=(1, 2)),
                      Node("y", OpKind.RECIPROCAL, ("x",), shape=(1, 2))], ["x"], ["y"])
    for method in ("ibp", "crown", "alpha-crown"):
        with pytest.raises(UnsupportedBoundError):
            compute_bounds(g, [[-1.0, 0.5]], [[1.0, 1.0]], config=BoundConfig(method=method))


def test_log_reaching_zero_is_unsupported_for_crown():
    g = NetworkGraph([Node("x", OpKind.INPUT, shape=(1, 2)),
                      Node("y", OpKind.LOG, ("x",), shape=(1, 2))], ["x"], ["y"])
    with pytest.raises(UnsupportedBoundError):
        compute_bounds(g, [[0.0, 0.5]], [[1.0, 1.0]])


def test_node_without_relaxation_is_unsupported_or_cut(monkeypatch):
    import hybridver.bounds.plan as plan

    monkeypatch.setattr(plan, "get_relaxation", lambda op: None)
    g = mlp([3, 8, 2], 13, OpKind.SIGMOID)  # a fresh graph: plans are cached per graph
    lo, hi = -np.ones((1, 3)), np.ones((1, 3))
    with pytest.raises(UnsupportedBoundError, match="no linear rule"):
        compute_bounds(g, lo, hi)
    cut = compute_bounds(g, lo, hi, config=BoundConfig(interval_fallback=True))
    assert_contains(g, cut, sample_box(lo[0], hi[0], 3000))


def test_variable_exponent_is_unsupported():
    g = NetworkGraph([Node("x", OpKind.INPUT, shape=(1, 2)),
                      Node("p", OpKind.POW, ("x", "x"), shape=(1, 2))], ["x"], ["p"])
    with pytest.raises(UnsupportedBoundError):
        compute_bounds(g, [[1.0, 1.0]], [[2.0, 2.0]])


def test_residual_fan_out_and_products_are_sound():
    """Fan-out into a residual ADD and a MUL of two variables (McCormick planes)."""
    rng = np.random.default_rng(21)
    nodes = [
        Node("x", OpKind.INPUT, shape=(1, 4)),
        Node("a", OpKind.LINEAR, ("x",), consts={"weight": rng.normal(size=(4, 4))},
             shape=(1, 4)),
        Node("r", OpKind.RELU, ("a",), shape=(1, 4)),
        Node("b", OpKind.LINEAR, ("r",), consts={"weight": rng.normal(size=(4, 4)),
                                                 "bias": rng.normal(size=4)}, shape=(1, 4)),
        Node("res", OpKind.ADD, ("b", "x"), shape=(1, 4)),
        Node("t", OpKind.TANH, ("res",), shape=(1, 4)),
        Node("prod", OpKind.MUL, ("t", "r"), shape=(1, 4)),
        Node("sq", OpKind.MUL, ("a", "a"), shape=(1, 4)),
        Node("out", OpKind.ADD, ("prod", "sq"), shape=(1, 4)),
    ]
    g = NetworkGraph(nodes, ["x"], ["out"])
    c = rng.normal(size=4)
    lo, hi = c - 0.5, c + 0.5
    for method in ("crown", "alpha-crown"):
        r = compute_bounds(g, lo[None], hi[None], config=BoundConfig(method=method))
        assert_contains(g, r, sample_box(lo, hi, 5000))


# ----------------------------------------------------------------------------- CLI
def test_bounds_command_prints_and_writes_json(tmp_path, capsys):
    import argparse
    import json

    from hybridver.commands.bounds import add_parser
    from tests.conftest import EXAMPLES

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "b.json"
    args = parser.parse_args(["bounds", str(EXAMPLES / "tiny_relu.onnx"),
                              str(EXAMPLES / "tiny_relu.vnnlib"), "--method", "alpha-crown",
                              "--json", str(out)])
    assert args.handler(args) == 0
    report = json.loads(out.read_text())
    assert set(report) >= {"method", "lower", "upper", "spec_lower", "spec_upper", "time_s"}
    assert len(report["lower"]) == 2 and len(report["spec_lower"]) == 1
    assert report["spec_lower"][0] > 0  # alpha-CROWN proves the tiny property (unsat)
    assert all(lo <= hi for lo, hi in zip(report["lower"], report["upper"]))
    printed = capsys.readouterr().out
    assert "y[1]" in printed and "row[0]" in printed


def test_input_coefficients_of_an_affine_network_are_its_matrix():
    """CROWN's input slopes (a branching aid) of ``C (W x + b)`` are exactly ``C W``."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 4).double()
    graph = hybridver.from_module(layer, torch.zeros(1, 3, dtype=torch.float64)).graph
    C = np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 1.0]])
    lo, hi = -np.ones((2, 3)), np.ones((2, 3))
    result = compute_bounds(graph, lo, hi, C, config=BoundConfig(method="crown", dtype="float64"),
                            bound_upper=False, input_coefficients=True)
    expected = C @ layer.weight.detach().numpy()
    assert result.input_coef.shape == (2, 2, 3)
    np.testing.assert_allclose(result.input_coef[0].numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(result.input_coef[1].numpy(), expected, rtol=1e-12)
