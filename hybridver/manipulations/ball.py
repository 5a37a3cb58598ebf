"""L1/L2 balls inside their boxes: membership, projection, and a search inside the ball.

The verifier works on the box ``[-eps, eps]^n``, which contains the ball (box and cut):

* an ``unsat`` over the box is an ``unsat`` over the ball (a subset has no counterexample
  either);
* a counterexample of the box counts only if its parameters lie in the ball
  (:func:`in_balls`).  Otherwise :func:`project` moves it into the ball and
  :func:`ball_attack` searches the ball itself (projected gradient steps on the network
  over parameters); whatever they find is confirmed by the real model like any
  counterexample.  If nothing is found the answer is ``unknown``, never ``sat``.

With ``norm_cut`` (the default) the cut is also an output of the network over parameters
and a row of the spec (:mod:`hybridver.manipulations.affine`), so the verifier's
counterexamples already meet it; the checks here still decide what counts.
"""

from __future__ import annotations

import numpy as np
import torch

from hybridver.ir.evaluate import evaluate
from hybridver.manipulations.affine import ManipulationSpec

__all__ = ["ball_attack", "in_balls", "project"]

#: projections land this fraction inside the ball, so float64 rounding of the norm that
#: checks them cannot put them outside
BALL_SHRINK = 1e-9


def in_balls(spec: ManipulationSpec, p: np.ndarray) -> bool:
    """Whether the parameter vector ``p`` ``(k,)`` lies in every norm ball of ``spec``
    (and in its box)."""
    p = np.asarray(p, dtype=np.float64).reshape(1, -1)
    a = spec.amap
    if np.any(p < a.lower) or np.any(p > a.upper):
        return False
    return all(float(g.norm(p)[0]) <= g.eps for g in a.norms)


def _project_l1(v: np.ndarray, eps: float) -> np.ndarray:
    """Euclidean projection of each row of ``v`` ``(m, d)`` onto the L1 ball of radius eps:
    soft-thresholding by the ``theta`` that makes the L1 norm ``eps``."""
    out = v.copy()
    a = np.abs(v)
    outside = a.sum(axis=1) > eps
    if not np.any(outside):
        return out
    s = -np.sort(-a[outside], axis=1)
    cum = np.cumsum(s, axis=1) - eps
    ranks = np.arange(1, s.shape[1] + 1)
    last = np.sum(s - cum / ranks > 0, axis=1) - 1  # largest index with a positive gap
    theta = cum[np.arange(s.shape[0]), last] / (last + 1)
    out[outside] = np.sign(v[outside]) * np.maximum(a[outside] - theta[:, None], 0.0)
    return out


def project(spec: ManipulationSpec, p: np.ndarray) -> np.ndarray:
    """Rows of ``p`` ``(m, k)`` moved into the box and (slightly inside) every ball."""
    a = spec.amap
    p = np.array(p, dtype=np.float64).reshape(-1, a.n_params)
    for g in a.norms:  # a ball of radius eps lies in its box [-eps, eps]^n
        cols = list(g.columns)
        radius = g.eps * (1.0 - BALL_SHRINK)
        v = p[:, cols]
        if g.order == 2:
            norm = np.linalg.norm(v, axis=1, keepdims=True)
            v = np.where(norm > radius, v * (radius / np.maximum(norm, 1e-300)), v)
        else:
            v = _project_l1(v, radius)
        p[:, cols] = v
    return np.clip(p, a.lower, a.upper)


def ball_attack(spec: ManipulationSpec, graph, starts: np.ndarray, steps: int = 60,
                restarts: int = 8, seed: int = 0) -> np.ndarray:
    """Projected gradient search for misclassified parameters inside the balls.

    ``graph``: the network over parameters (:func:`~hybridver.manipulations.graph.
    parameter_graph`); ``starts``: ``(m, k)`` start points (moved into the balls), plus
    ``restarts`` random ones.  Maximises ``max_{j != label} y_j - y_label`` on the IR in
    float64; returns the final points ``(m + restarts, k)``, every one inside the box and
    the balls, best first.  They are candidates: the caller confirms them on the real model.
    """
    a = spec.amap
    rng = np.random.default_rng(seed)
    width = a.upper - a.lower
    rand = a.lower + rng.random((restarts, a.n_params)) * width
    p0 = project(spec, np.concatenate([np.asarray(starts).reshape(-1, a.n_params), rand]))
    step = 0.1 * np.maximum(width, 1e-12)
    p = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
    others = [j for j in range(spec.n_classes) if j != spec.label]
    best, best_score = p0.copy(), np.full(p0.shape[0], -np.inf)
    for it in range(steps):
        y = evaluate(graph, p.reshape(-1, 1, a.n_params)).reshape(p.shape[0], -1)
        score = y[:, others].max(dim=1).values - y[:, spec.label]
        better = score.detach().numpy() > best_score
        best[better] = p.detach().numpy()[better]
        best_score = np.maximum(best_score, score.detach().numpy())
        (grad,) = torch.autograd.grad(score.sum(), p)
        with torch.no_grad():
            scale = step * (1.0 - it / steps)
            moved = p.detach().numpy() + scale * np.sign(grad.numpy())
            p = torch.tensor(project(spec, moved), dtype=torch.float64, requires_grad=True)
    order = np.argsort(-best_score)
    return best[order]
