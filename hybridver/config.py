"""The settings of one verification as one tree of frozen dataclasses with defaults.

:class:`VerifyConfig` is the root.  It carries every component's settings whole (the
attack's, the whole-box bounds', input and activation splitting's, the scheduler's, exact
mode's) and the :class:`Schedule`: which stages run, in which order, and when the races
and hand-offs of branch-and-bound start, as data a config file can change.  The
components define their own settings classes; this module only assembles them, so it
sits above them (``bab``, ``bounds``, ``schedule``, ``backends``) and below the pipeline.

``load_config(path)`` reads a TOML file (stdlib ``tomllib``) into a ``VerifyConfig``:
tables are sub-configs, unknown keys and wrong types are errors (``ConfigError``).
"""

from __future__ import annotations

import dataclasses
import enum

from hybridver import defaults
from hybridver.bab.activation_split import ActivationSplitConfig
from hybridver.bab.attack import AttackConfig
from hybridver.bab.input_split import InputSplitConfig
from hybridver.bab.subdomain_handoff import SubdomainHandoffConfig
from hybridver.backends.options import ExactConfig
from hybridver.bounds.options import AlphaConfig
from hybridver.lipschitz.options import LipschitzConfig
from hybridver.schedule.scheduler import SchedulerConfig

__all__ = ["ActivationSplitConfig", "AlphaConfig", "AttackConfig", "ClusterConfig",
           "RobustConfig",
           "Escalation", "Event",
           "ExactConfig", "InputSplitConfig", "Mode", "Schedule", "SchedulerConfig",
           "SelfCheckConfig", "StageName", "SubdomainHandoffConfig", "VerifyConfig",
           "WholeBoxConfig", "EXACT_SCHEDULE"]


@dataclasses.dataclass(frozen=True)
class SelfCheckConfig:
    """``verify --crosscheck``: every ``unsat`` is decided again by an independent exact
    back end on networks small enough (:mod:`hybridver.pipeline.self_check`).

    ``enabled``: off by default; ``backend``: the back end of the second decision, or
    ``"auto"`` (OR-Tools, else HiGHS, else z3, skipping the back end that exact mode used);
    ``max_neurons``: networks with more outputs of elementwise nonlinearities are not
    re-decided (reported as skipped); ``timeout_s``: the second decision's own time limit,
    spent after the run's (a re-decision that runs out of time leaves the ``unsat``
    standing, reported as inconclusive).
    """

    enabled: bool = False
    backend: str = "auto"
    max_neurons: int = 512
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_neurons < 0 or self.timeout_s <= 0:
            raise ValueError("self_check: max_neurons must be >= 0 and timeout_s > 0")


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """Running on a Ray cluster (``--cluster``; the ``[ray]`` extra; :mod:`hybridver.cluster`).

    ``address``: ``HOST:PORT`` of the head (``ray start --head`` prints it) or ``auto``;
    None: no cluster, everything runs on this machine.  ``executor``: the scheduler's
    back-end jobs run as Ray tasks; ``bab``: input splitting runs as a distributed
    branch-and-bound (:mod:`hybridver.cluster.bab`); ``shards``: its shard workers (None:
    one per CPU of the cluster, less the region race's workers when the schedule races
    beside branch-and-bound); ``slice_s``: seconds a shard works between two reports
    to the coordinator; ``checkpoint_s``: how often a shard sends its open domains, which
    then replace its ledger entry (a lost shard's ledger goes back to the pool);
    ``steal_min``: fewest domains a shard must hold to be stolen from (half of them
    move); ``start_s``: a shard that has not started this many seconds into a search
    (the cluster has no free CPU for it) is given up, its piece going to the others (none
    started: an error); ``keep_shards``: keep the shard actors after the run for the next
    run of this process (a library campaign; they hold their CPUs until the process
    ends; default: a run ends them); ``ship_code``: send the driver's ``hybridver``
    package to the workers.
    """

    address: str | None = None
    executor: bool = True
    bab: bool = True
    shards: int | None = None
    slice_s: float = 0.5
    checkpoint_s: float = 5.0
    steal_min: int = 16
    start_s: float = 30.0
    keep_shards: bool = False
    ship_code: bool = True

    def __post_init__(self) -> None:
        if self.slice_s <= 0 or self.checkpoint_s <= 0 or self.steal_min < 2 \
                or self.start_s <= 0 \
                or (self.shards is not None and self.shards < 1):
            raise ValueError("cluster: slice_s, checkpoint_s and start_s must be > 0, "
                             "steal_min >= 2, shards >= 1")


@dataclasses.dataclass(frozen=True)
class RobustConfig:
    """Switches of ``hybridver robust`` beyond the verifier's own settings (``[robust]`` in
    the config file; :mod:`hybridver.manipulations`).

    ``norm_cut``: add each L1/L2 ball's cut as a network output and spec row (off: the
    box alone); ``ball_search``: search inside L1/L2 balls when the box's counterexample
    is outside them; ``grid_snap``: snap a continuous counterexample to the grid; ``grid_enumeration``:
    decide one-parameter families over the grid by enumeration; ``max_grid_images``: the
    largest grid enumerated.
    """

    norm_cut: bool = True
    ball_search: bool = True
    grid_snap: bool = True
    grid_enumeration: bool = True
    max_grid_images: int = 100_000


class Mode(str, enum.Enum):
    """How ``verify`` searches.

    HYBRID: the stages of :attr:`VerifyConfig.schedule` (sampling, bound propagation, PGD,
    branch-and-bound with hand-offs and races to exact back ends);
    EXACT: the whole query goes to one exact back end (MILP with HiGHS or OR-Tools, SMT with
    z3, region splitting), after LP bound tightening: the one-stage schedule
    :data:`EXACT_SCHEDULE`.
    """

    HYBRID = "hybrid"
    EXACT = "exact"


class StageName(str, enum.Enum):
    """The stages a schedule can name (``hybridver/pipeline/``).

    SAMPLING: uniform points of every case's box; WHOLE_BOX: IBP, CROWN, alpha-CROWN on
    each case's whole box; PGD: gradient attack on the cases still open; INPUT_SPLIT:
    branch-and-bound on the input box (cases with at most ``input_split_max_dim``
    inputs); ACTIVATION_SPLIT: branch-and-bound on the nonlinearities' inputs (the rest);
    EXACT: every disjunct to the exact back end ``exact.backend``.
    """

    SAMPLING = "sampling"
    WHOLE_BOX = "whole_box"
    PGD = "pgd"
    INPUT_SPLIT = "input_split"
    ACTIVATION_SPLIT = "activation_split"
    EXACT = "exact"


class Event(str, enum.Enum):
    """What branch-and-bound starts beside itself on a case, at a scheduled time.

    FACE_ATTACK: random points on the faces of a low-dimensional box (once);
    HANDOFF: input splitting hands its hardest domains to exact back ends;
    REGION_RACE: region splitting (``regions`` back end) races input splitting on a
    ReLU chain; REGION_TAKEOVER: input splitting stops and leaves the cores to the race
    (measured from the race's start); CASE_RACE: an exact back end races activation
    splitting on the whole case; DOMAIN_HANDOFF: activation splitting hands its hard
    domains (decisions and tightened bounds) to exact back ends.
    """

    FACE_ATTACK = "face_attack"
    HANDOFF = "handoff"
    REGION_RACE = "region_race"
    REGION_TAKEOVER = "region_takeover"
    CASE_RACE = "case_race"
    DOMAIN_HANDOFF = "domain_handoff"


@dataclasses.dataclass(frozen=True)
class Escalation:
    """``event`` starts ``after_s`` seconds after the case's branch-and-bound started
    (REGION_TAKEOVER: after the region race started)."""

    event: Event
    after_s: float


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The stages in order, and the escalations inside branch-and-bound; an event absent
    from ``escalations`` never happens.  ``handoff_workers``: worker processes of the
    hand-offs and the case race; ``region_race_workers``: of the region race, whose box
    is cut into ``region_race_parts`` sub-boxes (one job each)."""

    stages: tuple[StageName, ...] = (StageName.SAMPLING, StageName.WHOLE_BOX, StageName.PGD,
                                     StageName.INPUT_SPLIT, StageName.ACTIVATION_SPLIT)
    escalations: tuple[Escalation, ...] = (
        Escalation(Event.FACE_ATTACK, 2.0), Escalation(Event.REGION_RACE, 2.0),
        Escalation(Event.HANDOFF, 3.0), Escalation(Event.REGION_TAKEOVER, 6.0),
        Escalation(Event.CASE_RACE, 0.0), Escalation(Event.DOMAIN_HANDOFF, 2.0))
    handoff_workers: int = defaults.HANDOFF_WORKERS
    region_race_workers: int = defaults.REGION_RACE_WORKERS
    region_race_parts: int = 4

    def after(self, event: Event) -> float | None:
        """Seconds before ``event`` starts, or None when it is not scheduled."""
        times = [e.after_s for e in self.escalations if e.event is Event(event)]
        return min(times) if times else None

    def without(self, *events: Event) -> "Schedule":
        """This schedule with ``events`` removed."""
        return dataclasses.replace(self, escalations=tuple(
            e for e in self.escalations if e.event not in events))

    def at(self, event: Event, after_s: float) -> "Schedule":
        """This schedule with ``event`` at ``after_s`` (added or moved)."""
        return dataclasses.replace(self.without(event), escalations=(
            *self.without(event).escalations, Escalation(Event(event), after_s)))


#: exact mode: one stage, no escalation
EXACT_SCHEDULE = Schedule(stages=(StageName.EXACT,), escalations=())


@dataclasses.dataclass(frozen=True)
class WholeBoxConfig:
    """Bounds on each case's whole box: ``methods`` tried in order until one proves the
    case (a :class:`BoundMethod` value, or ``crown-ibp``: CROWN over IBP intermediate
    bounds; or ``crown-ibp-split``: when at least ``split_min_cases`` open cases have at
    most ``input_split_max_dim`` varying inputs, their boxes bisected ``split_rounds``
    times, at most ``split_max_domains`` pieces per case, the pieces bounded by CROWN-IBP;
    :mod:`hybridver.pipeline.box_split`); ``alpha``: the optimization of
    ``alpha-crown`` (its deadline is the run's; its ``optimize_intermediate`` applies
    only to cases with more than ``input_split_max_dim`` inputs to split, those that
    activation splitting takes);
    ``direct_linear_rules``: :attr:`BoundConfig.direct_linear_rules` (hand-written
    transposes of linear nodes; False only for ablation); ``broadcast_products``:
    :attr:`BoundConfig.broadcast_products` (fewer operand bounds for products of two
    variable matrices; False only for ablation); ``quadratic_forms``:
    :attr:`BoundConfig.quadratic_forms` (quadratic forms as weighted squares; False only
    for ablation); ``case_batch``: cases bounded together by CROWN and alpha-CROWN
    (``ibp_case_batch`` by IBP and CROWN-IBP; 1: one case at a time, for ablation;
    :mod:`hybridver.pipeline.case_batches`)."""

    methods: tuple[str, ...] = ("ibp", "crown-ibp", "crown-ibp-split", "crown",
                                "alpha-crown")
    alpha: AlphaConfig = dataclasses.field(default_factory=AlphaConfig)
    direct_linear_rules: bool = True
    broadcast_products: bool = True
    quadratic_forms: bool = True
    case_batch: int = 4
    ibp_case_batch: int = 1024
    split_rounds: int = 20
    split_max_domains: int = 256
    split_min_cases: int = 16

    def __post_init__(self) -> None:
        if min(self.case_batch, self.ibp_case_batch, self.split_max_domains) < 1 \
                or min(self.split_rounds, self.split_min_cases) < 0:
            raise ValueError("whole_box: case_batch, ibp_case_batch and split_max_domains "
                             "must be >= 1, split_rounds and split_min_cases >= 0")


@dataclasses.dataclass(frozen=True)
class VerifyConfig:
    """Settings of one verification.

    ``timeout_s``: the run's one time limit (a deadline fixed when the run starts);
    ``mode``: HYBRID runs ``schedule``, EXACT runs :data:`EXACT_SCHEDULE` with
    ``exact``; ``device``: torch device of the bound computations; ``threads``: torch
    threads (None: torch's default); ``input_split_max_dim``: cases with at most this
    many inputs are branched on by input splitting, larger ones by activation splitting;
    ``input_split_varying_only``: count only the inputs whose interval in the case has
    positive width (nn4sys fixes most inputs of each case and varies one to four);
    ``attack_case_batch``: cases sampled and attacked (PGD) together (1: one at a time);
    ``sampling_budget``: points the sampling stage evaluates in all cases together, at
    most (a case gets ``attack.samples`` or its share of this, at least 16);
    ``load_check_points``: before the run, the IR is compared with the real model
    (onnxruntime, the torch module) on this many points of the spec's input region (each
    case's centre, a vertex, its corners, uniform points;
    :mod:`hybridver.frontends.model_check`), a mismatch is an error; 0 checks the shapes
    only; ``domain_handoff``: which activation-splitting domains are offered to the
    scheduler (when the schedule has DOMAIN_HANDOFF); ``decision_log``: the report's
    ``stats.scheduler`` carries the scheduler's decision log (its first 200 records), off
    by default; ``self_check``: each ``unsat`` re-decided by an independent exact back end
    (``--crosscheck``); ``cluster``: where jobs and shards run (:class:`ClusterConfig`);
    ``robust``: the switches of ``hybridver robust`` (:class:`RobustConfig`);
    ``lipschitz``: the settings of ``hybridver lipschitz`` (read from a ``[lipschitz]``
    table).  The user-facing defaults come from :mod:`hybridver.defaults`.
    """

    timeout_s: float = defaults.TIMEOUT_S
    mode: Mode = Mode(defaults.MODE)
    device: str = defaults.DEVICE
    threads: int | None = None
    input_split_max_dim: int = 8
    input_split_varying_only: bool = True
    attack_case_batch: int = 64
    sampling_budget: int = 16384
    load_check_points: int = 8
    decision_log: bool = defaults.DECISION_LOG
    attack: AttackConfig = dataclasses.field(default_factory=AttackConfig)
    whole_box: WholeBoxConfig = dataclasses.field(default_factory=WholeBoxConfig)
    input_split: InputSplitConfig = dataclasses.field(
        default_factory=lambda: InputSplitConfig(batch_size=256))
    activation_split: ActivationSplitConfig = dataclasses.field(
        default_factory=ActivationSplitConfig)
    domain_handoff: SubdomainHandoffConfig = dataclasses.field(
        default_factory=SubdomainHandoffConfig)
    scheduler: SchedulerConfig = dataclasses.field(default_factory=SchedulerConfig)
    exact: ExactConfig = dataclasses.field(default_factory=ExactConfig)
    schedule: Schedule = dataclasses.field(default_factory=Schedule)
    self_check: SelfCheckConfig = dataclasses.field(default_factory=SelfCheckConfig)
    cluster: ClusterConfig = dataclasses.field(default_factory=ClusterConfig)
    robust: RobustConfig = dataclasses.field(default_factory=RobustConfig)
    lipschitz: LipschitzConfig = dataclasses.field(default_factory=LipschitzConfig)

    def __post_init__(self) -> None:
        if self.timeout_s < 0 or self.input_split_max_dim < 0 or self.load_check_points < 0:
            raise ValueError("timeout_s, input_split_max_dim and load_check_points must be "
                             ">= 0")
        if self.threads is not None and self.threads < 1:
            raise ValueError("threads must be >= 1")
        if self.attack_case_batch < 1 or self.sampling_budget < 0:
            raise ValueError("attack_case_batch must be >= 1 and sampling_budget >= 0")

    @property
    def stages(self) -> tuple[StageName, ...]:
        """The stages this run executes (exact mode: one)."""
        return EXACT_SCHEDULE.stages if self.mode is Mode.EXACT else self.schedule.stages

    def with_workers(self, workers: int) -> "VerifyConfig":
        """Every worker pool (hand-offs, races) sized ``workers``."""
        return dataclasses.replace(self, schedule=dataclasses.replace(
            self.schedule, handoff_workers=workers, region_race_workers=workers))
