"""Synthetic data of a planted benchmark: boxes around points, labels, planted vertices.

A :class:`Boxes` holds ``k`` L_inf boxes in ``n`` input dimensions: ``lower``/``upper``
``(k, n)`` float64 arrays whose entries are float32 numbers (so the box's corners are
exactly inputs a float32 model can be fed, and the VNN-LIB text of the bounds is exact),
``label`` ``(k,)``: the class the property says the whole box must get.

The first ``n_planted`` boxes are planted: each has a ``target`` class and a ``sign``
vector in ``{-1, +1}^n``; its counterexample is the vertex ``where(sign > 0, upper,
lower)``, which training makes score ``target`` above ``label``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hybridver.errors import HybridverInputError

__all__ = ["Boxes", "make_boxes", "neighbour_vertices"]


@dataclasses.dataclass(frozen=True)
class Boxes:
    """``k`` boxes; the first ``n_planted`` are planted (``target``/``sign`` are set for
    them, ``-1``/``0`` elsewhere)."""

    center: np.ndarray  # (k, n) float64 holding float32 numbers
    lower: np.ndarray  # (k, n)
    upper: np.ndarray  # (k, n)
    label: np.ndarray  # (k,) int
    target: np.ndarray  # (k,) int, -1 for normal boxes
    sign: np.ndarray  # (k, n) in {-1, 0, +1}; 0 for normal boxes
    n_planted: int

    @property
    def n_boxes(self) -> int:
        return int(self.label.shape[0])

    def vertices(self) -> np.ndarray:
        """The planted vertices ``(n_planted, n)``."""
        p = self.n_planted
        return np.where(self.sign[:p] > 0, self.upper[:p], self.lower[:p])

    def corner_depth(self, x: np.ndarray) -> np.ndarray:
        """For points ``x`` ``(n_planted, m, n)`` in the planted boxes: the L1 distance to
        the planted vertex in units of the half-width (0 at the vertex, ``2n`` at the
        opposite one)."""
        p = self.n_planted
        half = (self.upper[:p] - self.lower[:p])[:, None, :] / 2
        return np.abs(x - self.vertices()[:, None, :]).sum(-1) / half.mean(-1)


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def _spread_points(k: int, n: int, gap: float, rng: np.random.Generator) -> np.ndarray:
    """``k`` points uniform in ``[-1, 1]^n``, each at L_inf distance >= ``gap`` from the
    others (drawn again while one is too close), so boxes of radius ``gap / 4`` keep a
    free band of two radii between them."""
    points = np.zeros((0, n))
    for _ in range(1000 * max(1, k)):
        if len(points) == k:
            break
        x = rng.uniform(-1.0, 1.0, size=n)
        if not len(points) or np.abs(points - x).max(1).min() >= gap:
            points = np.vstack([points, x])
    if len(points) == k:
        return points
    raise HybridverInputError(f"cannot place {k} boxes of radius {gap / 4:g} apart in {n} "
                              "dimensions (fewer boxes, a smaller eps or more input "
                              "dimensions)")


def make_boxes(n_inputs: int, n_classes: int, eps: float, n_planted: int, n_normal: int,
               rng: np.random.Generator) -> Boxes:
    """Centers uniform in ``[-1, 1]^n`` (rounded to float32), at L_inf distance >= ``4 eps``
    from each other, random labels; planted boxes
    get a random target class other than their label and a random vertex.  The bounds are
    ``center -+ eps`` rounded to the nearest float32 number."""
    k = n_planted + n_normal
    center = _f32(_spread_points(k, n_inputs, 4.0 * eps, rng))
    lower = _f32(center - eps)
    upper = _f32(center + eps)
    label = rng.integers(0, n_classes, size=k)
    target = np.full(k, -1)
    shift = rng.integers(1, n_classes, size=n_planted)
    target[:n_planted] = (label[:n_planted] + shift) % n_classes
    sign = np.zeros((k, n_inputs))
    sign[:n_planted] = rng.choice([-1.0, 1.0], size=(n_planted, n_inputs))
    return Boxes(center, lower, upper, label, target, sign, n_planted)


def neighbour_vertices(boxes: Boxes, m: int, max_flips: int,
                       rng: np.random.Generator) -> np.ndarray:
    """``m`` vertices near each planted vertex ``(n_planted, m, n)``: the planted vertex
    with 1..``max_flips`` random coordinates moved to the opposite bound.  Training keeps
    these correct so that the counterexample stays an isolated corner."""
    p, n = boxes.n_planted, boxes.center.shape[1]
    sign = np.repeat(boxes.sign[:p, None, :], m, axis=1)
    flips = rng.integers(1, max(1, min(max_flips, n)) + 1, size=(p, m))
    order = rng.random((p, m, n)).argsort(-1).argsort(-1)
    sign = np.where(order < flips[..., None], -sign, sign)
    return np.where(sign > 0, boxes.upper[:p, None, :], boxes.lower[:p, None, :])
