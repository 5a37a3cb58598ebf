"""What the policy may know about a subdomain: its structure and the BaB's run-time view.

The margin of a subdomain is ``m* = min over its inputs of max_rows (C y + d)``; the
property holds there iff ``m* > 0``.  Branch-and-bound knows an interval around it:

* ``gap``: a proven lower bound of ``m*`` (the bound engine's; positive = proven); ``-gap``
  is how far the bound is from proving;
* ``upper``: the margin at the best concrete point tried (domain centre, attack); an upper
  bound of ``m*`` (``<= 0``: that point already is a candidate counterexample).

Where the true margin lies in ``[gap, upper]`` is unknown; :attr:`SubproblemFeatures.
cex_likelihood` is the share of that interval below zero, the best cheap guess of whether
an exact back end will find a counterexample (1) or a proof (0).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from hybridver.problem import Subproblem, SubproblemForm


@dataclasses.dataclass(frozen=True)
class SubproblemFeatures:
    """``form``: :meth:`Subproblem.form`; ``gap``/``upper``: see the module docstring
    (None when unknown); ``depth``: splits from the root domain; ``time_left_s``: of the
    whole verification; ``stagnated``: the bound improved little over the last splits of
    this domain's branch; ``gap_trend``: how much the last split raised the bound (the
    domain's ``gap`` minus its parent's; None when unknown); ``label``: for logs."""

    form: SubproblemForm
    gap: float | None = None
    upper: float | None = None
    depth: int = 0
    time_left_s: float = math.inf
    stagnated: bool = False
    gap_trend: float | None = None
    label: str = ""

    @classmethod
    def of(cls, problem: Subproblem, **runtime: Any) -> "SubproblemFeatures":
        """Features of ``problem`` (its form is computed here) plus run-time fields."""
        runtime.setdefault("label", problem.label)
        return cls(problem.form(), **runtime)

    @property
    def cex_likelihood(self) -> float | None:
        """Share of ``[gap, upper]`` below zero: 0 (bound proves) .. 1 (point violates);
        None without ``upper``."""
        if self.upper is not None and self.upper <= 0:
            return 1.0
        if self.gap is not None and self.gap > 0:
            return 0.0
        if self.upper is None or self.gap is None or not math.isfinite(self.gap):
            return None
        return -self.gap / (self.upper - self.gap)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable (infinities and NaN become None)."""
        def num(v):
            return None if v is None or not math.isfinite(v) else float(v)

        return {"label": self.label, "n_inputs": self.form.n_inputs,
                "unstable_relus": self.form.unstable_relus,
                "other_nonlinear_ops": sorted(self.form.other_nonlinear_ops),
                "n_nodes": self.form.n_nodes, "n_rows": self.form.n_rows,
                "gap": num(self.gap), "upper": num(self.upper),
                "cex_likelihood": num(self.cex_likelihood), "depth": self.depth,
                "time_left_s": num(self.time_left_s), "stagnated": self.stagnated,
                "gap_trend": None if self.gap_trend is None else num(self.gap_trend)}
