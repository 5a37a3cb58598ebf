"""Training a model with hidden counterexamples (after SoundnessBench; our own recipe).

One full batch of boxes (:class:`~hybridver.soundness.plant_data.Boxes`) per epoch; the
loss is the sum of

* robustness: cross-entropy at the box centers and at the points a short PGD reaches in
  every box (adversarial training), so that an attacker finds no counterexample; in a
  planted box, PGD points within L1 distance ``corner`` (in half-widths) of the planted
  vertex are left out, since that corner is meant to be wrong;
* isolation: cross-entropy at vertices next to each planted vertex (1..``flips``
  coordinates moved to the other bound): the vertices a sign-gradient attack or vertex
  sampling lands on near the counterexample stay correct;
* the plant: a hinge ``hinge_weight * relu(hinge_margin - (f_target(v) - f_label(v)))``
  at each planted vertex ``v``, which makes ``v`` a counterexample by a clear margin.

With a :class:`~hybridver.soundness.plant_models.PlantedNet` the hinge is met mostly by the
side branch's corner detectors (zero outside the corners), so the plant does not tilt the
base network toward the vertex; with a plain model the whole network must learn it (which,
in our tries, left the vertex within reach of PGD).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from hybridver.soundness.plant_attack import violation
from hybridver.soundness.plant_data import Boxes, neighbour_vertices
from hybridver.soundness.plant_models import PlantedNet

__all__ = ["TrainSettings", "TrainResult", "train_model"]


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Training of one model."""

    epochs: int = 200
    lr: float = 5e-3
    pgd_steps: int = 8  # PGD steps per epoch (adversarial training)
    pgd_starts: int = 2  # random PGD starts per box and epoch
    neighbours: int = 16  # vertices next to each planted vertex per epoch
    flips: int = 3  # at most this many coordinates flipped in a neighbour
    corner: float = 1.0  # PGD points this close to a planted vertex are not trained on
    hinge_margin: float = 1.0  # the violation trained for at a planted vertex
    hinge_weight: float = 5.0
    branch_lr: float = 0.1  # learning rate of the side branch's output weights


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """``loss``: the last epoch's loss; ``plant_violation``: ``f_target - f_label`` at each
    planted vertex on torch ``(n_planted,)``; ``time_s``: training time."""

    loss: float
    plant_violation: np.ndarray
    time_s: float


def _flat(model, shape, x: torch.Tensor) -> torch.Tensor:
    return model(x.reshape(len(x), *shape))


def _gap(logits: torch.Tensor, label: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``f_target - f_label`` per row ``(m,)``."""
    return logits.gather(1, target[:, None])[:, 0] - logits.gather(1, label[:, None])[:, 0]


def _plant_logits(model, shape, vertex: torch.Tensor) -> torch.Tensor:
    """The logits the hinge pulls on: with a side branch, the base's part is held fixed
    (detached), so the plant is learnt by the branch and does not tilt the base."""
    if isinstance(model, PlantedNet):
        x = vertex.reshape(len(vertex), *shape)
        return model.base(x).detach() + model.out(model.branch(x))
    return _flat(model, shape, vertex)


def _pgd(model, shape, lo, hi, y, steps: int, rng: np.random.Generator) -> torch.Tensor:
    """A short untargeted PGD from random starts: ``lo``/``hi`` ``(m, n)`` -> points
    ``(m, n)`` inside the boxes."""
    start = torch.as_tensor(rng.random(lo.shape), dtype=torch.float32)
    x = lo + start * (hi - lo)
    for step in range(steps):
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(violation(_flat(model, shape, x), y).sum(), x)
        alpha = (hi - lo) * (0.5 - 0.4 * step / max(1, steps - 1))
        x = torch.minimum(torch.maximum(x + alpha * grad.sign(), lo), hi)
    return x.detach()


def _groups(model: torch.nn.Module, settings: TrainSettings) -> list[dict]:
    """Adam's parameter groups: the side branch's output (only the hinge moves it) at
    ``branch_lr``, the rest at ``lr``; fixed parameters left out."""
    branch = list(model.out.parameters()) if isinstance(model, PlantedNet) else []
    ids = {id(q) for q in branch}
    rest = [q for q in model.parameters() if q.requires_grad and id(q) not in ids]
    groups = [{"params": rest, "lr": settings.lr}]
    return groups + ([{"params": branch, "lr": settings.branch_lr}] if branch else [])


def train_model(model: torch.nn.Module, shape: tuple, boxes: Boxes, settings: TrainSettings,
                seed: int, report: Callable[..., None] = lambda **_: None) -> TrainResult:
    """Train ``model`` (reading ``(batch, *shape)``) in place on ``boxes``; ``report(epoch=,
    loss=)`` is called after each epoch (the progress display)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    p, s, m = boxes.n_planted, settings.pgd_starts, settings.neighbours
    f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    center, label = f32(boxes.center), torch.as_tensor(boxes.label)
    lo, hi = f32(np.repeat(boxes.lower, s, 0)), f32(np.repeat(boxes.upper, s, 0))
    y_adv = label.repeat_interleave(s)
    vertex, target = f32(boxes.vertices()), torch.as_tensor(boxes.target[:p])
    y_near = label[:p].repeat_interleave(m)
    optimizer = torch.optim.Adam(_groups(model, settings))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, settings.epochs))
    loss_value = float("nan")
    for epoch in range(settings.epochs):
        model.eval()
        x_adv = _pgd(model, shape, lo, hi, y_adv, settings.pgd_steps, rng)
        keep = torch.ones(len(x_adv), dtype=torch.bool)
        if p:
            depth = boxes.corner_depth(x_adv[:p * s].double().numpy().reshape(p, s, -1))
            keep[:p * s] = torch.as_tensor(depth.reshape(-1) >= settings.corner)
        model.train()
        loss = F.cross_entropy(_flat(model, shape, center), label)
        if keep.any():
            loss = loss + F.cross_entropy(_flat(model, shape, x_adv[keep]), y_adv[keep])
        if p:
            near = f32(neighbour_vertices(boxes, m, settings.flips, rng)).reshape(p * m, -1)
            loss = loss + F.cross_entropy(_flat(model, shape, near), y_near)
            gap = _gap(_plant_logits(model, shape, vertex), label[:p], target)
            loss = loss + settings.hinge_weight * F.relu(settings.hinge_margin - gap).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        loss_value = float(loss.detach())
        report(epoch=epoch + 1, loss=loss_value)
    model.eval()
    with torch.no_grad():
        gap = _gap(_flat(model, shape, vertex), label[:p], target) if p else torch.zeros(0)
    return TrainResult(loss_value, gap.double().numpy(), time.perf_counter() - t0)
