"""Typed statistics of one run, one dataclass per stage, and their report form.

``to_report()`` writes the report's ``stats`` block (``report_version`` 1, described by
``hybridver/schemas/report-v1.schema.json``).
"""

from __future__ import annotations

import dataclasses
from typing import Any


def _count(table: dict[str, int], key: str) -> None:
    table[key] = table.get(key, 0) + 1


@dataclasses.dataclass
class ConfirmationStats:
    """Points run on the real model (onnxruntime, or the torch module), by what came of them.

    Every stage that searches (sampling, PGD, the probes of branch-and-bound, the exact
    back ends) sends points to the real model: ``real_model_checks`` counts them all.
    ``confirmed``: counterexamples the real model confirmed.  ``unconfirmed_candidates``:
    points a component predicted to violate the property (on the IR, or a back end's
    solution) that the real model did not confirm; nonzero on an ``unsat`` run only where
    the IR and the model disagree at a boundary, worth a look.  ``near_misses``: the best
    points of a search, checked although no violation was predicted (they satisfied the
    property, as expected on an ``unsat`` run).  The last three add up to the first.
    """

    real_model_checks: int = 0
    confirmed: int = 0
    unconfirmed_candidates: int = 0
    near_misses: int = 0

    def count(self, confirmed: bool, predicted_violation: bool) -> None:
        """Count one point run on the real model."""
        self.real_model_checks += 1
        if confirmed:
            self.confirmed += 1
        elif predicted_violation:
            self.unconfirmed_candidates += 1
        else:
            self.near_misses += 1


@dataclasses.dataclass
class WholeBoxStats:
    """Whole-box bounds: disjuncts bounded and refuted, cases proven, calls per method."""

    disjuncts: int = 0
    refuted: int = 0
    cases_proven: int = 0
    methods: dict[str, int] = dataclasses.field(default_factory=dict)

    def count_method(self, method: str) -> None:
        _count(self.methods, method)


def merge_cluster(into: dict[str, Any], counters: dict[str, Any]) -> None:
    """Add one distributed search's counters (``ClusterSearchStats`` as a dict) to
    ``into``: numbers summed, per-shard tables merged, ``shards``/``live`` the largest."""
    for key, value in counters.items():
        if isinstance(value, dict):
            merged = into.setdefault(key, {})
            for shard, amount in value.items():
                merged[shard] = amount if key == "pids" else merged.get(shard, 0) + amount
        elif isinstance(value, list):
            into.setdefault(key, []).extend(value)
        elif key in ("shards", "live"):
            into[key] = max(into.get(key, 0), value)
        else:
            into[key] = into.get(key, 0) + value
    into["searches"] = into.get("searches", 0) + 1


@dataclasses.dataclass
class InputSplitStats:
    """Input splitting: cases, domains, probes, hand-offs and region races (by end)."""

    cases: int = 0
    domains_bounded: int = 0
    probes: int = 0
    delegated: int = 0
    delegated_proven: int = 0
    delegated_returned: int = 0
    handoff_error: str | None = None
    region_races: dict[str, int] = dataclasses.field(default_factory=dict)
    region_race_disagreement: bool = False
    cluster: dict[str, Any] = dataclasses.field(default_factory=dict)

    def add_cluster(self, counters: dict[str, Any]) -> None:
        merge_cluster(self.cluster, counters)

    def to_report(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key, empty in (("handoff_error", None), ("region_races", {}),
                           ("region_race_disagreement", False), ("cluster", {})):
            if out[key] == empty:
                del out[key]
        return out


@dataclasses.dataclass
class ActivationSplitStats:
    """Activation splitting: cases, domains, infeasible domains, attacks inside domains,
    the bound method, the exact races on whole cases (by end), and the domains handed off
    to exact back ends (``delegated``), proven there and given back to branching."""

    cases: int = 0
    domains_bounded: int = 0
    infeasible: int = 0
    attacks: int = 0
    method: str | None = None
    races: dict[str, int] = dataclasses.field(default_factory=dict)
    race_error: str | None = None
    delegated: int = 0
    delegated_proven: int = 0
    delegated_returned: int = 0
    handoff_error: str | None = None
    refine: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    cluster: dict[str, Any] = dataclasses.field(default_factory=dict)

    def add_cluster(self, counters: dict[str, Any]) -> None:
        merge_cluster(self.cluster, counters)

    def to_report(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("race_error", "handoff_error"):
            if out[key] is None:
                del out[key]
        for key in ("refine", "cluster"):
            if not out[key]:
                del out[key]
        return out


@dataclasses.dataclass
class RunStats:
    """Everything a run counts; ``activation_split`` and ``exact`` exist once their stage
    ran; ``backends``: ``{name: {"calls", "time_s", "outcomes": {status: n}}}``."""

    confirmation: ConfirmationStats = dataclasses.field(default_factory=ConfirmationStats)
    bounds: WholeBoxStats = dataclasses.field(default_factory=WholeBoxStats)
    input_split: InputSplitStats = dataclasses.field(default_factory=InputSplitStats)
    activation_split: ActivationSplitStats | None = None
    exact: dict[str, Any] | None = None
    backends: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    scheduler: dict[str, Any] | None = None

    def add_backend_rows(self, rows: dict[str, dict[str, Any]]) -> None:
        """Add a scheduler's per-back-end rows to ``backends``."""
        for name, row in rows.items():
            entry = self.backends.setdefault(name, {"calls": 0, "time_s": 0.0, "outcomes": {}})
            entry["calls"] += row["calls"]
            entry["time_s"] += row["time_s"]
            for status, count in row["outcomes"].items():
                entry["outcomes"][status] = entry["outcomes"].get(status, 0) + count

    def to_report(self) -> dict[str, Any]:
        """The report's ``stats`` block."""
        out: dict[str, Any] = {"confirmation": dataclasses.asdict(self.confirmation),
                               "bounds": dataclasses.asdict(self.bounds),
                               "input_split": self.input_split.to_report(),
                               "backends": self.backends}
        if self.activation_split is not None:
            out["activation_split"] = self.activation_split.to_report()
        if self.exact is not None:
            out["exact"] = self.exact
        if self.scheduler is not None:
            out["scheduler"] = self.scheduler
        return out
