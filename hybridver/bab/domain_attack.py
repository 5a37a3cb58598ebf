"""Counterexample search inside the domains of activation splitting
(:mod:`hybridver.bab.activation_split`): signed-gradient descent in a domain's input box on
the violation margin plus the violation of the domain's decisions.  A guide only: every
point it finds is still checked by the caller's probe on the real model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from hybridver.ir.evaluate import evaluate_all

Tensor = torch.Tensor


def _attack_margin(y: Tensor, C: Tensor, d: Tensor, groups: Sequence[slice]) -> Tensor:
    """Violation margin ``(K,)`` of outputs ``y (K, n_out)``: min over disjuncts of max
    over their rows of ``C y + d``; <= 0 means the point violates the property."""
    rows = y @ C.T + d
    return torch.stack([rows[:, g].max(dim=1).values for g in groups], 1).min(dim=1).values


def _domain_attack(graph, lo: Tensor, hi: Tensor, starts: Tensor, C: Tensor, d: Tensor,
                   groups: Sequence[slice], steps: int,
                   restrictions: dict[str, tuple[Tensor, Tensor]] | None = None
                   ) -> tuple[Tensor, Tensor]:
    """Signed-gradient descent from ``starts (K, n_in)``, each kept inside its box
    ``[lo, hi] (K, n_in)``, of the violation margin plus the violation of the domain's
    decisions (``restrictions``: node -> ``(lo, hi) (K, *shape)``, +-inf where free): the
    decisions pull the point into the domain's region, where the bounds say a violation
    may hide, even where the margin is flat.  Steps shrink geometrically from a quarter
    of the box width.  float64 IR evaluation: a guide only.  Returns the best point of each
    start (lowest margin) and its margin."""
    shape = graph.input_node.shape
    width = hi - lo
    x = torch.minimum(torch.maximum(starts, lo), hi)
    best_x, best_m = x.clone(), torch.full((len(x),), np.inf, dtype=torch.float64)
    names = [k for k in (restrictions or {}) if k in graph]
    for step in range(steps + 1):
        last = step == steps
        x = x.detach().requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            values = evaluate_all(graph, x.reshape(-1, *shape), dtype=torch.float64)
            y = values[graph.output_node.name].reshape(len(x), -1)
            margin = _attack_margin(y, C, d, groups)
            objective = margin
            for name in names:
                rl, ru = restrictions[name]
                z = values[name].reshape(len(x), -1)
                gap = (torch.where(torch.isfinite(rl), rl - z, 0.0).clamp(min=0)
                       + torch.where(torch.isfinite(ru), z - ru, 0.0).clamp(min=0))
                objective = objective + gap.sum(1)
        better = margin.detach() < best_m
        best_x = torch.where(better[:, None], x.detach(), best_x)
        best_m = torch.where(better, margin.detach(), best_m)
        if last or bool((best_m <= 0).any()):
            break
        (grad,) = torch.autograd.grad(objective.sum(), x)
        size = 0.25 * 0.6 ** step
        x = torch.minimum(torch.maximum(x - size * width * grad.sign(), lo), hi)
    return best_x, best_m
