"""The check attack of ``hybridver plant``: how hard an attacker must look to find a
counterexample in a box.

For every box (label ``y``) the attack maximises the violation ``v(x) = max_{j != y}
f_j(x) - f_y(x)`` over the box with three searches, all on the torch model in float32:

* random vertices (PGD with sign steps ends on vertices, so they are the likely finds);
* uniform random points of the box;
* PGD: ``restarts`` random starts (and the box center), ``steps`` sign-gradient steps of
  decreasing size, projected on the box; a quarter of the restarts maximise the untargeted
  violation, the rest aim at one other class each (``f_j - f_y``, classes in turn).

A box counts as broken when some point reaches ``v(x) >= -found_slack``: a point that
close to the decision boundary might violate under another runtime's rounding, so it is
treated as found.  Every point tried is inside the box (clipped), so nothing found is
outside.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

__all__ = ["AttackSettings", "AttackOutcome", "attack_boxes", "violation"]


@dataclasses.dataclass(frozen=True)
class AttackSettings:
    """How hard the check attack searches each box."""

    restarts: int = 64  # PGD starts per box
    steps: int = 100  # PGD steps per start
    random_points: int = 2000  # uniform samples per box
    vertex_points: int = 2000  # random vertices per box
    found_slack: float = 1e-4  # a violation >= -found_slack counts as found
    batch: int = 4096  # points per forward pass


@dataclasses.dataclass(frozen=True)
class AttackOutcome:
    """The best point the attack reached in one box: ``best`` = ``v(x)`` there (found when
    ``>= -found_slack``), ``method``: ``"vertex"``, ``"random"`` or ``"pgd"``."""

    found: bool
    best: float
    x: np.ndarray  # (n,) float64, the best point
    method: str


def violation(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """``max_{j != y} f_j - f_y`` per row: ``logits (m, C)``, ``label (m,)`` -> ``(m,)``."""
    own = logits.gather(1, label[:, None])[:, 0]
    others = logits.scatter(1, label[:, None], float("-inf"))
    return others.max(1).values - own


class _Best:
    """Per box: the highest violation seen, where, and by which search."""

    def __init__(self, k: int, n: int):
        self.value = np.full(k, -np.inf)
        self.x = np.zeros((k, n))
        self.method = [""] * k

    def offer(self, box: np.ndarray, x: np.ndarray, v: np.ndarray, method: str) -> None:
        for b in np.unique(box):
            rows = np.nonzero(box == b)[0]
            i = rows[np.argmax(v[rows])]
            if v[i] > self.value[b]:
                self.value[b], self.x[b], self.method[b] = v[i], x[i], method


def _evaluate(model, shape, x: np.ndarray, label: np.ndarray, batch: int) -> np.ndarray:
    out = []
    with torch.no_grad():
        for s in range(0, len(x), batch):
            xs = torch.as_tensor(x[s:s + batch], dtype=torch.float32)
            logits = model(xs.reshape(len(xs), *shape))
            out.append(violation(logits, torch.as_tensor(label[s:s + batch])).double())
    return torch.cat(out).numpy() if out else np.zeros(0)


def _sample(lower, upper, label, count, vertices, rng, model, shape, batch, best, method):
    k, n = lower.shape
    chunk = max(1, batch // k)
    for s in range(0, count, chunk):
        m = min(chunk, count - s)
        u = rng.random((k, m, n))
        if vertices:
            u = (u < 0.5).astype(np.float64)
        x = (lower[:, None] + u * (upper - lower)[:, None]).astype(np.float32)
        x = np.clip(x.astype(np.float64), lower[:, None], upper[:, None]).reshape(k * m, n)
        box = np.repeat(np.arange(k), m)
        best.offer(box, x, _evaluate(model, shape, x, label[box], batch), method)


def _pgd(model, shape, lower, upper, label, n_classes, settings, rng, best):
    k, n = lower.shape
    r = settings.restarts
    lo = torch.as_tensor(np.repeat(lower, r, 0), dtype=torch.float32)
    hi = torch.as_tensor(np.repeat(upper, r, 0), dtype=torch.float32)
    y = torch.as_tensor(np.repeat(label, r))
    start = rng.random((k * r, n))
    start[::r] = 0.5  # one start per box at its center
    x = lo + torch.as_tensor(start, dtype=torch.float32) * (hi - lo)
    # restart i of a box: untargeted when i % 4 == 0, else aimed at the class y + 1 + i % (C-1)
    index = np.tile(np.arange(r), k)
    target = (np.repeat(label, r) + 1 + index % max(1, n_classes - 1)) % n_classes
    targeted = torch.as_tensor(index % 4 != 0)
    target = torch.as_tensor(target)
    for step in range(settings.steps):
        alpha = 0.5 * (hi - lo) * (1.0 - step / settings.steps) + 1e-3 * (hi - lo)
        x = x.detach().requires_grad_(True)
        logits = model(x.reshape(len(x), *shape))
        untargeted = violation(logits, y)
        aimed = logits.gather(1, target[:, None])[:, 0] - logits.gather(1, y[:, None])[:, 0]
        loss = torch.where(targeted, aimed, untargeted)
        best.offer(np.repeat(np.arange(k), r), x.detach().double().numpy(),
                   untargeted.detach().double().numpy(), "pgd")
        (grad,) = torch.autograd.grad(loss.sum(), x)
        x = torch.minimum(torch.maximum(x + alpha * grad.sign(), lo), hi)
    final = _evaluate(model, shape, x.detach().double().numpy(), y.numpy(), settings.batch)
    best.offer(np.repeat(np.arange(k), r), x.detach().double().numpy(), final, "pgd")


def attack_boxes(model: torch.nn.Module, shape: tuple, lower: np.ndarray, upper: np.ndarray,
                 label: np.ndarray, n_classes: int, settings: AttackSettings,
                 seed: int) -> list[AttackOutcome]:
    """Attack ``k`` boxes (``lower``/``upper`` ``(k, n)``, ``label`` ``(k,)``) of a model
    reading ``(batch, *shape)``; one outcome per box."""
    model = model.eval()
    lower, upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    label = np.asarray(label, np.int64)
    rng = np.random.default_rng(seed)
    best = _Best(*lower.shape)
    if len(label):
        _sample(lower, upper, label, settings.vertex_points, True, rng, model, shape,
                settings.batch, best, "vertex")
        _sample(lower, upper, label, settings.random_points, False, rng, model, shape,
                settings.batch, best, "random")
        if settings.restarts and settings.steps:
            _pgd(model, shape, lower, upper, label, n_classes, settings, rng, best)
    return [AttackOutcome(bool(best.value[b] >= -settings.found_slack), float(best.value[b]),
                          best.x[b].copy(), best.method[b]) for b in range(len(label))]
