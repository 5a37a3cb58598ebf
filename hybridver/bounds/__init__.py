"""Bound propagation over the IR; the entry is :func:`compute_bounds`.

IBP with outward rounding (``intervals``); the graph plan with its node kinds (``plan``);
one backward walk (``backward``) with two rule tables over it: CROWN (``crown``, with the
rules of the linear ops in ``linear_ops``) and branching sensitivities (``sensitivity``);
the state of one computation (``state``, ``intermediate``); alpha-CROWN (``alpha``);
settings (``options``, with the deadline the passes honour); differentiable bounds of a
torch module for certified training (``training``: :func:`for_training`, not a proof).
Nonlinearities are asked of ``hybridver.relaxations``; nothing is written onto graph nodes.
"""

from hybridver.bounds.engine import BoundResult, compute_bounds
from hybridver.bounds.intervals import Interval, UnsupportedBoundError, interval_bounds
from hybridver.bounds.options import AlphaConfig, BoundConfig, BoundMethod, IntermediateMethod
from hybridver.bounds.training import (TrainingBoundConfig, TrainingBounds, TrainingMethod,
                                       for_training)

__all__ = ["AlphaConfig", "BoundConfig", "BoundMethod", "BoundResult", "IntermediateMethod",
           "Interval", "TrainingBoundConfig", "TrainingBounds", "TrainingMethod",
           "UnsupportedBoundError", "compute_bounds", "for_training", "interval_bounds"]
