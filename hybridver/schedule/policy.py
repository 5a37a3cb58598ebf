"""Which back end, if any, gets a subdomain, and for how long.

The policy reads only :class:`~hybridver.schedule.features.SubproblemFeatures` and the back
ends' declared :class:`~hybridver.backends.base.Capabilities` (never a solver).  Its rules
come from measurements (``docs/benchmarks.md``, "Exact back ends", and
``benchmarks/scheduler_oracle.py``); every threshold is a :class:`PolicyConfig` field.

In order:

1. a subdomain the bound already proves, or that no available back end accepts (smooth
   ops without ``smooth_envelopes``, more unstable ReLUs than ``max_binaries_hint``):
   keep branching;
2. budget ``base_budget_s + budget_per_unstable_s * unstable``, clipped to
   ``[min_budget_s, max_budget_s]`` and to ``budget_share`` of the time left; below
   ``min_budget_s``: keep branching;
3. more unstable ReLUs than ``max_unstable``, or than ``unstable_per_s`` times the budget
   (both times ``stagnation_relief`` when the bound stagnated), or shallower than
   ``min_depth`` without stagnation: keep branching (splitting is cheaper);
4. piecewise-linear with at most ``exact_max_unstable`` unstable ReLUs: a back end with
   ``exact_arithmetic`` (z3: a proof without tolerances);
5. a counterexample likely (``cex_likelihood >= cex_likely``, or without an upper bound
   ``gap <= cex_gap``): ``candidate_order`` (OR-Tools/SCIP finds points fastest);
   smooth ops: ``smooth_order``; otherwise (a proof likely): ``proof_order`` (HiGHS);
6. with ``portfolio`` and neither side clear (``portfolio_from <= cex_likelihood <
   cex_likely``, or no likelihood and no ``cex_gap`` hit): the first ``portfolio_size``
   back ends of ``proof_order`` race, the first decisive answer wins.

Defaults, from ``benchmarks/scheduler_oracle.py`` on 48 ACAS Xu subdomains (10 s cap,
HiGHS/OR-Tools/z3 each run on all): HiGHS was fastest on 24 of 37 solvable ones (unsat
proofs), OR-Tools on 13 (ties within 0.05 s on most, and the one sat subdomain it solved
in 0.6 s while HiGHS timed out); z3 solved 1 of 48 (47 unstable ReLUs, 4.6 s) and was never
fastest.  In hybrid runs on ACAS Xu 1_1 property 5, 25 z3 jobs on sub-boxes with at most
4 unstable ReLUs all ran out of their 2-3 s budgets (exact rationals through 300 stable
neurons are slow too), so ``exact_max_unstable = -1``: z3 is never preferred by default,
only ranked last among the eligible back ends.  No back end solved a subdomain with more than 152 unstable ReLUs in
10 s (``max_unstable = 160``); ``cex_likely = 0.995`` sent unsat subdomains with
likelihood 0.98-0.99 to HiGHS, which proved them up to 3.5 s sooner than OR-Tools.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping

from hybridver.backends.base import Capabilities
from hybridver.schedule.features import SubproblemFeatures


class Action(str, enum.Enum):
    KEEP_BRANCHING = "keep_branching"
    RUN = "run"


@dataclasses.dataclass(frozen=True)
class Decision:
    """``backends``: the back ends to run (several: a portfolio race; empty when
    keeping branching); ``budget_s``: time limit of each job; ``reason``: for the log."""

    action: Action
    backends: tuple[str, ...] = ()
    budget_s: float = 0.0
    reason: str = ""

    @property
    def choice(self) -> str:
        """``"keep_branching"``, a back-end name, or ``"a|b"`` for a race."""
        return "|".join(self.backends) if self.action is Action.RUN else self.action.value

    def to_dict(self) -> dict:
        return {"action": self.action.value, "backends": list(self.backends),
                "budget_s": self.budget_s, "reason": self.reason, "choice": self.choice}


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    """Thresholds of :class:`Policy` (see the module docstring for how each is used)."""

    proof_order: tuple[str, ...] = ("highs", "ortools")
    candidate_order: tuple[str, ...] = ("ortools", "highs")
    smooth_order: tuple[str, ...] = ("highs", "ortools")
    exact_max_unstable: int = -1
    cex_likely: float = 0.995
    cex_gap: float = -math.inf
    max_unstable: int = 160
    unstable_per_s: float = 40.0
    stagnation_relief: float = 2.0
    min_depth: int = 0
    base_budget_s: float = 2.0
    budget_per_unstable_s: float = 0.1
    min_budget_s: float = 0.5
    max_budget_s: float = 30.0
    budget_share: float = 0.5
    portfolio: bool = False
    portfolio_size: int = 2
    portfolio_from: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.min_budget_s <= self.max_budget_s:
            raise ValueError("need 0 < min_budget_s <= max_budget_s")
        if not 0 < self.budget_share <= 1:
            raise ValueError("budget_share must be in (0, 1]")
        if self.portfolio_size < 1 or self.unstable_per_s <= 0:
            raise ValueError("portfolio_size >= 1 and unstable_per_s > 0")


class Policy:
    """``decide(features, capabilities) -> Decision`` (pure: same inputs, same answer)."""

    def __init__(self, config: PolicyConfig = PolicyConfig()) -> None:
        self.config = config

    def decide(self, features: SubproblemFeatures,
               capabilities: Mapping[str, Capabilities]) -> Decision:
        cfg = self.config
        form = features.form
        u = form.unstable_relus

        def keep(reason: str) -> Decision:
            return Decision(Action.KEEP_BRANCHING, reason=reason)

        if features.gap is not None and features.gap > 0:
            return keep(f"already proven by the bound (gap {features.gap:.3g} > 0)")
        eligible = {name: caps for name, caps in capabilities.items() if accepts(caps, form)}
        if not eligible:
            what = ("smooth ops " + ", ".join(sorted(form.other_nonlinear_ops))
                    if not form.piecewise_linear else f"{u} unstable ReLUs")
            return keep(f"no available back end accepts it ({what})")
        budget = min(cfg.max_budget_s, max(cfg.min_budget_s,
                                           cfg.base_budget_s + cfg.budget_per_unstable_s * u))
        budget = min(budget, cfg.budget_share * features.time_left_s)
        if budget < cfg.min_budget_s:
            return keep(f"too little time left ({features.time_left_s:.3g} s)")
        relief = cfg.stagnation_relief if features.stagnated else 1.0
        if u > cfg.max_unstable * relief:
            return keep(f"{u} unstable ReLUs > {cfg.max_unstable * relief:g}")
        if u > cfg.unstable_per_s * budget * relief:
            return keep(f"{u} unstable ReLUs too many for a {budget:.3g} s budget")
        if features.depth < cfg.min_depth and not features.stagnated:
            return keep(f"depth {features.depth} < {cfg.min_depth}, bound not stagnating")
        likelihood = features.cex_likelihood
        if likelihood is None:
            cex = features.gap is not None and features.gap <= cfg.cex_gap
            unsure = not cex
            odds = f"gap {features.gap:.3g}" if features.gap is not None else "no bound"
        else:
            cex = likelihood >= cfg.cex_likely
            unsure = cfg.portfolio_from <= likelihood < cfg.cex_likely
            odds = f"cex likelihood {likelihood:.3f}"
        if form.piecewise_linear and u <= cfg.exact_max_unstable:
            exact = sorted(n for n, c in eligible.items() if c.exact_arithmetic)
            if exact:
                return Decision(Action.RUN, (exact[0],), budget,
                                f"{u} unstable ReLUs, piecewise-linear: exact arithmetic")
        if cex:
            order, why = cfg.candidate_order, f"counterexample likely ({odds})"
        elif not form.piecewise_linear:
            order, why = cfg.smooth_order, "smooth ops through envelopes"
        else:
            order, why = cfg.proof_order, f"proof likely ({odds})"
        # the preferred order, then other tolerance-based back ends, exact arithmetic last
        others = sorted((n for n in eligible if n not in order),
                        key=lambda n: (eligible[n].exact_arithmetic, n))
        ranked = [n for n in order if n in eligible] + others
        if cfg.portfolio and unsure and len(ranked) > 1:
            race = tuple(ranked[:cfg.portfolio_size])
            return Decision(Action.RUN, race, budget,
                            f"portfolio race, {u} unstable ReLUs, unsure ({odds})")
        return Decision(Action.RUN, (ranked[0],), budget, f"{why}, {u} unstable ReLUs")


def accepts(caps: Capabilities, form) -> bool:
    """Can a back end with ``caps`` give a proof for a subproblem of this form?"""
    if not caps.exact_piecewise_linear:
        return False
    if not form.piecewise_linear and not caps.smooth_envelopes:
        return False
    if caps.max_inputs_hint is not None and form.n_inputs > caps.max_inputs_hint:
        return False
    if caps.relu_chains_only and not form.relu_chain:
        return False
    return caps.max_binaries_hint is None or form.unstable_relus <= caps.max_binaries_hint
