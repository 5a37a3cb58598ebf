"""Bound propagation over the IR: IBP, CROWN, alpha-CROWN (entry: :func:`compute_bounds`)."""

from hybridver.bounds.engine import BoundResult, compute_bounds
from hybridver.bounds.intervals import Interval, UnsupportedBoundError, interval_bounds
from hybridver.bounds.options import AlphaConfig, BoundConfig, BoundMethod, IntermediateMethod

__all__ = ["AlphaConfig", "BoundConfig", "BoundMethod", "BoundResult", "IntermediateMethod",
           "Interval", "UnsupportedBoundError", "compute_bounds", "interval_bounds"]
