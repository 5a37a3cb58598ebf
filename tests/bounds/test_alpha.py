"""alpha-CROWN: never looser than CROWN, sound, batch-independent, stops early."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hybridver.api import load_model, load_spec
from hybridver.bounds import AlphaConfig, BoundConfig, compute_bounds
from hybridver.ir import OpKind
from tests.bounds.test_crown import assert_contains, mlp, sample_box
from tests.conftest import EXAMPLES

FIXED = AlphaConfig(iterations=8, patience=0, stop_when_proven=False)


def _spec_rows(net: str, spec: str):
    model = load_model(EXAMPLES / net)
    case = load_spec(EXAMPLES / spec, model).cases[0]
    C = np.concatenate([dj.C for dj in case.disjuncts])
    d = np.concatenate([dj.d for dj in case.disjuncts])
    return model.graph, case.region.lower[None], case.region.upper[None], C, d


@pytest.mark.parametrize("net,spec", [
    ("digits_relu.onnx", "digits_relu_eps_large_2.vnnlib"),
    ("digits_sigmoid.onnx", "digits_sigmoid_eps_small_1.vnnlib"),
    ("digits_tanh.onnx", "digits_tanh_eps_large_2.vnnlib"),
    ("tiny_relu.onnx", "tiny_relu.vnnlib"),
])
def test_alpha_never_looser_than_crown(net, spec):
    g, lo, hi, C, d = _spec_rows(net, spec)
    crown = compute_bounds(g, lo, hi, C, d)
    alpha = compute_bounds(g, lo, hi, C, d, config=BoundConfig(method="alpha-crown"))
    assert torch.all(alpha.lower >= crown.lower)
    assert torch.all(alpha.upper <= crown.upper)
    assert_contains(g, alpha, sample_box(lo[0], hi[0], 3000), C, d)


def test_alpha_improves_unstable_networks():
    for act in (OpKind.RELU, OpKind.SIGMOID):
        g = mlp([6, 24, 24, 4], 4, act)
        c = np.random.default_rng(4).normal(size=6)
        lo, hi = (c - 0.8)[None], (c + 0.8)[None]
        crown = compute_bounds(g, lo, hi)
        alpha = compute_bounds(g, lo, hi, config=BoundConfig(method="alpha-crown"))
        assert torch.all(alpha.lower >= crown.lower) and torch.all(alpha.upper <= crown.upper)
        gain = float((crown.upper - crown.lower).sum() - (alpha.upper - alpha.lower).sum())
        assert gain > 0, act
        assert alpha.stats["alpha_iterations"] >= 1
        assert_contains(g, alpha, sample_box(lo[0], hi[0], 5000))


def test_alpha_batch_equals_one_by_one():
    g = mlp([5, 16, 16, 3], 9)
    rng = np.random.default_rng(9)
    centres = rng.normal(size=(4, 5))
    eps = np.array([0.1, 0.5, 1.0, 0.3])[:, None]
    lo, hi = centres - eps, centres + eps
    cfg = BoundConfig(method="alpha-crown", alpha=FIXED)
    together = compute_bounds(g, lo, hi, config=cfg)
    for b in range(4):
        alone = compute_bounds(g, lo[b:b + 1], hi[b:b + 1], config=cfg)
        torch.testing.assert_close(together.lower[b], alone.lower[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(together.upper[b], alone.upper[0], rtol=1e-5, atol=1e-5)


def test_alpha_stops_when_every_row_is_proven():
    g, lo, hi, C, d = _spec_rows("digits_relu.onnx", "digits_relu_eps_small_0.vnnlib")
    crown = compute_bounds(g, lo, hi, C, d, bound_upper=False)
    assert bool((crown.lower > 0).all())  # CROWN alone proves this one
    alpha = compute_bounds(g, lo, hi, C, d, bound_upper=False,
                           config=BoundConfig(method="alpha-crown"))
    assert alpha.stats["alpha_iterations"] == 0
    assert torch.all(alpha.lower >= crown.lower)


def test_alpha_config_validates():
    with pytest.raises(ValueError):
        AlphaConfig(lr=0)
    with pytest.raises(ValueError):
        AlphaConfig(iterations=-1)
    with pytest.raises(ValueError):
        BoundConfig(dtype="float16")
    assert BoundConfig(method="alpha-crown").method.value == "alpha-crown"
