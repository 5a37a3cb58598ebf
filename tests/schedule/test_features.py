"""Features: the likelihood of a counterexample from the bound interval, JSON export."""

from __future__ import annotations

import json
import math

import pytest

from hybridver.problem import SubproblemForm
from hybridver.schedule import SubproblemFeatures

FORM = SubproblemForm(n_inputs=5, unstable_relus=30, other_nonlinear_ops=frozenset(),
                      n_nodes=13, n_rows=4)


@pytest.mark.parametrize("gap, upper, expected", [
    (-1.0, 3.0, 0.25), (-3.0, 1.0, 0.75), (-1.0, -0.5, 1.0), (0.5, 2.0, 0.0),
    (-1.0, None, None), (None, 1.0, None), (-math.inf, 1.0, None)])
def test_cex_likelihood(gap, upper, expected):
    value = SubproblemFeatures(FORM, gap=gap, upper=upper).cex_likelihood
    assert value == expected if expected is None else value == pytest.approx(expected)


def test_of_subproblem_and_json(tiny):
    problem = tiny.problems[0]
    feats = SubproblemFeatures.of(problem, gap=-0.2, depth=3)
    assert feats.form == problem.form() and feats.label == problem.label
    data = json.loads(json.dumps(feats.to_dict(), allow_nan=False))
    assert data["unstable_relus"] == problem.form().unstable_relus
    assert data["time_left_s"] is None and data["depth"] == 3
