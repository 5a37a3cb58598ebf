"""Piecewise-linear questions answered by the registry's traits."""

from __future__ import annotations

from hybridver.ir.ops import OpKind
from hybridver.relaxations import (get_relaxation, is_piecewise_linear, kink_slope,
                                   piecewise_linear_ops, registered_ops)


def test_piecewise_linear_ops_are_the_traits():
    ops = piecewise_linear_ops()
    assert ops == {OpKind.RELU, OpKind.LEAKY_RELU, OpKind.ABS}
    for op, relaxation in registered_ops().items():
        assert is_piecewise_linear(op) == relaxation.traits.piecewise_linear == (op in ops)
    assert not is_piecewise_linear(OpKind.LINEAR)   # no relaxation at all


def test_kink_slopes_come_from_the_relaxations():
    assert kink_slope(OpKind.RELU, {}) == 0.0
    assert kink_slope(OpKind.ABS, {}) == -1.0
    assert kink_slope(OpKind.LEAKY_RELU, {"alpha": 0.2}) == 0.2
    assert kink_slope(OpKind.SIGMOID, {}) is None
    assert kink_slope(OpKind.MUL, {}) is None
    assert kink_slope(OpKind.LINEAR, {}) is None


def test_kink_slope_agrees_with_the_function():
    import torch

    x = torch.linspace(-3, 3, 61, dtype=torch.float64)
    for op in piecewise_linear_ops():
        attrs = {"alpha": 0.3}
        a = kink_slope(op, attrs)
        expected = torch.where(x >= 0, x, a * x)
        assert torch.equal(get_relaxation(op).function(x, attrs), expected)
