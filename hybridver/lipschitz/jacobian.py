"""Sound bounds of the gradient ``g = J^T c`` of ``c . f(x)`` over boxes of activation
derivatives, by interval arithmetic and by linear bound propagation on the Jacobian's
backward graph.

The backward graph: ``r_T = c``; for the steps ``t = T-1 .. 0`` of the chain,
``r_t = W_t^T r_{t+1}`` (affine) or ``r_t = d_t * r_{t+1}`` (activation, ``d_t`` its
derivative, in the box ``[d_lo, d_hi]`` the forward intervals give); ``g = r_0``.  Every
Clarke generalized Jacobian of the chain is such a product with ``d_t`` in its box (chain
rule of Clarke: each element is a product of elements of the layers' generalized
derivatives), so bounds over all ``d`` in the boxes (taken as independent, a relaxation)
hold for every element, at every point of the input box.

Linear propagation (the products' relaxation): for a coefficient ``rho`` of
``(d * r)_j``, the sup over ``d`` is ``rho * phi(r)`` with ``phi(r) = max(d_lo r, d_hi r)``
(``rho >= 0``; for ``rho < 0`` the same with ``-r``), convex and piecewise linear in
``r``; over ``r``'s interval it is bounded by its chord, the tightest linear upper bound.
Affine steps are exact.  At ``g`` the L1 norm is bounded by the chords of ``|g_j|``.

Rounding (float64): intervals are widened outward at every step (``gamma`` of the fan-in
times the magnitudes, ``2 u`` per product, ``TINY``); the linear pass treats each
computed coefficient as exact and adds to its constant the error of computing it
(``gamma`` times ``|coef| |M| . max |r|``), and each chord's offset is the larger residual
at its two endpoints, widened; the final sums carry ``gamma`` of their length.
"""

from __future__ import annotations

import dataclasses

import torch

from hybridver.lipschitz.network import Affine, Chain
from hybridver.numerics import TINY, U64, gamma

__all__ = ["GradientBounds", "PreparedChain", "gradient_bounds"]

Tensor = torch.Tensor
U2 = 2 * U64


@dataclasses.dataclass(frozen=True)
class PreparedChain:
    """The chain's weights as float64 tensors; ``acts[t]``: the activation index of step
    ``t`` (None for an affine step); ``sizes[t]``: the length of ``r_t`` (``t = 0..T``)."""

    weights: tuple[tuple[Tensor, Tensor] | None, ...]
    acts: tuple[int | None, ...]
    sizes: tuple[int, ...]

    @classmethod
    def of(cls, chain: Chain, device: torch.device | str = "cpu") -> "PreparedChain":
        weights, acts, sizes, k = [], [], [chain.n_in], 0
        for step in chain.steps:
            if isinstance(step, Affine):
                w = torch.as_tensor(step.weight, dtype=torch.float64, device=device)
                weights.append((w, w.abs()))
                acts.append(None)
                sizes.append(w.shape[0])
            else:
                weights.append(None)
                acts.append(k)
                k += 1
                sizes.append(sizes[-1])
        return cls(tuple(weights), tuple(acts), tuple(sizes))


@dataclasses.dataclass(frozen=True)
class GradientBounds:
    """``lower, upper``: ``(N, m, n_in)`` bounds of each gradient coordinate; ``norm``:
    ``(N, m)`` upper bounds of ``||g||_q``; ``inner[t]``: ``r_t``'s interval ``(N, m,
    n_t)`` (``t = 0..T``; ``inner[0]`` is ``(lower, upper)``)."""

    lower: Tensor
    upper: Tensor
    norm: Tensor
    inner: tuple = ()


def _outward(lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    return lo - (U2 * lo.abs() + TINY), hi + (U2 * hi.abs() + TINY)


def _interval_step(prep: PreparedChain, t: int, lo: Tensor, hi: Tensor,
                   ds: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """``r_t``'s interval from ``r_{t+1}``'s (``(N, m, n)``)."""
    if prep.acts[t] is None:
        w, aw = prep.weights[t]
        mid = (lo + hi) / 2
        rad = torch.maximum(hi - mid, mid - lo) * (1 + U2)
        center = mid @ w
        n = w.shape[0]
        radius = rad @ aw + gamma(n + 2, U64) * ((mid.abs() + rad) @ aw)
        return _outward(center - radius, center + radius)
    d_lo, d_hi = (d[:, None, :] for d in ds[prep.acts[t]])
    low = torch.minimum(d_lo * lo, d_hi * lo)
    high = torch.maximum(d_lo * hi, d_hi * hi)
    return _outward(low, high)


def _phi_chord(d_lo: Tensor, d_hi: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Slope and offset of a line above ``phi(r) = max(d_lo r, d_hi r)`` on ``[lo, hi]``
    (``0 <= d_lo <= d_hi``): exact where ``r`` keeps its sign, else the chord."""
    straddles = (lo < 0) & (hi > 0)
    f_lo = torch.where(lo >= 0, d_hi * lo, d_lo * lo)
    f_hi = torch.where(hi >= 0, d_hi * hi, d_lo * hi)
    width = torch.where(straddles, hi - lo, torch.ones_like(lo))
    slope = torch.where(straddles, (f_hi - f_lo) / width,
                        torch.where(lo >= 0, d_hi, d_lo))
    res_lo, res_hi = f_lo - slope * lo, f_hi - slope * hi
    offset = torch.maximum(res_lo, res_hi)
    offset = offset + 4 * U64 * (f_lo.abs() + f_hi.abs() + slope.abs() * (lo.abs() + hi.abs())) \
        + TINY
    return slope, torch.where(straddles, offset, torch.zeros_like(offset))


def _dot(a: Tensor, v: Tensor) -> Tensor:
    """``(a * v).sum(-1)`` for ``a: (N, m, R, n)`` and ``v: (N, m, 1, n)``, as a batched
    matrix-vector product: ``(N, m, R)``."""
    return (a @ v.expand(a.shape[0], a.shape[1], 1, a.shape[-1]).transpose(-1, -2))[..., 0]


def _linear_upper(prep: PreparedChain, coef: Tensor, t0: int, rows: Tensor,
                  box: list[tuple[Tensor, Tensor]], ds: list[tuple[Tensor, Tensor]]) -> Tensor:
    """An upper bound ``(N, m, R)`` of ``coef . r_{t0}`` (``coef: (N, m, R, n_{t0})``)
    over every ``d`` in its boxes; ``box[t]``: ``r_t``'s interval ``(N, m, n_t)``."""
    const = torch.zeros(coef.shape[:-1], dtype=coef.dtype, device=coef.device)
    mag = torch.zeros_like(const)
    for t in range(t0, len(prep.acts)):
        lo, hi = (b[:, :, None, :] for b in box[t + 1])
        rmax = torch.maximum(lo.abs(), hi.abs())
        if prep.acts[t] is None:
            w, aw = prep.weights[t]
            new = coef @ w.T
            # sum_o (|coef| |W|^T)_o rmax_o = |coef| . (rmax |W|), a matrix-vector product
            weight = rmax @ aw * (1 + gamma(w.shape[0] + 2, U64))
            err = gamma(w.shape[1] + 2, U64) * _dot(coef.abs(), weight)
        else:
            d_lo, d_hi = (d[:, None, None, :] for d in ds[prep.acts[t]])
            a_pos, b_pos = _phi_chord(d_lo, d_hi, lo, hi)
            a_neg, b_neg = _phi_chord(d_lo, d_hi, -hi, -lo)
            pos = coef.clamp(min=0)
            neg = coef - pos  # exact: 0 or coef
            new = torch.addcmul(pos * a_pos, neg, a_neg)
            add = _dot(pos, b_pos) - _dot(neg, b_neg)  # sum |coef| b
            const = const + add
            mag = mag + add.abs()
            # |new| <= pos |a_pos| + |neg| |a_neg|: one rounding of each product
            err = U2 * (1 + U2) * (_dot(pos, a_pos.abs() * rmax) - _dot(neg, a_neg.abs() * rmax))
        const, mag, coef = const + err, mag + err, new
    final = (coef * rows[None, :, None, :]).sum(-1)
    size = coef.shape[-1] + 2 * len(prep.acts) + 8
    total = final + const
    return total + gamma(size, U64) * ((coef.abs() * rows.abs()[None, :, None, :]).sum(-1)
                                       + mag + total.abs()) + TINY


def _coordinate_bounds(prep: PreparedChain, t: int, rows: Tensor, box, ds,
                       max_rows: int) -> tuple[Tensor, Tensor]:
    """Linear-propagation bounds of each entry of ``r_t``, ``(N, m, n_t)`` each."""
    N, m, n = box[t][0].shape
    eye = torch.eye(n, dtype=torch.float64, device=rows.device)
    per_chunk = max(1, max_rows // max(1, N * m))
    ups, lows = [], []
    for start in range(0, n, per_chunk):
        sel = eye[start:start + per_chunk]
        coef = torch.cat([sel, -sel]).expand(N, m, 2 * sel.shape[0], n)
        bound = _linear_upper(prep, coef, t, rows, box, ds)
        ups.append(bound[..., :sel.shape[0]])
        lows.append(-bound[..., sel.shape[0]:])
    return torch.cat(lows, -1), torch.cat(ups, -1)


def gradient_bounds(prep: PreparedChain, rows: Tensor, ds: list[tuple[Tensor, Tensor]],
                    q: float, linear: bool = True, linear_intermediate: bool = True,
                    max_rows: int = 20000) -> GradientBounds:
    """Bounds of ``g = J^T c`` for each row ``c`` of ``rows (m, n_out)`` and each of the
    ``N`` boxes of derivatives ``ds[k] = (d_lo, d_hi)`` (``(N, size_k)``, activations in
    chain order), and of ``||g||_q`` (``q`` in 1, 2, inf)."""
    N = ds[0][0].shape[0] if ds else 1
    T = len(prep.acts)
    m = rows.shape[0]
    box: list = [None] * (T + 1)
    box[T] = (rows.expand(N, m, rows.shape[1]), rows.expand(N, m, rows.shape[1]))
    for t in range(T - 1, -1, -1):
        lo, hi = _interval_step(prep, t, *box[t + 1], ds)
        needed = t == 0 or (prep.acts[t - 1] is not None)
        if linear and needed and (t == 0 or linear_intermediate):
            box[t] = (lo, hi)
            l_lo, l_hi = _coordinate_bounds(prep, t, rows, box, ds, max_rows)
            lo, hi = torch.maximum(lo, l_lo), torch.minimum(hi, l_hi)
        box[t] = (lo, hi)
    g_lo, g_hi = box[0]
    g_abs = torch.maximum(g_lo.abs(), g_hi.abs())
    n = g_abs.shape[-1]
    if q == 1.0:
        norm = g_abs.sum(-1) * (1 + gamma(n + 2, U64)) + TINY
        if linear:
            straddles = (g_lo < 0) & (g_hi > 0)
            width = torch.where(straddles, g_hi - g_lo, torch.ones_like(g_lo))
            slope = torch.where(straddles, (g_hi + g_lo) / width,
                                torch.where(g_lo >= 0, 1.0, -1.0).to(g_lo))
            res = torch.maximum(g_lo.abs() - slope * g_lo, g_hi.abs() - slope * g_hi)
            res = res + 4 * U64 * (g_abs + slope.abs() * g_abs) + TINY
            offset = torch.where(straddles, res, torch.zeros_like(res)).sum(-1)
            lin = _linear_upper(prep, slope[:, :, None, :], 0, rows, box, ds)[..., 0]
            lin = lin + offset * (1 + gamma(n + 2, U64)) + TINY
            norm = torch.minimum(norm, lin)
    elif q == 2.0:
        norm = g_abs.square().sum(-1).sqrt() * (1 + gamma(n + 4, U64)) + TINY
    else:
        norm = g_abs.amax(-1)
    return GradientBounds(g_lo, g_hi, norm, tuple(box))
