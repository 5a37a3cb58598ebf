"""Settings as frozen dataclasses with defaults; no global mutable state."""

from __future__ import annotations

import dataclasses
import enum


class Mode(str, enum.Enum):
    """How ``verify`` searches.

    HYBRID: sampling, bound propagation, PGD and input-splitting branch-and-bound (the
    scheduler's hand-off to exact back ends grows behind this mode);
    EXACT: the whole query goes to one exact back end (MILP with HiGHS or OR-Tools, SMT with
    z3), after LP bound tightening.
    """

    HYBRID = "hybrid"
    EXACT = "exact"


@dataclasses.dataclass(frozen=True)
class AttackConfig:
    """Falsification: uniform sampling, then projected gradient descent on the margin.

    ``samples`` uniform points of the box are evaluated first; if none violates,
    ``restarts`` random starting points (plus the box centre) run as one batch for ``steps``
    signed-gradient steps of size ``step_fraction * box width``, decaying linearly.
    Inputs of at most ``low_dim`` dimensions (ACAS Xu's 5) are cheap to attack, so they
    get ``low_dim_restarts`` starts instead (on ACAS Xu 2_9 property 8, 64 starts miss the
    counterexample and 1024 find it in 0.2 s).  A low-dimensional case that input
    splitting has not decided after ``face_after_s`` seconds gets ``face_samples`` random
    points on each face of its box (``bab/attack.face_candidates``; ACAS Xu 1_9 property 7
    has its counterexamples in a slab against a face: 0.5 s with 20,000 per face).
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
    face_after_s: float = 2.0


@dataclasses.dataclass(frozen=True)
class VerifyConfig:
    """Settings of one verification.

    ``backend``: the exact back end of ``Mode.EXACT``; ``bound_methods``: whole-box bound
    methods tried in order; ``input_split_max_dim``:
    inputs up to this size are branched on by input splitting, larger ones by splitting
    activations (``activation_split``; off: whole-box bounds only); ``split_batch``:
    subdomains bounded per call.  ``handoff``: input-splitting branch-and-bound that is
    still running after ``handoff_after_s`` seconds hands hard domains to exact back ends
    through the scheduler (``hybridver.schedule``), on ``handoff_workers`` worker processes.
    ``region_race``: for chains of affine layers and ReLUs with inputs small enough for
    input splitting, region splitting (the ``regions`` back end) races input splitting on
    each case once input splitting has run ``region_race_after_s``: the box in
    ``region_race_parts`` parts, on ``region_race_workers`` worker processes; after
    ``region_takeover_s`` more, input splitting stops and the race has the cores (needs
    ``handoff``, which enables worker processes).
    """

    timeout_s: float = 300.0
    mode: Mode = Mode.HYBRID
    attack: AttackConfig = dataclasses.field(default_factory=AttackConfig)
    device: str = "cpu"
    backend: str = "highs"
    bound_methods: tuple[str, ...] = ("ibp", "crown", "alpha-crown")
    input_split_max_dim: int = 8
    activation_split: bool = True
    split_batch: int = 256
    handoff: bool = True
    handoff_workers: int = 1
    handoff_after_s: float = 3.0
    region_race: bool = True
    region_race_after_s: float = 2.0
    region_race_parts: int = 4
    region_race_workers: int = 2
    region_takeover_s: float = 6.0
