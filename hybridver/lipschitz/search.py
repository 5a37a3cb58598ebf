"""Upper bounds over the input box: the forward pass's pre-activation intervals (the bound
engine, CROWN in float64) give each activation's derivative box, the Jacobian bounds of
:mod:`hybridver.lipschitz.jacobian` bound the gradient's norm, and branch-and-bound on the
input box refines them.

The constant over a box is the max of the constants over sub-boxes that cover it, so the
max of the leaves' bounds is a sound upper bound whenever the search stops (each leaf's
bound is also capped by its parent's: the parent's box contains the leaf's).
"""

from __future__ import annotations

import dataclasses
import heapq
import time

import numpy as np
import torch

from hybridver.bounds.engine import compute_bounds
from hybridver.bounds.options import BoundConfig, BoundMethod
from hybridver.errors import DeadlineExceeded
from hybridver.ir.graph import NetworkGraph
from hybridver.lipschitz.derivatives import derivative_range
from hybridver.lipschitz.jacobian import GradientBounds, PreparedChain, gradient_bounds
from hybridver.lipschitz.network import Chain
from hybridver.lipschitz.options import LipschitzConfig
from hybridver.lipschitz.vertices import vertex_bounds

__all__ = ["BoxBounds", "SearchOutcome", "box_bounds", "search_upper"]

Tensor = torch.Tensor


@dataclasses.dataclass(frozen=True)
class BoxBounds:
    """For ``N`` boxes: ``pre[k] = (lo, hi)``, the ``k``-th activation's input intervals
    ``(N, size)``; ``grad``: the gradient bounds over them."""

    pre: list[tuple[Tensor, Tensor]]
    grad: GradientBounds


@dataclasses.dataclass(frozen=True)
class SearchOutcome:
    """``upper``: ``(m,)`` per-row upper bounds over the whole box; ``root``: the bounds of
    the whole box; ``boxes``: leaves at the end; ``complete``: the search ran out of open
    leaves (not of time or of leaves allowed); ``centre_points``: centres of the boxes
    bounded (points for the lower bound)."""

    upper: np.ndarray
    root: BoxBounds
    boxes: int
    complete: bool
    centre_points: list[np.ndarray]


def box_bounds(graph: NetworkGraph, chain: Chain, prep: PreparedChain, rows: Tensor,
               lower: np.ndarray, upper: np.ndarray, q: float, config: LipschitzConfig,
               deadline: float | None = None) -> BoxBounds:
    """Bounds for the boxes ``lower, upper (N, n_in)``."""
    n = lower.shape[0]
    pre, ds = [], []
    if chain.activations:
        shape = graph.input_node.shape
        result = compute_bounds(graph, lower.reshape(n, *shape), upper.reshape(n, *shape),
                                config=BoundConfig(method=BoundMethod.CROWN, dtype="float64",
                                                   deadline=deadline))
        for act in chain.activations:
            iv = result.intervals[act.pre]
            lo = iv.lower.reshape(iv.lower.shape[0], -1).expand(n, act.size)
            hi = iv.upper.reshape(iv.upper.shape[0], -1).expand(n, act.size)
            pre.append((lo, hi))
            ds.append(derivative_range(act.op, lo, hi))
    grad = gradient_bounds(prep, rows, ds, q, config.linear_relaxation,
                           config.linear_intermediate, config.max_linear_rows) if ds else \
        gradient_bounds(prep, rows, [], q, config.linear_relaxation)
    if ds and config.vertex_max_varying > 0:
        exact = vertex_bounds(prep, rows, ds, q, config.vertex_max_varying)
        grad = dataclasses.replace(grad, norm=torch.minimum(grad.norm, exact))
    if not ds and n > 1:  # an affine network: the same gradient on every box
        grad = GradientBounds(*(t.expand(n, *t.shape[1:]) for t in
                                (grad.lower, grad.upper)), grad.norm.expand(n, -1))
    return BoxBounds(pre, grad)


def _split_dim(lo: np.ndarray, hi: np.ndarray, g_abs: np.ndarray) -> int:
    """The input whose interval, weighted by the gradient's magnitude there, is widest."""
    width = hi - lo
    score = np.where(width > 0, width * (g_abs + 1e-12), -1.0)
    return int(np.argmax(score))


def search_upper(graph: NetworkGraph, chain: Chain, prep: PreparedChain, rows: Tensor,
                 lower: np.ndarray, upper: np.ndarray, q: float, config: LipschitzConfig,
                 deadline: float, lower_bound: float,
                 score=None) -> SearchOutcome:
    """Branch-and-bound until the deadline, ``bab_max_boxes`` leaves, or no leaf above
    ``lower_bound`` (the best known value: no leaf under it can raise the max)."""
    root = box_bounds(graph, chain, prep, rows, lower[None], upper[None], q, config)
    root_up = root.grad.norm[0].numpy().copy()
    leaves: list[tuple[float, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    g_abs = torch.maximum(root.grad.lower.abs(), root.grad.upper.abs()).amax(1)[0].numpy()
    heapq.heappush(leaves, (-root_up.max(), 0, lower, upper, root_up, g_abs))
    counter, closed, centres = 1, [], []
    complete = False
    while config.bab:
        if not leaves or -leaves[0][0] <= lower_bound * (1 + config.rel_gap):
            complete = True
            break
        if time.monotonic() >= deadline or len(leaves) + len(closed) >= config.bab_max_boxes:
            break
        batch = [heapq.heappop(leaves) for _ in range(min(config.bab_batch, len(leaves)))]
        splittable = [b for b in batch if np.any(b[3] > b[2])]
        closed.extend(b for b in batch if not np.any(b[3] > b[2]))
        if not splittable:
            continue
        los, his, caps = [], [], []
        for _, _, lo, hi, up, g in splittable:
            j = _split_dim(lo, hi, g)
            mid = lo[j] + (hi[j] - lo[j]) / 2
            for a, b in ((lo[j], mid), (mid, hi[j])):
                clo, chi = lo.copy(), hi.copy()
                clo[j], chi[j] = a, b
                los.append(clo)
                his.append(chi)
                caps.append(up)
        try:
            kids = box_bounds(graph, chain, prep, rows, np.stack(los), np.stack(his), q,
                              config, deadline)
        except DeadlineExceeded:
            for item in splittable:
                heapq.heappush(leaves, item)
            break
        norms = kids.grad.norm.numpy()
        kid_g = torch.maximum(kids.grad.lower.abs(), kids.grad.upper.abs()).amax(1).numpy()
        mids = [(a + b) / 2 for a, b in zip(los, his)]
        if score is not None:
            lower_bound = max(lower_bound, score(np.stack(mids)))
        for k in range(len(los)):
            up = np.minimum(norms[k], caps[k])
            heapq.heappush(leaves, (-up.max(), counter, los[k], his[k], up, kid_g[k]))
            counter += 1
        centres.extend(mids)
    everything = [item[4] for item in leaves] + [item[4] for item in closed]
    final = np.max(np.stack(everything), axis=0)
    return SearchOutcome(final, root, len(everything), complete, centres)
