"""Activation derivatives: their range over a pre-activation interval (sound), and their
value at points (for the sampled lower bound).

ReLU: ``1`` where ``z_lo > 0``, ``0`` where ``z_hi < 0``, else ``[0, 1]``: every
generalized derivative (Clarke: the hull of the limits of derivatives, ``[0, 1]`` at 0)
of every point of the interval lies in the range, and so does whatever derivative an
exact encoding may pick at a tie ``z = 0``.  Sigmoid and tanh: their derivatives
``e^{-|z|} / (1 + e^{-|z|})^2`` and ``4 e^{-2|z|} / (1 + e^{-2|z|})^2`` (written so that no
cancellation occurs) are even and decrease in ``|z|``: the maximum over ``[lo, hi]`` is
at the point of least ``|z|`` (``1/4`` or ``1`` when the interval holds 0), the minimum at
the endpoint of largest ``|z|``.  Those few float64 operations (and the library ``exp``,
within a few ulps) are off by far less than ``REL_SLACK`` relative, and ``TINY`` covers
underflow, so widening by both keeps the range sound.
"""

from __future__ import annotations

import torch

from hybridver.ir.ops import OpKind
from hybridver.numerics import REL_SLACK, TINY

__all__ = ["derivative_range", "derivative_at", "SLOPE_MAX"]

Tensor = torch.Tensor

#: the largest derivative of each activation
SLOPE_MAX = {OpKind.RELU: 1.0, OpKind.SIGMOID: 0.25, OpKind.TANH: 1.0}


def _smooth(op: OpKind, z_abs: Tensor) -> Tensor:
    """The derivative of sigmoid / tanh at ``|z|``, without cancellation."""
    if op is OpKind.SIGMOID:
        s = torch.exp(-z_abs)
        return s / (1.0 + s) ** 2
    s = torch.exp(-2.0 * z_abs)
    return 4.0 * s / (1.0 + s) ** 2


def derivative_range(op: OpKind, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """``(d_lo, d_hi)``, same shape as ``lo``/``hi`` (float64): every derivative of the
    activation at a point of ``[lo, hi]`` lies in ``[d_lo, d_hi]`` (module docstring)."""
    if op is OpKind.RELU:
        return (lo > 0).to(lo.dtype), (hi >= 0).to(lo.dtype)
    if op not in (OpKind.SIGMOID, OpKind.TANH):
        raise ValueError(f"no derivative range for {op.value}")
    top = SLOPE_MAX[op]
    near = torch.where((lo <= 0) & (hi >= 0), torch.zeros_like(lo),
                       torch.minimum(lo.abs(), hi.abs()))
    far = torch.maximum(lo.abs(), hi.abs())
    d_hi = (_smooth(op, near) * (1.0 + REL_SLACK) + TINY).clamp(max=top)
    d_lo = (_smooth(op, far) * (1.0 - REL_SLACK) - TINY).clamp(min=0.0)
    return d_lo, d_hi


def derivative_at(op: OpKind, z: Tensor, relu_smoothing: float | None = None) -> Tensor:
    """The derivative at ``z`` (ReLU: ``1`` for ``z > 0``, else 0; with
    ``relu_smoothing = t`` the surrogate ``sigmoid(z / t)``, differentiable, for the
    ascent only).  Differentiable in ``z`` for sigmoid and tanh."""
    if op is OpKind.RELU:
        if relu_smoothing is not None:
            return torch.sigmoid(z / relu_smoothing)
        return (z > 0).to(z.dtype)
    return _smooth(op, z.abs())
