"""The bound function of input splitting on one case: CROWN over a batch of sub-boxes.

Shared by the local search (:mod:`hybridver.pipeline.input_split`) and the shards of the
distributed one (:mod:`hybridver.cluster.shard`), so both bound a domain the same way.
"""

from __future__ import annotations

import numpy as np
import torch

from hybridver.bab.input_split import Bounded, BoundFn
from hybridver.bounds.engine import compute_bounds
from hybridver.bounds.options import BoundConfig
from hybridver.bounds.plan import get_plan
from hybridver.ir.graph import NetworkGraph


def box_bound_fn(graph: NetworkGraph, C: np.ndarray, d: np.ndarray, config: BoundConfig,
                 device: str) -> BoundFn:
    """``bound_fn(lower (N, n_in), upper (N, n_in), restrictions) -> Bounded``: sound lower
    bounds of the rows ``C y + d`` (``C (m, n_out)``, ``d (m,)``) over each box, the rows'
    linear lower bounds in the input (for clipping and split ranking), and the intervals
    of every pre-activation (sound on the box, hence restrictions for its children)."""
    plan = get_plan(graph, config.torch_dtype, torch.device(device),
                    quadratic_forms=config.quadratic_forms)
    reused = sorted(plan.pre_activations)

    def bound_fn(lower, upper, restrictions) -> Bounded:
        result = compute_bounds(graph, lower, upper, C, d, config=config,
                                restrictions=restrictions, bound_upper=False, device=device,
                                input_coefficients=True)
        nodes = {name: (result.intervals[name].lower, result.intervals[name].upper)
                 for name in reused}
        return Bounded(result.lower, result.input_coef, nodes, result.input_offset)
    return bound_fn
