"""The lower bound: gradient norms at points of the box where the network is
differentiable, from random points and projected gradient ascent on the norm.

At a point where no ReLU input is 0 the network is differentiable and its gradient is
the product ``c^T W_T D ... D W_1`` with the derivatives there; the local Lipschitz
constant is at least its dual norm.  The float64 product is off by at most ``gamma(K)``
times the same product of absolute values (``K`` the summed fan-ins), plus
``REL_SLACK`` per smooth derivative: that much is subtracted.  A ReLU input whose sign the
rounding of its own dot product could flip makes the point unusable (dropped).

The ascent maximizes ``||g||_q`` by signed gradient steps projected on the box; for ReLU
networks the gradient norm is piecewise constant, so the steps follow a smoothed
surrogate (ReLU's derivative replaced by ``sigmoid(z / t)``, ``t`` shrinking) while every
iterate is scored with the true gradient.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from hybridver.ir.ops import OpKind
from hybridver.lipschitz.derivatives import derivative_at
from hybridver.lipschitz.jacobian import PreparedChain
from hybridver.lipschitz.network import Affine, Chain
from hybridver.numerics import REL_SLACK, U64, gamma

__all__ = ["Witness", "certified_norms", "gradients", "sampled_lower_bound"]

Tensor = torch.Tensor


@dataclasses.dataclass(frozen=True)
class Witness:
    """A point ``x (n_in,)`` whose gradient of row ``row`` has dual norm at least
    ``value``."""

    value: float
    x: np.ndarray
    row: int


def gradients(chain: Chain, prep: PreparedChain, x: Tensor, rows: Tensor,
              smoothing: float | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(g, err, ok)``: gradients ``(P, m, n_in)`` of ``rows . f`` at the points ``x (P,
    n_in)``, a bound ``err`` of their rounding error (same shape), and ``ok (P,)``: no
    ReLU input is within its rounding error of 0 (the forward error ``e`` is carried:
    ``|W| e`` plus ``gamma`` of the fan-in times ``|W| |a| + |b|``; activations are
    1-Lipschitz and their float64 values off by ``REL_SLACK`` at most).  Differentiable
    in ``x`` (smooth activations, or ReLU with ``smoothing``)."""
    a = x
    e = torch.zeros_like(x)
    ok = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    derivs, fan, n_smooth = [], 0, 0
    for step, w in zip(chain.steps, prep.weights):
        if isinstance(step, Affine):
            b = torch.as_tensor(step.bias, dtype=x.dtype, device=x.device)
            e = e @ w[1].T + gamma(w[0].shape[1] + 2, U64) * (a.detach().abs() @ w[1].T
                                                               + b.abs())
            a = a @ w[0].T + b
            fan += w[0].shape[1] + 2
            continue
        d = derivative_at(step.op, a, smoothing)
        if step.op is OpKind.RELU:
            ok = ok & (a.detach().abs() > e).all(-1)
            a = torch.relu(a) if smoothing is None else a * d
        else:
            n_smooth += 1
            a = torch.sigmoid(a) if step.op is OpKind.SIGMOID else torch.tanh(a)
            e = e + REL_SLACK * a.detach().abs()
        derivs.append(d)
    g = rows.expand(x.shape[0], *rows.shape)
    g_abs = g.abs()
    k = 0
    for step, w in zip(reversed(chain.steps), reversed(prep.weights)):
        if isinstance(step, Affine):
            g, g_abs = g @ w[0], g_abs @ w[1]
        else:
            k += 1
            d = derivs[-k][:, None, :]
            g, g_abs = g * d, g_abs * d.detach().abs()
    err = (gamma(2 * fan + 2, U64) + 2 * n_smooth * REL_SLACK) * g_abs.detach()
    return g, err, ok


def certified_norms(chain, prep, x, rows, q) -> tuple[Tensor, Tensor]:
    """Certified gradient norms ``(P, m)`` (``-inf`` where unusable) at ``x``."""
    with torch.no_grad():
        g, err, ok = gradients(chain, prep, x, rows)
        low = (g.abs() - err).clamp(min=0.0)  # |true g_j| >= low_j
        val = torch.linalg.vector_norm(low, ord=q, dim=-1) * (1 - gamma(g.shape[-1] + 4, U64))
        return torch.where(ok[:, None], val, torch.full_like(val, -np.inf)), g


def sampled_lower_bound(chain: Chain, prep: PreparedChain, lower: np.ndarray,
                        upper: np.ndarray, rows: Tensor, q: float, samples: int,
                        steps: int, seed: int, local_rounds: int = 0,
                        deadline: float | None = None) -> Witness:
    """The best certified gradient norm over the centre and ``samples`` uniform points,
    then ``steps`` ascent steps from the 16 best, then ``local_rounds`` rounds of random
    local search (each keeps the 16 best of them and 32 Gaussian perturbations of each,
    the scale shrinking from a tenth of the box's width).  Ascent steps and rounds stop
    at ``deadline`` (a ``time.monotonic()`` value)."""
    rng = np.random.default_rng(seed)
    lo = torch.tensor(lower, dtype=torch.float64)
    hi = torch.tensor(upper, dtype=torch.float64)
    x = torch.cat([((lo + hi) / 2)[None],
                   lo + (hi - lo) * torch.as_tensor(rng.random((samples, lo.numel())))])
    best = Witness(0.0, ((lower + upper) / 2).copy(), 0)

    def consider(points: Tensor) -> Tensor:
        nonlocal best
        val, _ = certified_norms(chain, prep, points, rows, q)
        flat = int(torch.argmax(val))
        p, r = divmod(flat, val.shape[1])
        if float(val[p, r]) > best.value:
            best = Witness(float(val[p, r]), points[p].numpy().copy(), r)
        return val.amax(-1)

    score = consider(x)
    if not chain.activations:  # an affine network: one gradient everywhere
        return best
    relu = OpKind.RELU in chain.kinds
    order = torch.argsort(score, descending=True)[:16]
    starts, start_score = x[order].clone(), score[order]
    width = hi - lo
    late = (lambda: False) if deadline is None else (lambda: time.monotonic() > deadline)
    for k in range(steps):
        if late():
            break
        step = 0.1 * width * (1 - k / steps) + 1e-3 * width
        smoothing = (0.5 * (1 - k / steps) + 0.01) if relu else None
        var = starts.clone().requires_grad_(True)
        g, _, _ = gradients(chain, prep, var, rows, smoothing)
        objective = torch.linalg.vector_norm(g, ord=q, dim=-1).amax(-1).sum()
        grad, = torch.autograd.grad(objective, var)
        starts = torch.minimum(torch.maximum(var.detach() + step * grad.sign(), lo), hi)
        consider(starts)
    if steps:  # the search starts from the best of the samples and of the ascent
        pool = torch.cat([x[order], starts])
        pool_score = torch.cat([score[order], consider(starts)])
        keep = torch.argsort(pool_score, descending=True)[:16]
        starts, start_score = pool[keep], pool_score[keep]
    for k in range(local_rounds):
        if late():
            break
        scale = 0.1 * width * (0.02 ** (k / max(1, local_rounds - 1)))
        noise = torch.as_tensor(rng.normal(size=(len(starts), 32, lo.numel())))
        cand = (starts[:, None, :] + scale * noise).reshape(-1, lo.numel())
        cand = torch.minimum(torch.maximum(cand, lo), hi)
        cand_score = consider(cand)
        pool = torch.cat([starts, cand])
        pool_score = torch.cat([start_score, cand_score])
        keep = torch.argsort(pool_score, descending=True)[:16]
        starts, start_score = pool[keep], pool_score[keep]
    return best
