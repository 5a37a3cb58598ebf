"""Domains of activation splitting (:mod:`hybridver.bab.activation_split`) as tensors: a
domain is the case's input box (or its own sub-box) plus split decisions on neurons.

:func:`_restrictions` turns each domain's decisions into per-node restriction intervals
for the bound engine; :func:`_tighten_boxes` shrinks a domain's input box with its
decisions on neurons that are affine in the input (:func:`_affine_rows`), rounded outward
so that no input satisfying the decisions is lost.
"""

from __future__ import annotations

import numpy as np
import torch

from hybridver.bab.branching import Decision, _Candidate
from hybridver.ir.ops import OpKind
from hybridver.numerics import REL_SLACK, TINY, U64

Tensor = torch.Tensor


def _affine_rows(graph, cands: list[_Candidate]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Candidates whose pre-activation is an affine function of the input: a LINEAR node
    reading the input through size-preserving reshapes only (row-major, so the flat
    order is kept), with all leading dimensions 1.  Candidate index -> (W (out, n_in),
    b (out,)): neuron ``f`` is ``W[f] @ x_flat + b[f]``."""
    out = {}
    n_in = graph.input_node.size
    for ci, cand in enumerate(cands):
        node = graph.node(cand.pre)
        if node.op is not OpKind.LINEAR or any(s != 1 for s in node.shape[:-1]):
            continue
        src = graph.node(node.inputs[0])
        while src.op is OpKind.RESHAPE and src.size == n_in:
            src = graph.node(src.inputs[0])
        weight = np.asarray(node.consts["weight"], dtype=np.float64)
        if src.op is not OpKind.INPUT or weight.shape[1] != n_in:
            continue
        bias = node.consts.get("bias")
        bias = np.zeros(weight.shape[0]) if bias is None else np.asarray(bias, np.float64)
        out[ci] = (weight, bias)
    return out


def _tighten_boxes(lo: Tensor, hi: Tensor, domains: list[tuple[Decision, ...]],
                   affine: dict[int, tuple[Tensor, Tensor]], passes: int = 2
                   ) -> tuple[Tensor, Tensor]:
    """Shrink each domain's input box ``(N, n_in)`` with its decisions on affine neurons
    (``w @ x + b <= p`` or ``>= p``): bound propagation, one input dimension at a time,
    rounded outward.  Sound: every input of the box satisfying the decisions stays in the
    shrunk box (an empty box, lower > upper, means no input satisfies them)."""
    rows = [[(ci, f, up, p) for ci, f, up, p in dec if ci in affine] for dec in domains]
    k = max((len(r) for r in rows), default=0)
    if k == 0:
        return lo, hi
    n, n_in = lo.shape
    A = torch.zeros((n, k, n_in), dtype=torch.float64, device=lo.device)
    c = torch.full((n, k), np.inf, dtype=torch.float64, device=lo.device)
    for i, r in enumerate(rows):
        for j, (ci, f, up, p) in enumerate(r):
            w, b = affine[ci]
            sign = 1.0 if up else -1.0      # A x <= c:  sign * (w x + b) <= sign * p
            A[i, j] = sign * w[f]
            c[i, j] = sign * (p - float(b[f]))
    tol = 4 * (n_in + 4) * U64
    for _ in range(passes):
        low_terms = torch.minimum(A * lo[:, None], A * hi[:, None])        # (N, K, n_in)
        total = low_terms.sum(-1, keepdim=True)
        mag = (A.abs() * torch.maximum(lo.abs(), hi.abs())[:, None]).sum(-1, keepdim=True)
        slack = c[..., None] - (total - low_terms) + tol * (mag + c.abs()[..., None]) + TINY
        bound = slack / A                                                  # x_j on one side
        bound = bound + (bound.abs() * REL_SLACK + TINY) * torch.sign(A)    # widen outward
        pos, neg = A > 0, A < 0
        inf = torch.full_like(bound, np.inf)
        new_hi = torch.where(pos, bound, inf).amin(1)
        new_lo = torch.where(neg, bound, -inf).amax(1)
        lo, hi = torch.maximum(lo, new_lo.nan_to_num(nan=-np.inf)), \
            torch.minimum(hi, new_hi.nan_to_num(nan=np.inf))
    return lo, hi


def _restrictions(cands: list[_Candidate], domains: list[tuple[Decision, ...]],
                  device) -> dict[str, tuple[Tensor, Tensor]]:
    """Restriction tensors ``(N, *shape)`` rebuilt from each domain's decisions."""
    n = len(domains)
    per = [([], [], [], []) for _ in cands]  # rows, flat, value, is_upper
    for row, decisions in enumerate(domains):
        for ci, flat, upper, point in decisions:
            rows, flats, vals, ups = per[ci]
            rows.append(row)
            flats.append(flat)
            vals.append(point)
            ups.append(upper)
    out = {}
    for cand, (rows, flats, vals, ups) in zip(cands, per):
        if not rows:
            continue
        lo = torch.full((n, cand.size), -np.inf, dtype=torch.float64, device=device)
        hi = torch.full((n, cand.size), np.inf, dtype=torch.float64, device=device)
        r = torch.as_tensor(rows, device=device)
        f = torch.as_tensor(flats, device=device)
        v = torch.as_tensor(vals, dtype=torch.float64, device=device)
        u = torch.as_tensor(ups, device=device)
        idx = r * cand.size + f
        # decisions along a path are nested, but reduce anyway (tightest wins)
        hi.view(-1).scatter_reduce_(0, idx[u], v[u], reduce="amin")
        lo.view(-1).scatter_reduce_(0, idx[~u], v[~u], reduce="amax")
        out[cand.pre] = (lo.reshape(n, *cand.shape), hi.reshape(n, *cand.shape))
    return out


class NeuronBatch:
    """Domains of activation splitting waiting to be bounded: each one's decisions, its
    own input box (``(lower, upper)``, or None for the case's whole box) and the margin
    bound of its parent (``-inf`` for the root; how much a split gained is read from it)
    and its parent's optimized values (:data:`hybridver.bab.warm_start.WarmRef`, or None;
    default all None).  ``len()``: the number of domains."""

    __slots__ = ("domains", "boxes", "parents", "warm")

    def __init__(self, domains: list[tuple[Decision, ...]], boxes: list[tuple | None],
                 parents: list[float], warm: list | None = None):
        warm = [None] * len(domains) if warm is None else warm
        if not len(domains) == len(boxes) == len(parents) == len(warm):
            raise ValueError("domains, boxes, parents and warm must have the same length")
        self.domains, self.boxes, self.parents, self.warm = domains, boxes, parents, warm

    def __len__(self) -> int:
        return len(self.domains)
