"""PGD attack on the violation margin of a spec case.

For one :class:`~hybridver.specs.SpecCase` the margin of an output ``y`` is
``min over disjuncts of max over rows of (C y + d)``: it is <= 0 exactly when ``y``
satisfies some disjunct.  The attack minimizes it over the case's input box with signed
gradient steps from many starts at once.  It only proposes *candidates*; they become
counterexamples after :func:`hybridver.result.confirm_counterexample`.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from hybridver.ir.evaluate import evaluate
from hybridver.ir.graph import NetworkGraph
from hybridver.result import CandidateCounterexample


@dataclasses.dataclass(frozen=True)
class AttackConfig:
    """Falsification: uniform sampling, then projected gradient descent on the margin.

    ``samples`` uniform points of the box are evaluated first; if none violates,
    ``restarts`` random starting points (plus the box centre) run as one batch for ``steps``
    signed-gradient steps of size ``step_fraction * box width``, decaying linearly.
    Inputs of at most ``low_dim`` dimensions (ACAS Xu's 5) are cheap to attack, so they
    get ``low_dim_restarts`` starts instead (on ACAS Xu 2_9 property 8, 64 starts miss the
    counterexample and 1024 find it in 0.2 s).  A low-dimensional case that input
    splitting has not decided after the schedule's ``face_attack`` time gets
    ``face_samples`` random points on each face of its box (:func:`face_candidates`;
    ACAS Xu 1_9 property 7 has its counterexamples in a slab against a face: 0.5 s with
    20,000 per face).
    """

    samples: int = 256
    restarts: int = 64
    steps: int = 60
    step_fraction: float = 0.1
    rounds: int = 3
    seed: int = 0
    low_dim: int = 16
    low_dim_restarts: int = 1024
    face_samples: int = 20_000


def case_margin(y: torch.Tensor, disjuncts, device=None) -> torch.Tensor:
    """Violation margin per sample: ``y: (batch, n_out)`` -> ``(batch,)``."""
    if not disjuncts:
        return torch.full((y.shape[0],), -1.0, dtype=y.dtype, device=y.device)
    margins = []
    for disjunct in disjuncts:
        C = torch.tensor(disjunct.C, dtype=y.dtype, device=y.device)
        d = torch.tensor(disjunct.d, dtype=y.dtype, device=y.device)
        margins.append((y @ C.T + d).max(dim=1).values)
    return torch.stack(margins).min(dim=0).values


def pgd_attack(graph: NetworkGraph, case, config: AttackConfig, deadline: float,
               device: str | torch.device = "cpu") -> list[CandidateCounterexample]:
    """Candidates for ``case`` ordered by margin (most violating first), at most a few.

    Runs in float32 like the deployed model; the IR output is only a guide, the real model
    decides later.
    """
    input_shape = graph.input_node.shape
    lower = torch.tensor(case.region.lower, dtype=torch.float32, device=device)
    upper = torch.tensor(case.region.upper, dtype=torch.float32, device=device)
    width = upper - lower
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    best_x: torch.Tensor | None = None
    best_margin: torch.Tensor | None = None
    for round_index in range(config.rounds):
        if time.monotonic() > deadline:
            break
        restarts = config.low_dim_restarts if lower.numel() <= config.low_dim \
            else config.restarts
        starts = torch.rand((restarts, lower.numel()), generator=generator,
                            dtype=torch.float32).to(device)
        x = lower + starts * width
        if round_index == 0:
            x[0] = (lower + upper) / 2
        for step in range(config.steps):
            if time.monotonic() > deadline:
                break
            x = x.detach().requires_grad_(True)
            y = evaluate(graph, x.reshape(-1, *input_shape), dtype=torch.float32, device=device)
            margin = case_margin(y.reshape(y.shape[0], -1), case.disjuncts)
            best_x, best_margin = _keep_best(best_x, best_margin, x.detach(), margin.detach())
            if bool((margin <= 0).any()):
                break
            (grad,) = torch.autograd.grad(margin.sum(), x)
            size = config.step_fraction * (1 - step / config.steps) + 1e-3
            x = torch.minimum(torch.maximum(x - size * width * grad.sign(), lower), upper)
        if best_margin is not None and bool((best_margin <= 0).any()):
            break
    if best_x is None:
        return []
    order = torch.argsort(best_margin)[:4]
    with torch.no_grad():
        y = evaluate(graph, best_x[order].reshape(-1, *input_shape), dtype=torch.float64,
                     device=device)
    return [CandidateCounterexample(best_x[i].double().cpu().numpy(),
                                    y[k].reshape(-1).cpu().numpy(), "pgd")
            for k, i in enumerate(order.tolist())]


def _keep_best(best_x, best_margin, x, margin):
    """Keep the ``len(x)`` lowest-margin points seen so far (per restart slot)."""
    if best_x is None:
        return x.clone(), margin.clone()
    better = margin < best_margin
    best_x = torch.where(better[:, None], x, best_x)
    return best_x, torch.minimum(margin, best_margin)


def sample_candidates(graph: NetworkGraph, case, n: int, seed: int,
                      device: str | torch.device = "cpu") -> list[CandidateCounterexample]:
    """Uniform random points of the box whose IR output violates the case (cheap check)."""
    if n <= 0:
        return []
    rng = np.random.default_rng(seed)
    x = case.region.lower + rng.random((n, case.region.lower.size)) * case.region.width
    with torch.no_grad():
        y = evaluate(graph, x.reshape(n, *graph.input_node.shape), device=device)
    margin = case_margin(y.reshape(n, -1), case.disjuncts)
    idx = torch.argsort(margin)[:4]
    return [CandidateCounterexample(x[i], y[i].reshape(-1).cpu().numpy(), "sampling")
            for i in idx.tolist() if float(margin[i]) <= 0]


def face_candidates(graph: NetworkGraph, case, per_face: int, seed: int,
                    device: str | torch.device = "cpu", chunk: int = 100_000,
                    deadline: float | None = None) -> list[CandidateCounterexample]:
    """Uniform random points on each of the ``2 n`` faces of the box (one coordinate at
    its bound) whose IR output violates the case, most violating first (at most 4).

    For low-dimensional inputs: counterexamples often sit against a face, in slabs too
    thin for uniform sampling (ACAS Xu 1_9 property 7: 6 of 10M uniform points, 14 of
    100k points of the face ``x_0 = lower``).  Stops early (with what it found) once
    ``deadline`` (a ``time.monotonic()`` value) has passed."""
    lower, upper = case.region.lower, case.region.upper
    n_in = lower.size
    if per_face <= 0:
        return []
    rng = np.random.default_rng(seed)
    found: list[tuple[float, np.ndarray, np.ndarray]] = []
    for j in range(n_in):
        for end in (lower[j], upper[j]):
            for start in range(0, per_face, chunk):
                if deadline is not None and time.monotonic() > deadline:
                    break
                k = min(chunk, per_face - start)
                x = lower + rng.random((k, n_in)) * (upper - lower)
                x[:, j] = end
                with torch.no_grad():
                    y = evaluate(graph, x.reshape(k, *graph.input_node.shape),
                                 device=device).reshape(k, -1)
                margin = case_margin(y, case.disjuncts)
                for i in torch.argsort(margin)[:4].tolist():
                    if float(margin[i]) <= 0:
                        found.append((float(margin[i]), x[i], y[i].cpu().numpy()))
    found.sort(key=lambda item: item[0])
    return [CandidateCounterexample(x, y, "faces") for _, x, y in found[:4]]
