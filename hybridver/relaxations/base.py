"""The relaxation interface: sound linear bounds of a nonlinearity on an input interval.

One module per op family registers a :class:`UnaryRelaxation` (elementwise ``y = f(x)``) or
a :class:`BinaryRelaxation` (``z = g(x, y)`` elementwise, e.g. products) under its
:class:`~hybridver.ir.ops.OpKind`.  The bound engine (CROWN, alpha-CROWN), branch-and-bound
and the encoders only talk to this interface and to :class:`Traits`; a new nonlinearity
needs no edits elsewhere.

Soundness contract (checked by ``tests/relaxations/test_conformance.py`` for every
registered op): for every ``x`` in ``[lower, upper]`` (elementwise),

    lower_slope * x + lower_bias  <=  f(x)  <=  upper_slope * x + upper_bias

in exact arithmetic, for ANY ``alpha`` in ``[0, 1]``.  The relaxations are computed in the
dtype of ``lower``; the engine widens the biases to cover rounding (``docs/soundness.md``).
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from hybridver.ir.ops import OpKind

Tensor = torch.Tensor


@dataclasses.dataclass(frozen=True)
class Traits:
    """Properties of a nonlinearity as data, queried by branching, encoders and tests.

    ``breakpoints``: kinks of a piecewise-linear function (ReLU: ``(0.0,)``);
    ``inflection``: the point where an S-shaped function switches from convex to concave;
    ``period``: for periodic functions; ``domain``: where ``f`` is defined (inputs outside
    are an error of the model, e.g. ``sqrt`` of a negative number).
    """

    piecewise_linear: bool = False
    monotone: str | None = None        # "increasing", "decreasing" or None
    s_shaped: bool = False
    convex: bool = False               # convex on its whole domain (exp, x**2)
    concave: bool = False              # concave on its whole domain (log, sqrt)
    inflection: float | None = None
    period: float | None = None
    breakpoints: tuple[float, ...] = ()
    domain: tuple[float, float] = (-math.inf, math.inf)


@dataclasses.dataclass(frozen=True)
class LinearBounds:
    """Elementwise linear bounds ``lower_slope*x + lower_bias <= f(x) <= upper_slope*x + upper_bias``.

    All four tensors broadcast to the shape of the interval they were computed for,
    ``(..., batch, *node.shape)`` (a leading spec axis appears when alpha has one).
    """

    lower_slope: Tensor
    lower_bias: Tensor
    upper_slope: Tensor
    upper_bias: Tensor


@dataclasses.dataclass(frozen=True)
class BilinearBounds:
    """Elementwise planes for ``z = g(x, y)``:
    ``lower_x*x + lower_y*y + lower_bias <= g(x, y) <= upper_x*x + upper_y*y + upper_bias``."""

    lower_x: Tensor
    lower_y: Tensor
    lower_bias: Tensor
    upper_x: Tensor
    upper_y: Tensor
    upper_bias: Tensor


class UnaryRelaxation(ABC):
    """Linear relaxations of an elementwise function ``f``.

    ``attrs`` is the node's attribute mapping, plus ``"exponent"`` for POW (taken by the
    engine from the constant second operand).

    Optional hook: ``initial_alpha(lower, upper, attrs) -> (alpha_lower, alpha_upper)``
    giving the alphas that reproduce the ``alpha=None`` choice; alpha-CROWN starts from it
    when a relaxation defines it (else from a small grid search at the box centre).
    """

    op: ClassVar[OpKind]
    traits: ClassVar[Traits]
    #: Whether ``alpha`` changes the bounds (alpha-CROWN optimizes only those ops).
    optimizable: ClassVar[bool] = False

    @abstractmethod
    def function(self, x: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        """The exact function, elementwise (reference for tests and sampling)."""

    @abstractmethod
    def bounds(self, lower: Tensor, upper: Tensor, attrs: Mapping[str, Any],
               alpha_lower: Tensor | None = None, alpha_upper: Tensor | None = None
               ) -> LinearBounds:
        """Linear bounds valid on ``[lower, upper]`` (same shapes, ``lower <= upper``).

        ``alpha_lower`` / ``alpha_upper``: ``None`` for the default (CROWN) choice, or
        tensors in ``[0, 1]`` broadcastable against ``lower`` (possibly with extra leading
        axes) that select among valid bounds (e.g. the lower slope of ReLU, a tangent
        point of sigmoid).  Every alpha in ``[0, 1]`` must give sound bounds.
        """

    def negative_slope(self, attrs: Mapping[str, Any]) -> float | None:
        """``a`` when ``f(x) = x`` for ``x >= 0`` and ``a*x`` for ``x < 0`` (ReLU 0, LeakyReLU
        its ``alpha``, Abs -1): the one piecewise-linear form the exact encoders (MILP, SMT)
        encode with two lines; None for any other function (the default)."""
        return None

    def branch_point(self, lower: Tensor, upper: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        """Where to split ``[lower, upper]`` in branch-and-bound (default: the midpoint;
        piecewise-linear ops split at their breakpoint)."""
        if self.traits.breakpoints:
            point = torch.full_like(lower, self.traits.breakpoints[0])
            return torch.where((lower < point) & (point < upper), point, (lower + upper) / 2)
        return (lower + upper) / 2


class BinaryRelaxation(ABC):
    """Linear (plane) relaxations of an elementwise function of two variables."""

    op: ClassVar[OpKind]
    traits: ClassVar[Traits]
    optimizable: ClassVar[bool] = False

    @abstractmethod
    def function(self, x: Tensor, y: Tensor, attrs: Mapping[str, Any]) -> Tensor:
        """The exact function, elementwise."""

    @abstractmethod
    def bounds(self, x_lower: Tensor, x_upper: Tensor, y_lower: Tensor, y_upper: Tensor,
               attrs: Mapping[str, Any], alpha_lower: Tensor | None = None,
               alpha_upper: Tensor | None = None) -> BilinearBounds:
        """Planes valid on the box ``[x_lower, x_upper] x [y_lower, y_upper]``."""


_REGISTRY: dict[OpKind, UnaryRelaxation | BinaryRelaxation] = {}


def register(cls: type) -> type:
    """Class decorator: instantiate and register under ``cls.op``."""
    if cls.op in _REGISTRY:
        raise ValueError(f"a relaxation for {cls.op.value} is already registered")
    _REGISTRY[cls.op] = cls()
    return cls


def _load_families() -> None:
    # importing the family modules runs their @register decorators
    from hybridver.relaxations import families  # noqa: F401


def get_relaxation(op: OpKind) -> UnaryRelaxation | BinaryRelaxation | None:
    """The registered relaxation for ``op``, or None when there is none."""
    _load_families()
    return _REGISTRY.get(op)


def registered_ops() -> dict[OpKind, UnaryRelaxation | BinaryRelaxation]:
    """A copy of the registry (every relaxation the conformance suite must test)."""
    _load_families()
    return dict(_REGISTRY)


def is_piecewise_linear(op: OpKind) -> bool:
    """Whether ``op`` has a registered relaxation whose traits say piecewise linear."""
    relaxation = get_relaxation(op)
    return relaxation is not None and relaxation.traits.piecewise_linear


def piecewise_linear_ops() -> frozenset[OpKind]:
    """Every registered op whose traits say piecewise linear (ReLU, LeakyReLU, Abs...)."""
    return frozenset(op for op, r in registered_ops().items() if r.traits.piecewise_linear)


def kink_slope(op: OpKind, attrs: Mapping[str, Any]) -> float | None:
    """For a piecewise-linear ``op`` of the form ``x`` / ``a*x`` (see
    :meth:`UnaryRelaxation.negative_slope`): ``a`` from the node's ``attrs``; else None."""
    relaxation = get_relaxation(op)
    if not isinstance(relaxation, UnaryRelaxation) or not relaxation.traits.piecewise_linear:
        return None
    return relaxation.negative_slope(attrs)
