"""Manipulation regions as affine images of parameter boxes, and the spec over parameters.

A manipulation family (brightness, contrast, a patch, a norm ball...) moves an image
``x0`` (flattened, ``(n,)``) along an affine map of a few parameters:

    x = offset + A @ p,   p in the box [lower, upper]   (A: (n, k), p: (k,))

optionally followed by a clip to the pixel range (``clip(x, lo, hi)``).  Verification
happens over ``p``: :meth:`ManipulationSpec.parameter_spec` is a plain
:class:`~hybridver.specs.Spec` over the ``k`` parameters whose cases are the
misclassifications, and :mod:`hybridver.manipulations.graph` prepends the map to the
network, so every bound method, back end and branch-and-bound stage applies unchanged.

Norm balls (``l1=EPS``, ``l2=EPS``) are not boxes: their parameters get the box
``[-EPS, EPS]^n``, which CONTAINS the ball, and a :class:`NormGroup` remembers the ball.
The CUT ``sum |p_i| <= EPS`` (L1) or ``sum p_i^2 <= EPS^2`` (L2) is added as an extra
output of the network over parameters and a row of every disjunct (``norm_cut``): a
counterexample must then meet it, and every back end uses it (exactly for L1, whose
absolute values are ReLUs; through the engine's sound relaxation of squares for L2).
Without the cut the box alone is verified.  Either way an ``unsat`` over the box (and
cut) is an ``unsat`` over the ball, and a counterexample counts only when its parameters
lie in the ball (:mod:`hybridver.manipulations.ball`).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np

from hybridver.errors import HybridverInputError
from hybridver.numerics import is_float64, round_down, round_up
from hybridver.specs.spec import InputBox, OutputConstraints, Spec, SpecCase

__all__ = ["AffineMap", "ManipulationError", "ManipulationSpec", "NormGroup"]


class ManipulationError(HybridverInputError):
    """A manipulation family, composition or point that cannot be verified as asked."""


@dataclasses.dataclass(frozen=True)
class NormGroup:
    """Parameters ``columns`` (indices into ``p``) lie in the ``order``-norm ball of radius
    ``eps`` (``order`` 1 or 2); the box of those parameters is ``[-eps, eps]``."""

    columns: tuple[int, ...]
    order: int
    eps: float
    exact_eps: Fraction | None = None

    def measure(self, p: np.ndarray) -> np.ndarray:
        """What the cut bounds, per row of ``p`` ``(m, k)``: ``sum |p_i|`` (L1) or
        ``sum p_i^2`` (L2), as the network over parameters computes it."""
        v = np.asarray(p, dtype=np.float64)[:, list(self.columns)]
        return np.sum(np.abs(v), axis=1) if self.order == 1 else np.sum(v * v, axis=1)

    def cut_offset(self) -> Fraction:
        """``-eps`` (L1) or ``-eps^2`` (L2), exactly: the cut is ``measure + offset <= 0``."""
        q = Fraction(self.eps) if self.exact_eps is None else self.exact_eps
        return -(q ** self.order)

    def norm(self, p: np.ndarray) -> np.ndarray:
        """The group's norm of each row of ``p`` ``(m, k)`` -> ``(m,)``, float64."""
        return np.linalg.norm(np.asarray(p)[:, list(self.columns)], ord=self.order, axis=1)


@dataclasses.dataclass(frozen=True)
class AffineMap:
    """``x = offset + columns @ p`` for ``p`` in ``[lower, upper]``.

    ``offset``: ``(n,)``; ``columns``: ``(n, k)``; ``lower``/``upper``: ``(k,)`` float64
    rounded outward from ``exact_lower``/``exact_upper``, the bounds as Fractions (the
    decimals the user wrote: the box is the exact one, as VNN-LIB constants are); ``labels``: one name per parameter;
    ``norms``: the norm balls inside the box; ``kinds``: the families used (e.g.
    ``{"brightness", "patch"}``).
    """

    offset: np.ndarray
    columns: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    exact_lower: tuple[Fraction, ...]
    exact_upper: tuple[Fraction, ...]
    labels: tuple[str, ...]
    norms: tuple[NormGroup, ...] = ()
    kinds: frozenset = frozenset()

    @staticmethod
    def identity(x0: np.ndarray) -> "AffineMap":
        """No parameter: the point itself."""
        n = int(x0.size)
        return AffineMap(np.asarray(x0, dtype=np.float64).copy(), np.zeros((n, 0)),
                         np.zeros(0), np.zeros(0), (), (), ())

    @property
    def n_params(self) -> int:
        return int(self.columns.shape[1])

    def with_columns(self, cols: np.ndarray, lo: Fraction, hi: Fraction, labels, kind: str,
                     norm: tuple[int, Fraction] | None = None) -> "AffineMap":
        """This map with ``cols`` ``(n, m)`` appended, each parameter in ``[lo, hi]``
        (``norm``: ``(order, eps)`` of a ball over the new parameters)."""
        m = cols.shape[1]
        labels = tuple(labels)
        norms = self.norms
        if norm is not None:
            start = self.n_params
            norms += (NormGroup(tuple(range(start, start + m)), norm[0], float(norm[1]),
                                Fraction(norm[1])),)
        return dataclasses.replace(
            self, columns=np.concatenate([self.columns, cols], axis=1),
            lower=np.concatenate([self.lower, np.full(m, round_down(lo))]),
            upper=np.concatenate([self.upper, np.full(m, round_up(hi))]),
            exact_lower=self.exact_lower + (lo,) * m, exact_upper=self.exact_upper + (hi,) * m,
            labels=self.labels + labels, norms=norms, kinds=self.kinds | {kind})

    def plus(self, other: "AffineMap", x0: np.ndarray) -> "AffineMap":
        """The sum of the two perturbations from ``x0``: ``x0 + (self - x0) + (other - x0)``."""
        shift = self.n_params
        norms = self.norms + tuple(dataclasses.replace(g, columns=tuple(c + shift for c in
                                                                       g.columns))
                                   for g in other.norms)
        return AffineMap(self.offset + other.offset - x0,
                         np.concatenate([self.columns, other.columns], axis=1),
                         np.concatenate([self.lower, other.lower]),
                         np.concatenate([self.upper, other.upper]),
                         self.exact_lower + other.exact_lower,
                         self.exact_upper + other.exact_upper,
                         self.labels + other.labels, norms, self.kinds | other.kinds)


@dataclasses.dataclass(frozen=True)
class ManipulationSpec:
    """Pointwise safety of ``label`` at ``x0`` under ``amap`` (then ``clip``, if given).

    ``x0``: the flattened point ``(n,)``; ``input_shape``: the model's per-sample input
    shape; ``clip``: ``(lo, hi)`` or None; ``pixel_range``: the valid pixel values (the
    clip range, else ``(0, 1)``), used by occlusion, the grid and PNG files; ``grid``:
    the number of grid steps of the pixel range (255 for 8-bit images) or None.
    A counterexample is a parameter vector whose image some class ``j != label`` scores
    at least as high as ``label`` (ties count, as :func:`hybridver.specs.robustness`).
    """

    x0: np.ndarray
    input_shape: tuple[int, ...]
    label: int
    n_classes: int
    amap: AffineMap
    clip: tuple[float, float] | None = None
    pixel_range: tuple[float, float] = (0.0, 1.0)
    grid: int | None = None
    families: tuple[str, ...] = ()
    norm_cut: bool = True

    @property
    def cuts(self) -> tuple[NormGroup, ...]:
        """The norm balls whose cut is an extra network output (``norm_cut``)."""
        return self.amap.norms if self.norm_cut else ()

    @property
    def n_outputs(self) -> int:
        """Outputs of the network over parameters: the classes, then one per cut."""
        return self.n_classes + len(self.cuts)

    @property
    def n_params(self) -> int:
        return self.amap.n_params

    def images(self, p) -> np.ndarray:
        """Images ``(m, n)`` float64 of parameter rows ``p`` ``(m, k)`` (or one ``(k,)``)."""
        p = np.asarray(p, dtype=np.float64).reshape(-1, self.n_params)
        x = self.amap.offset[None, :] + p @ self.amap.columns.T
        if self.clip is not None:
            x = np.clip(x, self.clip[0], self.clip[1])
        return x

    def misclassified(self, y) -> np.ndarray:
        """Per row of logits ``y`` ``(m, n_classes)``: some other class scores at least as
        high as the label (the spec's output condition, decided exactly)."""
        y = np.asarray(y, dtype=np.float64).reshape(-1, self.n_classes)
        others = np.delete(y, self.label, axis=1)
        return np.max(others, axis=1) >= y[:, self.label]

    def parameter_spec(self) -> Spec:
        """The property over ``p``: one case (the parameter box), one disjunct per other
        class ``j``: ``y_label - y_j <= 0``, and with each cut ``measure - eps^order <= 0``
        over the extra outputs (:mod:`hybridver.manipulations.graph`)."""
        m = len(self.cuts)
        d = np.zeros(1 + m)
        exact_d = []
        for g, group in enumerate(self.cuts):
            q = group.cut_offset()
            d[1 + g] = round_down(q)
            if not is_float64(q):
                exact_d.append((1 + g, q))
        disjuncts = []
        for j in range(self.n_classes):
            if j != self.label:
                rows = np.zeros((1 + m, self.n_outputs))
                rows[0, self.label], rows[0, j] = 1.0, -1.0
                rows[1:, self.n_classes:] = np.eye(m)
                disjuncts.append(OutputConstraints(rows, d, tuple(exact_d)))
        a = self.amap
        box = InputBox(a.lower, a.upper,
                       tuple((i, q) for i, q in enumerate(a.exact_lower) if not is_float64(q)),
                       tuple((i, q) for i, q in enumerate(a.exact_upper) if not is_float64(q)))
        name = f"robust(label={self.label}, {', '.join(self.families)})"
        return Spec((SpecCase(box, tuple(disjuncts)),), self.n_params, self.n_outputs,
                    name=name)
