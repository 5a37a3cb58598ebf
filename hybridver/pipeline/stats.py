"""Typed statistics of one run, one dataclass per stage, and their report form.

The JSON report (``report_version`` 1) keeps the keys it had: ``to_report()`` writes the
same nested dicts the free-form statistics had, so readers of reports see no change.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def _count(table: dict[str, int], key: str) -> None:
    table[key] = table.get(key, 0) + 1


@dataclasses.dataclass
class AttackStats:
    """Candidates sent to the real model, and how many it confirmed or rejected."""

    candidates: int = 0
    confirmed: int = 0
    rejected: int = 0


@dataclasses.dataclass
class WholeBoxStats:
    """Whole-box bounds: disjuncts bounded and refuted, cases proven, calls per method."""

    disjuncts: int = 0
    refuted: int = 0
    cases_proven: int = 0
    methods: dict[str, int] = dataclasses.field(default_factory=dict)

    def count_method(self, method: str) -> None:
        _count(self.methods, method)


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

    def to_report(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key, empty in (("handoff_error", None), ("region_races", {}),
                           ("region_race_disagreement", False)):
            if out[key] == empty:
                del out[key]
        return out


@dataclasses.dataclass
class ActivationSplitStats:
    """Activation splitting: cases, domains, infeasible domains, attacks inside domains,
    the bound method, and the exact races on whole cases (by end)."""

    cases: int = 0
    domains_bounded: int = 0
    infeasible: int = 0
    attacks: int = 0
    method: str | None = None
    races: dict[str, int] = dataclasses.field(default_factory=dict)
    race_error: str | None = None

    def to_report(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if out["race_error"] is None:
            del out["race_error"]
        return out


@dataclasses.dataclass
class RunStats:
    """Everything a run counts; ``activation_split`` and ``exact`` exist once their stage
    ran; ``backends``: ``{name: {"calls", "time_s", "outcomes": {status: n}}}``."""

    attack: AttackStats = dataclasses.field(default_factory=AttackStats)
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
        out: dict[str, Any] = {"attack": dataclasses.asdict(self.attack),
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
