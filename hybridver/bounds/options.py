"""Settings of the bound engine: frozen dataclasses with defaults (no free-form dicts)."""

from __future__ import annotations

import dataclasses
import enum

import torch


class BoundMethod(str, enum.Enum):
    """How the final bounds are computed.

    IBP: interval arithmetic only; CROWN: backward linear bound propagation (intersected
    with IBP); ALPHA_CROWN: CROWN, then the optimizable relaxations' parameters are
    tuned per spec row by gradient ascent on the bound (never looser than CROWN);
    ALPHA_BETA_CROWN: alpha-CROWN that also optimizes, jointly, one Lagrange multiplier
    per restricted neuron end (beta-CROWN), so that the ``restrictions`` of
    :func:`~hybridver.bounds.engine.compute_bounds` (branching decisions) act as linear
    constraints in the final backward pass and not only through intervals.  Without
    restrictions it is alpha-CROWN.
    """

    IBP = "ibp"
    CROWN = "crown"
    ALPHA_CROWN = "alpha-crown"
    ALPHA_BETA_CROWN = "alpha-beta-crown"

    @property
    def optimized(self) -> bool:
        """The final pass is optimized by gradient ascent (alpha, and maybe beta)."""
        return self in (BoundMethod.ALPHA_CROWN, BoundMethod.ALPHA_BETA_CROWN)


class IntermediateMethod(str, enum.Enum):
    """Where the pre-activation intervals of nonlinear nodes come from (CROWN methods).

    CROWN: a backward pass from every pre-activation node (tight, the standard choice);
    IBP: interval arithmetic only (cheap, loose).  Either is intersected with IBP and with
    the caller's restrictions.
    """

    CROWN = "crown"
    IBP = "ibp"


_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclasses.dataclass(frozen=True)
class AlphaConfig:
    """alpha-CROWN optimization of the final backward pass.

    ``iterations`` Adam steps with learning rate ``lr`` (multiplied by ``lr_decay`` every
    step).  Stops early when every spec row's lower bound is > 0 (``stop_when_proven``)
    or when the summed best bound has not improved by more than ``tolerance`` (relative
    to its magnitude, plus ``tolerance`` absolute) for ``patience`` consecutive steps
    (``patience=0`` never stops on stagnation).  ``beta_lr``: Adam's learning rate for
    the split multipliers of ALPHA_BETA_CROWN (they start at 0, where the bound is
    alpha-CROWN's, and are projected onto their sign constraints after every step).
    ``deadline``: a ``time.monotonic()`` value after which no further step starts (every
    iterate's bound is sound, so stopping early only loosens it); None: no limit.
    ``optimize_intermediate``: with ALPHA_CROWN and CROWN intermediate bounds, the
    intermediate passes get their own parameters too, optimized jointly for the final
    bound (:mod:`hybridver.bounds.joint`; each iteration then costs a full CROWN
    computation); False: they keep CROWN's bounds (one final pass per iteration).
    ALPHA_BETA_CROWN always keeps them.  ``intermediate_lr``: Adam's learning rate for
    those intermediate parameters (decayed like ``lr``).
    """

    iterations: int = 20
    lr: float = 0.5
    lr_decay: float = 0.98
    patience: int = 4
    tolerance: float = 1e-4
    stop_when_proven: bool = True
    beta_lr: float = 0.05
    deadline: float | None = None
    optimize_intermediate: bool = True
    intermediate_lr: float = 0.1

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.patience < 0:
            raise ValueError("AlphaConfig: iterations and patience must be >= 0")
        if not self.lr > 0 or not 0 < self.lr_decay <= 1 or not self.beta_lr > 0 \
                or not self.intermediate_lr > 0:
            raise ValueError("AlphaConfig: lr, beta_lr and intermediate_lr must be > 0 and "
                             "lr_decay in (0, 1]")


@dataclasses.dataclass(frozen=True)
class BoundConfig:
    """How :func:`hybridver.bounds.engine.compute_bounds` bounds a network.

    ``dtype``: ``"float32"`` (default, the hot path) or ``"float64"``; intervals are
    always float64.  Rounding of the backward pass is covered by a rigorous running error
    bound (:mod:`hybridver.bounds.crown`); ``relaxation_ulps`` is the number of units in the
    last place (times the magnitudes involved) by which every relaxation's bias is
    widened to cover the rounding inside the relaxation's own computation.
    ``memory_limit_bytes``: chunk spec rows (and then subdomains) so that one backward
    pass stays below this estimate.  ``interval_fallback``: a node with no linear rule and
    no relaxation (e.g. softmax that was not decomposed) is cut out of the backward pass
    and bounded by its interval instead of raising :class:`UnsupportedBoundError`.
    ``direct_linear_rules``: linear nodes (transposed convolutions, data movement,
    elementwise ops with constants) are transposed by the hand-written rules of
    :mod:`hybridver.bounds.linear_transposes` instead of the evaluator's vmap'ed vjp (same
    map, much faster; off only for ablation).  ``broadcast_products``: a product of two
    variable matrices is decomposed into a MUL that broadcasts its operands (bounds of
    ``m k + k n`` operand entries, not ``2 m k n``; same bounds; off only for ablation).
    ``quadratic_forms``: a quadratic form ``u^T P u`` is bounded as weighted squares of
    eigen-coordinates (:mod:`hybridver.ir.quadratic`; tighter lower bounds of a
    positive-definite form than products; off only for ablation).
    ``deadline``: a ``time.monotonic()`` value; past it the passes stop and raise
    :class:`~hybridver.errors.DeadlineExceeded` (checked at every node of the interval
    pass and of every backward pass, and before every alpha step); None: no limit.
    ``alpha.deadline``, by contrast, only ends the alpha optimization early (a sound,
    looser bound is still returned).
    """

    method: BoundMethod = BoundMethod.CROWN
    dtype: str = "float32"
    intermediate: IntermediateMethod = IntermediateMethod.CROWN
    relaxation_ulps: float = 64.0
    memory_limit_bytes: int = 1 << 30
    interval_fallback: bool = False
    direct_linear_rules: bool = True
    broadcast_products: bool = True
    quadratic_forms: bool = True
    alpha: AlphaConfig = dataclasses.field(default_factory=AlphaConfig)
    deadline: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", BoundMethod(self.method))
        object.__setattr__(self, "intermediate", IntermediateMethod(self.intermediate))
        if str(self.dtype) not in _DTYPES:
            raise ValueError(f"BoundConfig.dtype must be one of {sorted(_DTYPES)}, "
                             f"got {self.dtype!r}")
        if self.relaxation_ulps < 0 or self.memory_limit_bytes < 1:
            raise ValueError("BoundConfig: relaxation_ulps >= 0 and memory_limit_bytes >= 1")

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[str(self.dtype)]
