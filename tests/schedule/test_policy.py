"""Policy decisions on synthetic forms (no solver is involved)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from hybridver.backends.base import Capabilities
from hybridver.problem import SubproblemForm
from hybridver.schedule import Action, Policy, PolicyConfig, SubproblemFeatures

MILP = Capabilities(exact_piecewise_linear=True, smooth_envelopes=True, max_binaries_hint=2000)
Z3 = Capabilities(exact_piecewise_linear=True, smooth_envelopes=True, exact_arithmetic=True,
                  max_binaries_hint=20)
ALL = {"highs": MILP, "ortools": MILP, "z3": Z3}


def feats(unstable=40, smooth=(), **runtime) -> SubproblemFeatures:
    form = SubproblemForm(n_inputs=5, unstable_relus=unstable,
                          other_nonlinear_ops=frozenset(smooth), n_nodes=13, n_rows=4)
    runtime.setdefault("time_left_s", 100.0)
    return SubproblemFeatures(form, **runtime)


def decide(f, caps=ALL, **config):
    return Policy(PolicyConfig(**config)).decide(f, caps)


def test_importing_the_scheduler_imports_no_solver():
    code = ("import sys, hybridver.schedule; "
            "print(sorted(m for m in ('highspy', 'z3', 'ortools') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_few_unstable_piecewise_linear_goes_to_exact_arithmetic_when_configured():
    d = decide(feats(unstable=4, gap=-1.0), exact_max_unstable=4)
    assert d.action is Action.RUN and d.backends == ("z3",)


def test_by_default_z3_is_not_preferred_even_with_few_unstable():
    d = decide(feats(unstable=2, gap=-1.0))
    assert d.action is Action.RUN and d.backends[0] != "z3"


def test_smooth_never_to_z3_rule_and_goes_to_highs():
    d = decide(feats(unstable=4, smooth=("sigmoid",), gap=-1.0))
    assert d.backends == ("highs",)
    assert "smooth" in d.reason


def test_likely_counterexample_goes_to_ortools():
    d = decide(feats(gap=-99.0, upper=0.1))          # likelihood 0.999
    assert d.backends == ("ortools",)
    assert decide(feats(gap=-9.0, upper=0.5)).backends == ("highs",)   # 0.947: not enough
    d = decide(feats(gap=-9.0, upper=-0.1))          # a point already violates
    assert d.backends == ("ortools",)
    d = decide(feats(gap=-50.0), cex_gap=-10.0)      # no upper: the gap threshold
    assert d.backends == ("ortools",)


def test_likely_proof_goes_to_highs():
    d = decide(feats(gap=-0.1, upper=5.0))
    assert d.backends == ("highs",)
    assert decide(feats()).backends == ("highs",)


def test_keep_branching_cases():
    assert decide(feats(gap=0.3)).action is Action.KEEP_BRANCHING            # proven
    assert decide(feats(unstable=5000)).action is Action.KEEP_BRANCHING       # too big
    assert decide(feats(time_left_s=0.5)).action is Action.KEEP_BRANCHING     # no time
    few = decide(feats(unstable=120, time_left_s=4.0))                        # budget 2 s
    assert few.action is Action.KEEP_BRANCHING and "budget" in few.reason
    assert decide(feats(depth=1), min_depth=3).action is Action.KEEP_BRANCHING
    assert decide(feats(depth=1, stagnated=True), min_depth=3).action is Action.RUN


def test_stagnation_relaxes_the_size_limit():
    f = dict(unstable=250, time_left_s=1000.0)
    assert decide(feats(**f)).action is Action.KEEP_BRANCHING
    assert decide(feats(stagnated=True, **f)).action is Action.RUN


def test_capabilities_filter():
    exact_only = {"exact": Capabilities(smooth_envelopes=False, max_binaries_hint=None)}
    d = decide(feats(smooth=("tanh",)), caps=exact_only)
    assert d.action is Action.KEEP_BRANCHING and "tanh" in d.reason
    assert decide(feats(unstable=30), caps={"z3": Z3}).action is Action.KEEP_BRANCHING
    assert decide(feats(unstable=10, gap=-1.0), caps={"z3": Z3}).backends == ("z3",)
    assert decide(feats(), caps={}).action is Action.KEEP_BRANCHING
    # an unknown MILP-like back end is used when the preferred ones are missing
    assert decide(feats(), caps={"other": MILP}).backends == ("other",)


def test_budget_scales_and_is_clipped():
    small = decide(feats(unstable=10))
    large = decide(feats(unstable=100))
    assert small.budget_s < large.budget_s <= 30.0
    assert decide(feats(unstable=100, time_left_s=6.0)).budget_s <= 3.0
    assert decide(feats(unstable=100, time_left_s=math.inf), max_budget_s=7.0).budget_s == 7.0


def test_portfolio_only_when_unsure():
    d = decide(feats(gap=-1.0, upper=1.0), portfolio=True)
    assert d.backends == ("highs", "ortools") and d.choice == "highs|ortools"
    assert decide(feats(gap=-0.01, upper=1.0), portfolio=True).backends == ("highs",)
    assert decide(feats(gap=-99.0, upper=0.1), portfolio=True).backends == ("ortools",)
    assert len(decide(feats(gap=-9.0, upper=0.1), portfolio=True).backends) == 2


def test_config_validation():
    with pytest.raises(ValueError):
        PolicyConfig(min_budget_s=0)
    with pytest.raises(ValueError):
        PolicyConfig(budget_share=1.5)
