"""alpha-beta-CROWN: split multipliers on restricted neurons are sound (sampling over the
restricted set, ReLU and sigmoid, float32 and float64), never looser than CROWN, and prove
what intervals alone cannot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hybridver.api import load_model, load_spec
from hybridver.bounds import AlphaConfig, BoundConfig, compute_bounds
from hybridver.bounds.crown import backward
from hybridver.bounds.intermediate import build_state
from hybridver.bounds.plan import get_plan
from hybridver.bounds.state import SplitConstraints
from hybridver.ir import NetworkGraph, Node, OpKind, evaluate_all
from tests.bounds.test_crown import mlp
from tests.conftest import EXAMPLES

DTYPES = ("float32", "float64")


def beta_config(dtype: str = "float32", **alpha) -> BoundConfig:
    return BoundConfig(method="alpha-beta-crown", dtype=dtype, alpha=AlphaConfig(**alpha))


def random_restrictions(graph: NetworkGraph, points: np.ndarray, n: int, per_node: int,
                        seed: int, zero: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``n`` domains, each restricting ``per_node`` random neurons of every pre-activation
    node (the inputs of the nonlinear nodes) to one side of a split point: 0 (``zero``)
    or the sampled median of the neuron, so that a good share of ``points`` satisfy them."""
    rng = np.random.default_rng(seed)
    values = evaluate_all(graph, points.reshape(-1, *graph.input_node.shape))
    pres = [node.inputs[0] for node in graph.nodes()
            if node.op in (OpKind.RELU, OpKind.SIGMOID, OpKind.TANH)]
    out = {}
    for pre in pres:
        shape = graph.node(pre).shape
        v = values[pre].reshape(len(points), -1).numpy()
        lo = np.full((n, v.shape[1]), -np.inf)
        hi = np.full((n, v.shape[1]), np.inf)
        varying = np.nonzero(v.min(0) < v.max(0))[0]
        for b in range(n):
            for j in rng.choice(varying, size=min(per_node, len(varying)), replace=False):
                p = 0.0 if zero and v[:, j].min() < 0 < v[:, j].max() else float(np.median(v[:, j]))
                if rng.random() < 0.5:
                    hi[b, j] = p
                else:
                    lo[b, j] = p
        out[pre] = (lo.reshape(n, *shape), hi.reshape(n, *shape))
    return out


def check_restricted_soundness(graph, lower, upper, C, d, points, restrictions, config):
    """Every sampled point satisfying a domain's restrictions respects its bounds; returns
    the result and how many (point, domain) pairs were checked."""
    n = next(iter(restrictions.values()))[0].shape[0]
    res = compute_bounds(graph, np.repeat(lower[None], n, 0), np.repeat(upper[None], n, 0),
                         C, d, config=config, restrictions=restrictions)
    values = evaluate_all(graph, points.reshape(-1, *graph.input_node.shape))
    y = values[graph.output_node.name].reshape(len(points), -1).numpy()
    rows = y @ C.T + d
    checked = 0
    for b in range(n):
        keep = np.ones(len(points), dtype=bool)
        for name, (lo, hi) in restrictions.items():
            v = values[name].reshape(len(points), -1).numpy()
            keep &= np.all((v >= lo[b].reshape(-1)) & (v <= hi[b].reshape(-1)), axis=1)
        if bool(res.infeasible[b]):
            assert not keep.any(), "a satisfied domain was called infeasible"
            continue
        if keep.any():
            checked += int(keep.sum())
            low = res.lower[b].numpy()
            assert np.all(rows[keep] >= low), f"below by {float(np.max(low - rows[keep]))}"
            assert np.all(rows[keep] <= res.upper[b].numpy())
    return res, checked


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act,zero", [(OpKind.RELU, True), (OpKind.RELU, False),
                                      (OpKind.SIGMOID, False)])
def test_beta_sound_on_random_nets(dtype, act, zero):
    for seed in range(3):
        graph = mlp([4, 12, 12, 3], seed, act)
        rng = np.random.default_rng(seed)
        centre = rng.normal(size=4) * 0.3
        lower, upper = centre - 1.0, centre + 1.0
        points = lower + rng.random((20000, 4)) * (upper - lower)
        restr = random_restrictions(graph, points, 6, 3, seed, zero)
        C = rng.normal(size=(3, 3))
        d = rng.normal(size=3)
        _, checked = check_restricted_soundness(graph, lower, upper, C, d, points, restr,
                                                beta_config(dtype, iterations=15, patience=0,
                                                            beta_lr=0.2))
        assert checked > 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("net,spec", [("digits_relu.onnx", "digits_relu_eps_large_2.vnnlib"),
                                      ("digits_sigmoid.onnx",
                                       "digits_sigmoid_eps_large_2.vnnlib"),
                                      ("tiny_relu.onnx", "tiny_relu.vnnlib")])
def test_beta_sound_on_examples(dtype, net, spec):
    model = load_model(EXAMPLES / net)
    case = load_spec(EXAMPLES / spec, model).cases[0]
    C = np.concatenate([dj.C for dj in case.disjuncts])
    d = np.concatenate([dj.d for dj in case.disjuncts])
    lower, upper = case.region.lower, case.region.upper
    rng = np.random.default_rng(1)
    points = lower + rng.random((6000, lower.size)) * (upper - lower)
    restr = random_restrictions(model.graph, points, 4, 2, 1, zero=False)
    _, checked = check_restricted_soundness(model.graph, lower, upper, C, d, points, restr,
                                            beta_config(dtype, iterations=10, patience=0,
                                                        beta_lr=0.2))
    assert checked > 0


def test_beta_never_looser_than_crown():
    graph = mlp([5, 16, 16, 3], 1)
    rng = np.random.default_rng(5)
    lower, upper = -np.ones(5), np.ones(5)
    points = lower + rng.random((4000, 5)) * 2
    restr = random_restrictions(graph, points, 8, 4, 5, zero=True)
    lo8, hi8 = np.repeat(lower[None], 8, 0), np.repeat(upper[None], 8, 0)
    C = np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]])
    crown = compute_bounds(graph, lo8, hi8, C, restrictions=restr)
    # alpha-beta-CROWN extends alpha-CROWN with fixed intermediate bounds
    final_only = BoundConfig(method="alpha-crown",
                             alpha=AlphaConfig(optimize_intermediate=False))
    alpha = compute_bounds(graph, lo8, hi8, C, restrictions=restr, config=final_only)
    beta = compute_bounds(graph, lo8, hi8, C, restrictions=restr, config=beta_config())
    assert torch.all(beta.lower >= crown.lower) and torch.all(beta.upper <= crown.upper)
    # the multipliers start at 0 (alpha-CROWN's first iterate) and help on these splits
    assert float(beta.lower.sum()) > float(alpha.lower.sum())
    assert beta.stats["split_nodes"] == 2
    # without restrictions alpha-beta-CROWN is alpha-CROWN
    plain_a = compute_bounds(graph, lower[None], upper[None], C, config=final_only)
    plain_b = compute_bounds(graph, lower[None], upper[None], C, config=beta_config())
    assert torch.equal(plain_a.lower, plain_b.lower)


def skip_net() -> NetworkGraph:
    """``y = relu(x) + x + 0.1`` on ``x in [-1, 1]``: positive wherever ``x >= 0``."""
    return NetworkGraph([
        Node("x", OpKind.INPUT, shape=(1, 1)),
        Node("z", OpKind.LINEAR, ("x",), consts={"weight": np.array([[1.0]]),
                                                 "bias": np.zeros(1)}, shape=(1, 1)),
        Node("a", OpKind.RELU, ("z",), shape=(1, 1)),
        Node("s", OpKind.ADD, ("a", "x"), shape=(1, 1)),
        Node("y", OpKind.LINEAR, ("s",), consts={"weight": np.array([[1.0]]),
                                                 "bias": np.array([0.1])}, shape=(1, 1))],
        ["x"], ["y"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_beta_proves_what_intervals_cannot(dtype):
    """With ``z >= 0`` the only neuron is stable (relu(z) = z exactly), yet the interval
    bound ignores that the constraint also bounds the skip connection ``x``: CROWN and
    alpha-CROWN give ``max(2 * (-1), 0 + (-1)) + 0.1`` (CROWN meets IBP); the multiplier of
    ``z >= 0`` proves ``y >= 0.1``."""
    graph = skip_net()
    restr = {"z": (np.zeros((1, 1, 1)), np.full((1, 1, 1), np.inf))}
    lo, hi = -np.ones((1, 1)), np.ones((1, 1))
    for method in ("crown", "alpha-crown"):
        res = compute_bounds(graph, lo, hi, restrictions=restr,
                             config=BoundConfig(method=method, dtype=dtype))
        assert float(res.lower[0, 0]) < -0.8
    res = compute_bounds(graph, lo, hi, restrictions=restr,
                         config=beta_config(dtype, iterations=60, beta_lr=0.2))
    assert float(res.lower[0, 0]) > 0.0
    assert float(res.lower[0, 0]) <= 0.1  # the true minimum (at x = 0)
    # the other side (z <= 0: y = x + 0.1 >= -0.9) is not proven, and stays sound
    res = compute_bounds(graph, lo, hi, restrictions={"z": (np.full((1, 1, 1), -np.inf),
                                                            np.zeros((1, 1, 1)))},
                         config=beta_config(dtype, iterations=60, beta_lr=0.2))
    assert -0.9 - 1e-6 <= float(res.lower[0, 0]) + 1e-12 and float(res.lower[0, 0]) <= -0.9


@pytest.mark.parametrize("dtype", DTYPES)
def test_any_multiplier_is_sound(dtype):
    """Random multipliers of any sign and size (projected inside the backward pass) give
    sound bounds, the rounding margin included, on a restricted random net."""
    graph = mlp([3, 10, 10, 2], 7)
    rng = np.random.default_rng(7)
    lower, upper = -np.ones(3), np.ones(3)
    points = lower + rng.random((30000, 3)) * 2
    restr = random_restrictions(graph, points, 4, 4, 7, zero=False)
    config = BoundConfig(method="crown", dtype=dtype)
    plan = get_plan(graph, config.torch_dtype, torch.device("cpu"))
    r = {k: (torch.as_tensor(a), torch.as_tensor(b)) for k, (a, b) in restr.items()}
    state = build_state(plan, config, torch.as_tensor(np.repeat(lower[None, None], 4, 0)),
                        torch.as_tensor(np.repeat(upper[None, None], 4, 0)), r, True)
    assert set(state.splits) == set(restr)
    values = evaluate_all(graph, points.reshape(-1, 1, 3))
    y = values["l2"].reshape(len(points), -1).numpy()
    lam = torch.as_tensor(rng.normal(size=(2, 4, 1, 2)), dtype=config.torch_dtype)
    for trial in range(5):
        splits = {k: (torch.as_tensor(rng.normal(size=(2, *sc.lower.shape)) * 3.0,
                                      dtype=config.torch_dtype), sc)
                  for k, sc in state.splits.items()}
        low = backward(state, "l2", lam, splits=splits)
        for b in range(4):
            keep = np.ones(len(points), dtype=bool)
            for name, (lo, hi) in restr.items():
                v = values[name].reshape(len(points), -1).numpy()
                keep &= np.all((v >= lo[b].reshape(-1)) & (v <= hi[b].reshape(-1)), axis=1)
            rows = y[keep] @ lam[:, b, 0].double().numpy().T
            assert np.all(rows >= low[:, b].numpy())


def test_split_constraints_projection():
    sc = SplitConstraints(torch.zeros(1, 3, dtype=torch.float64),
                          torch.zeros(1, 3, dtype=torch.float64),
                          torch.tensor([[True, False, False]]),
                          torch.tensor([[False, True, False]]))
    beta = torch.tensor([[[-1.0, -1.0, -1.0]], [[1.0, 1.0, 1.0]]])
    assert sc.project(beta).tolist() == [[[-1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]]
