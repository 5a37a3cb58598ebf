"""Settings of ``hybridver lipschitz`` (:class:`LipschitzConfig`) and the input norm.

The config tree carries one :class:`LipschitzConfig` as ``VerifyConfig.lipschitz``, so a
TOML file sets it in a ``[lipschitz]`` table; each stage has its own switch for ablations.
"""

from __future__ import annotations

import dataclasses
import enum

__all__ = ["InputNorm", "LipschitzConfig"]


class InputNorm(str, enum.Enum):
    """The norm of input differences; the gradient is measured in its dual norm (inf: L1
    of the gradient, 2: L2, 1: L-inf).  Output differences are measured per output (the
    constant of the whole output vector in L-inf is the max over outputs)."""

    INF = "inf"
    L2 = "2"
    L1 = "1"

    @property
    def dual(self) -> float:
        """The exponent ``q`` of the dual norm ``||g||_q``."""
        return {InputNorm.INF: 1.0, InputNorm.L2: 2.0, InputNorm.L1: float("inf")}[self]


@dataclasses.dataclass(frozen=True)
class LipschitzConfig:
    """Which stages run and their budgets (``time_s`` of the call is split between them).

    ``linear_relaxation``: bound the Jacobian by linear bound propagation on its backward
    graph (off: interval arithmetic only); ``linear_intermediate``: also tighten the
    intervals of the backward graph's inner nodes that way (rows: 2 per neuron per output;
    skipped above ``max_linear_rows`` rows per box); ``vertex_max_varying``: on a box where
    at most this many derivatives vary, the relaxation's exact maximum by enumerating
    their ``2^k`` vertices (0: off); ``bab``: branch-and-bound over the
    input box until the upper bound is within ``rel_gap`` (relative) of the lower bound,
    with ``bab_batch`` boxes split per round, at most ``bab_max_boxes`` leaves,
    and ``bab_share`` of the time; ``milp``: the exact value of ReLU networks by MILP
    (HiGHS), on networks with at most ``milp_max_unstable`` unstable ReLUs over the box
    (its big-M constants come from the whole box's bounds, weak beyond a few dozen; when
    it does not run, branch-and-bound gets all the time);
    ``samples``: random points of the lower bound; ``ascent_steps``: projected gradient
    ascent steps on the gradient norm from the best points (ReLU networks: on a smoothed
    surrogate, the true gradient evaluated at each iterate); ``local_rounds``: rounds of
    random local search around the best points (both stop after ``lower_share`` of the
    time); ``seed``: randomness.
    """

    linear_relaxation: bool = True
    linear_intermediate: bool = True
    max_linear_rows: int = 20000
    vertex_max_varying: int = 10
    bab: bool = True
    rel_gap: float = 1e-6
    bab_batch: int = 16
    bab_max_boxes: int = 65536
    bab_share: float = 0.4
    milp: bool = True
    milp_max_unstable: int = 32
    samples: int = 4096
    ascent_steps: int = 40
    local_rounds: int = 30
    lower_share: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if self.vertex_max_varying < 0 or self.vertex_max_varying > 20:
            raise ValueError("vertex_max_varying must be in 0..20")
        if min(self.max_linear_rows, self.bab_batch, self.bab_max_boxes) < 1:
            raise ValueError("max_linear_rows, bab_batch and bab_max_boxes must be >= 1")
        if self.samples < 1 or min(self.ascent_steps, self.local_rounds,
                                   self.milp_max_unstable) < 0:
            raise ValueError("samples must be >= 1, ascent_steps, local_rounds and "
                             "milp_max_unstable >= 0")
        if self.rel_gap < 0:
            raise ValueError("rel_gap must be >= 0")
        if not (0.0 < self.bab_share <= 1.0 and 0.0 < self.lower_share <= 1.0):
            raise ValueError("bab_share and lower_share must be in (0, 1]")
