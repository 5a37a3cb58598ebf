"""Bound propagation over the IR (interval bounds so far)."""

from hybridver.bounds.intervals import Interval, UnsupportedBoundError, interval_bounds

__all__ = ["Interval", "UnsupportedBoundError", "interval_bounds"]
