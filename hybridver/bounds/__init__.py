"""Bound propagation over the IR; the entry is :func:`compute_bounds`.

IBP with outward rounding (``intervals``), CROWN's backward pass (``crown``, with the rules
of the linear ops in ``linear_ops``), alpha-CROWN (``alpha``), settings (``options``).
Nonlinearities are asked of ``hybridver.relaxations``; nothing is written onto graph nodes.
"""

from hybridver.bounds.engine import BoundResult, compute_bounds
from hybridver.bounds.intervals import Interval, UnsupportedBoundError, interval_bounds
from hybridver.bounds.options import AlphaConfig, BoundConfig, BoundMethod, IntermediateMethod

__all__ = ["AlphaConfig", "BoundConfig", "BoundMethod", "BoundResult", "IntermediateMethod",
           "Interval", "UnsupportedBoundError", "compute_bounds", "interval_bounds"]
