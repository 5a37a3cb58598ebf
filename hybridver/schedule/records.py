"""The scheduler's bookkeeping as JSON-serializable data: one record per decision, and
counters per back end."""

from __future__ import annotations

import collections
import math
from typing import Any

from hybridver.backends.base import Outcome


def _num(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def outcome_summary(outcome: Outcome) -> dict[str, Any]:
    """The parts of an outcome worth logging (no arrays)."""
    return {"status": outcome.status.value, "time_s": _num(outcome.time_s),
            "solver_status": outcome.solver_status,
            "margin_lower_bound": _num(outcome.margin_lower_bound, 9),
            "has_candidate": outcome.candidate is not None, "message": outcome.message[:200]}


class BackendStats:
    """Per back end: jobs run, solver time, wall time, outcomes by status, portfolio wins,
    cancellations."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}

    def add(self, backend: str, outcome: Outcome, wall_s: float, cancelled: bool,
            won: bool) -> None:
        row = self._rows.setdefault(backend, {"calls": 0, "time_s": 0.0, "wall_s": 0.0,
                                              "cancelled": 0, "wins": 0,
                                              "outcomes": collections.Counter()})
        row["calls"] += 1
        row["time_s"] += float(outcome.time_s)
        row["wall_s"] += float(wall_s)
        row["cancelled"] += int(cancelled)
        row["wins"] += int(won)
        row["outcomes"][outcome.status.value] += 1

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: {**row, "time_s": round(row["time_s"], 4),
                       "wall_s": round(row["wall_s"], 4), "outcomes": dict(row["outcomes"])}
                for name, row in sorted(self._rows.items())}
