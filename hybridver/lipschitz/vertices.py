"""The exact maximum of the relaxation on boxes with few varying derivatives: vertex
enumeration.

With the derivatives ``d_t`` ranging independently over their boxes, the gradient
``g(d) = J(d)^T c`` is linear in each layer's ``d_t`` when the others are fixed, so
``||g(d)||_q`` is convex in each block separately, and its maximum over the product of
boxes is attained at a vertex (maximize block by block: each step can move to a vertex
without decreasing the norm).  Where at most ``k`` derivatives vary (ReLU: the unstable
neurons), the ``2^k`` vertices give that maximum: an upper bound over the box no looser
than the propagation's (it is the supremum they relax).  Rounding: each vertex's gradient
is off by at most ``gamma`` of the summed fan-ins times the product of absolute values,
added before the norm is taken.
"""

from __future__ import annotations

import torch

from hybridver.lipschitz.jacobian import PreparedChain
from hybridver.numerics import TINY, U64, gamma

__all__ = ["vertex_bounds"]

Tensor = torch.Tensor


def _one_box(prep: PreparedChain, rows: Tensor, ds: list[tuple[Tensor, Tensor]], q: float,
             max_varying: int) -> Tensor:
    """``(m,)``: the max over the vertices of the box ``ds`` (``(size_k,)`` each)."""
    varying = [torch.nonzero(hi > lo).flatten() for lo, hi in ds]
    k = sum(len(v) for v in varying)
    if k > max_varying:
        return torch.full((rows.shape[0],), float("inf"), dtype=torch.float64)
    bits = ((torch.arange(2 ** k)[:, None] >> torch.arange(k)[None, :]) & 1).to(torch.float64)
    verts, used = [], 0
    for (lo, hi), idx in zip(ds, varying):
        d = lo.expand(2 ** k, lo.numel()).clone()
        d[:, idx] = lo[idx] + (hi[idx] - lo[idx]) * bits[:, used:used + len(idx)]
        verts.append(d)
        used += len(idx)
    g = rows.expand(2 ** k, *rows.shape)
    g_abs, fan = g.abs(), 0
    for t in range(len(prep.acts) - 1, -1, -1):
        if prep.acts[t] is None:
            w, aw = prep.weights[t]
            g, g_abs = g @ w, g_abs @ aw
            fan += w.shape[0] + 2
        else:
            d = verts[prep.acts[t]][:, None, :]
            g, g_abs = g * d, g_abs * d
            fan += 2
    err = gamma(fan + 2, U64) * g_abs + TINY
    norm = torch.linalg.vector_norm(g.abs() + err, ord=q, dim=-1)
    return norm.amax(0) * (1 + gamma(g.shape[-1] + 4, U64))


def vertex_bounds(prep: PreparedChain, rows: Tensor, ds: list[tuple[Tensor, Tensor]],
                  q: float, max_varying: int) -> Tensor:
    """``(N, m)``: per box (``ds[k]: (N, size_k)``) and row, the max of ``||g||_q`` over
    the vertices of the derivative boxes, or ``inf`` where more than ``max_varying``
    derivatives vary."""
    N = ds[0][0].shape[0]
    out = torch.full((N, rows.shape[0]), float("inf"), dtype=torch.float64)
    for b in range(N):
        box = [(lo[b], hi[b]) for lo, hi in ds]
        if sum(int((hi > lo).sum()) for lo, hi in box) > max_varying:
            continue
        out[b] = _one_box(prep, rows, box, q, max_varying)
    return out
