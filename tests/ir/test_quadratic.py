"""Quadratic forms ``u^T P u`` rewritten as weighted squares (:mod:`hybridver.ir.quadratic`):
the rewrite is exact over the reals, its weights are float32 values, the bounds it gives
contain every sampled output, and a positive-definite form gets a tighter lower bound."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from hybridver.bounds import BoundConfig, compute_bounds
from hybridver.ir import evaluate
from hybridver.ir.builder import GraphBuilder
from hybridver.ir.graph import NetworkGraph
from hybridver.ir.ops import OpKind
from hybridver.ir.quadratic import (exact_float_terms, find_quadratic_forms,
                                    rewrite_quadratic_forms)


def _f32(a: np.ndarray) -> np.ndarray:
    """float32 values as float64, like the weights of a float32 ONNX file."""
    return np.asarray(a).astype(np.float32).astype(np.float64)


def _form_graph(p: np.ndarray, extra_consumer: bool = False) -> NetworkGraph:
    """x (1, n) -> u = LINEAR(x) -> y = sum(u * LINEAR(u; p)), shape (1, 1)."""
    n = p.shape[0]
    rng = np.random.default_rng(1)
    b = GraphBuilder()
    x = b.emit(OpKind.INPUT, (), (1, n), name="x")
    u = b.emit(OpKind.LINEAR, (x,), (1, n), name="u",
               consts={"weight": _f32(rng.uniform(-1, 1, (n, n))),
                       "bias": _f32(rng.uniform(-0.5, 0.5, n))})
    pu = b.emit(OpKind.LINEAR, (u,), (1, n), name="pu", consts={"weight": p})
    prod = b.emit(OpKind.MUL, (u, pu), (1, n), name="prod")
    y = b.emit(OpKind.REDUCE_SUM, (prod,), (1, 1), name="y",
               attrs={"axes": (1,), "keepdims": True})
    outputs = [y]
    if extra_consumer:
        outputs.append(b.emit(OpKind.RELU, (prod,), (1, n), name="other"))
    return NetworkGraph(b.nodes(), ["x"], outputs)


def _matrix(n: int, definite: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (n, n))
    p = a @ a.T + 0.2 * np.eye(n) if definite else a + a.T
    p = p + np.triu(rng.uniform(-0.3, 0.3, (n, n)), 1)  # a skew part too
    return _f32(p)


def test_remainder_terms_are_float32_values_that_sum_exactly():
    rng = np.random.default_rng(0)
    target = [[Fraction(float(v)) / 3 ** 5 + Fraction(1, 2 ** 70) for v in row]
              for row in rng.uniform(-1, 1, (3, 3))]
    target = [[Fraction(float(v)) + Fraction(float(v - Fraction(float(v)))) for v in row]
              for row in target]  # dyadic: two float64 values each
    terms = exact_float_terms(target)
    assert terms is not None and len(terms) >= 2
    for t in terms:
        assert np.array_equal(t.astype(np.float32).astype(np.float64), t)
    total = [[sum(Fraction(float(t[i, j])) for t in terms) for j in range(3)]
             for i in range(3)]
    assert total == target


def test_a_remainder_that_would_need_a_float32_subnormal_is_refused():
    assert exact_float_terms([[Fraction(2.0 ** -140)]]) is None
    assert exact_float_terms([[Fraction(0)]]) == []


@pytest.mark.parametrize("definite", [True, False])
def test_the_rewrite_computes_the_same_function(definite):
    g = _form_graph(_matrix(5, definite, seed=3))
    assert set(find_quadratic_forms(g)) == {"y"}
    r = rewrite_quadratic_forms(g)
    ops = {n.name: n.op for n in r.nodes()}
    assert "prod" not in ops and "pu" not in ops and ops["y"] is OpKind.RESHAPE
    assert any(op is OpKind.POW for op in ops.values())
    for node in r.nodes():  # every weight is its own float32 copy
        for value in node.consts.values():
            value = np.asarray(value)
            if value.dtype.kind == "f":
                assert np.array_equal(value.astype(np.float32).astype(np.float64), value)
    x = np.random.default_rng(4).uniform(-3, 3, (2000, 1, 5))
    y0, y1 = evaluate(g, x).numpy(), evaluate(r, x).numpy()
    np.testing.assert_allclose(y1, y0, rtol=1e-12, atol=1e-12 * np.abs(y0).max())


def test_a_product_used_elsewhere_is_left_alone():
    g = _form_graph(_matrix(4, True, seed=5), extra_consumer=True)
    assert find_quadratic_forms(g) == {}
    assert rewrite_quadratic_forms(g) is g


@pytest.mark.parametrize("definite", [True, False])
@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
def test_bounds_with_the_rewrite_contain_every_sampled_output(definite, method):
    g = _form_graph(_matrix(6, definite, seed=7))
    rng = np.random.default_rng(8)
    for _ in range(3):
        centre = rng.uniform(-1, 1, 6)
        width = rng.uniform(0.05, 1.0)
        lo, hi = centre - width, centre + width
        res = compute_bounds(g, lo[None], hi[None], config=BoundConfig(method=method))
        x = lo + (hi - lo) * rng.random((20_000, 6))
        corners = np.where(rng.random((256, 6)) < 0.5, lo, hi)
        y = evaluate(g, np.concatenate([x, corners]).reshape(-1, 1, 6)).numpy().reshape(-1)
        assert float(res.lower[0, 0]) <= y.min() and y.max() <= float(res.upper[0, 0])


def test_a_positive_definite_form_gets_a_tighter_lower_bound():
    g = _form_graph(_matrix(6, True, seed=9))
    lo, hi = -np.ones(6), np.ones(6)
    on = compute_bounds(g, lo[None], hi[None], config=BoundConfig(method="crown"))
    off = compute_bounds(g, lo[None], hi[None],
                         config=BoundConfig(method="crown", quadratic_forms=False))
    true_min = evaluate(g, np.random.default_rng(2).uniform(-1, 1, (20_000, 1, 6))).min()
    # McCormick's planes fall far below 0; one tangent plane per eigen-coordinate nearly
    # reaches the minimum over the box (0 here, as u = 0 is inside it)
    assert float(off.lower[0, 0]) < -1.0
    assert -1e-3 < float(on.lower[0, 0]) <= float(true_min)
