"""Uniform sampling and PGD on a batch of cases at once (:class:`CaseBatch`).

The same searches as :func:`hybridver.bab.attack.sample_candidates` and
:func:`hybridver.bab.attack.pgd_attack`, with the points of every case of the batch in
one evaluation of the network: each case gets the same unit-cube points (the per-case
searches seed a fresh generator per case) scaled into its own box, and each point's
margin is computed with its own case's rows.  They only propose candidates; the real
model decides (:meth:`RunContext.confirm`).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from hybridver.bab.attack import AttackConfig
from hybridver.ir.evaluate import evaluate
from hybridver.ir.graph import NetworkGraph
from hybridver.pipeline.case_batches import CaseBatch
from hybridver.result import CandidateCounterexample

#: bytes of network values per evaluated point allowed in one evaluation (forward and,
#: for PGD, backward): bounds the memory of a batch
MEMORY_BYTES = 1 << 28
#: a sampled point whose float32 margin on the IR exceeds this (relative to the output's
#: magnitude) is not a candidate: float32 rounding cannot move it that far
NEAR_MARGIN = 1e-4


def batch_margin(y: torch.Tensor, C: torch.Tensor, d: torch.Tensor,
                 groups: tuple[slice, ...]) -> torch.Tensor:
    """Violation margins ``(k, S)`` of outputs ``y (k, S, n_out)``, each case with its own
    rows ``C (k, m, n_out)``, ``d (k, m)``: the smallest over disjuncts of the largest row
    ``C y + d``; ``<= 0`` iff the output meets the case's condition."""
    rows = torch.einsum("kso,kmo->ksm", y, C) + d[:, None, :]
    return torch.stack([rows[..., g].max(dim=-1).values for g in groups]).min(dim=0).values


def points_per_batch(graph: NetworkGraph, itemsize: int, backward: bool) -> int:
    """How many points one evaluation may hold (:data:`MEMORY_BYTES`)."""
    per_point = itemsize * sum(graph.node(name).size for name in graph.topological_order)
    return max(1, MEMORY_BYTES // (per_point * (3 if backward else 1)))


def _unit_points(n: int, n_in: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, n_in))


def sample_batch(graph: NetworkGraph, batch: CaseBatch, n: int, seed: int,
                 device: str | torch.device = "cpu") -> list[list[CandidateCounterexample]]:
    """Per case of ``batch``, up to 4 of ``n`` uniform points of its box whose IR output
    violates the case, most violating first.  The points are screened in float32 (like
    the deployed model; within :data:`NEAR_MARGIN` of violating) and the chosen ones
    evaluated again in float64: kept when either says violated."""
    if n <= 0:
        return [[] for _ in batch.indices]
    k, n_in = batch.lower.shape
    unit = _unit_points(n, n_in, seed)
    per_eval = max(1, points_per_batch(graph, 4, False) // n)
    out: list[list[CandidateCounterexample]] = []
    C = torch.as_tensor(batch.C, device=device)
    d = torch.as_tensor(batch.d, device=device)
    shape = graph.input_node.shape
    for start in range(0, k, per_eval):
        sl = slice(start, start + per_eval)
        lower, upper = batch.lower[sl], batch.upper[sl]
        x = lower[:, None, :] + unit[None] * (upper - lower)[:, None, :]   # (kc, n, n_in)
        kc = x.shape[0]
        with torch.no_grad():
            y = evaluate(graph, x.reshape(kc * n, *shape), dtype=torch.float32,
                         device=device).reshape(kc, n, -1)
        margin = batch_margin(y, C[sl].float(), d[sl].float(), batch.groups)
        near = margin <= NEAR_MARGIN * (1.0 + y.abs().amax(dim=-1))
        for c in range(kc):
            idx = [i for i in torch.argsort(margin[c])[:4].tolist() if bool(near[c, i])]
            if not idx:
                out.append([])
                continue
            with torch.no_grad():
                y64 = evaluate(graph, x[c, idx].reshape(len(idx), *shape),
                               device=device).reshape(1, len(idx), -1)
            m64 = batch_margin(y64, C[start + c:start + c + 1], d[start + c:start + c + 1],
                               batch.groups)[0]
            out.append([CandidateCounterexample(x[c, i], y64[0, j].cpu().numpy(), "sampling")
                        for j, i in enumerate(idx)
                        if float(m64[j]) <= 0 or float(margin[c, i]) <= 0])
    return out


def pgd_batch(graph: NetworkGraph, batch: CaseBatch, config: AttackConfig, deadline: float,
              device: str | torch.device = "cpu") -> list[list[CandidateCounterexample]]:
    """Per case of ``batch``, PGD candidates: its 4 best points, most violating first
    (the real model also checks near misses); runs in float32 like the deployed model,
    ``config.rounds`` rounds of ``config.steps`` signed-gradient steps from the
    same starts in every case (the box centre first)."""
    input_shape = graph.input_node.shape
    lower = torch.tensor(batch.lower, dtype=torch.float32, device=device)[:, None, :]
    upper = torch.tensor(batch.upper, dtype=torch.float32, device=device)[:, None, :]
    width = upper - lower
    k, _, n_in = lower.shape
    C = torch.tensor(batch.C, dtype=torch.float32, device=device)
    d = torch.tensor(batch.d, dtype=torch.float32, device=device)
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    restarts = config.low_dim_restarts if n_in <= config.low_dim else config.restarts
    best_x: torch.Tensor | None = None
    best_margin: torch.Tensor | None = None
    for round_index in range(config.rounds):
        if time.monotonic() > deadline:
            break
        starts = torch.rand((restarts, n_in), generator=generator,
                            dtype=torch.float32).to(device)
        x = lower + starts[None] * width                                  # (k, R, n_in)
        if round_index == 0:
            x[:, 0] = ((lower + upper) / 2)[:, 0]
        for step in range(config.steps):
            if time.monotonic() > deadline:
                break
            x = x.detach().requires_grad_(True)
            y = evaluate(graph, x.reshape(-1, *input_shape), dtype=torch.float32,
                         device=device).reshape(k, restarts, -1)
            margin = batch_margin(y, C, d, batch.groups)
            if best_x is None:
                best_x, best_margin = x.detach().clone(), margin.detach().clone()
            else:
                better = margin.detach() < best_margin
                best_x = torch.where(better[..., None], x.detach(), best_x)
                best_margin = torch.minimum(margin.detach(), best_margin)
            if bool((best_margin <= 0).any(dim=1).all()):
                break
            (grad,) = torch.autograd.grad(margin.sum(), x)
            size = config.step_fraction * (1 - step / config.steps) + 1e-3
            x = torch.minimum(torch.maximum(x - size * width * grad.sign(), lower), upper)
        if best_margin is not None and bool((best_margin <= 0).any(dim=1).all()):
            break
    if best_x is None:
        return [[] for _ in batch.indices]
    order = torch.argsort(best_margin, dim=1)[:, :4]                      # (k, 4)
    pick = torch.gather(best_x, 1, order[..., None].expand(-1, -1, n_in))
    with torch.no_grad():
        y = evaluate(graph, pick.reshape(-1, *input_shape), dtype=torch.float64,
                     device=device).reshape(k, order.shape[1], -1)
    return [[CandidateCounterexample(pick[c, j].double().cpu().numpy(),
                                     y[c, j].reshape(-1).cpu().numpy(), "pgd")
             for j in range(order.shape[1])] for c in range(k)]
