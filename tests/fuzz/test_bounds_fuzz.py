"""Fast seeds of the bound fuzzer: every bound method against sampled outputs of random
small networks (long runs: ``benchmarks/fuzz.py --only bounds``)."""

from __future__ import annotations

import types

import numpy as np
import pytest

from tests.fuzz.bounds_oracle import _excess, check_bounds
from tests.fuzz.cases import run_case
from tests.fuzz.networks import random_network


@pytest.mark.parametrize("index", [0, 2, 5, 6])
def test_sampled_outputs_lie_within_every_bound(index):
    result = run_case("bounds", 0, index)
    assert result.finding.kind == "agree", result.finding.detail


def test_excess_is_relative_to_the_sample_scale():
    y = np.array([[0.5, 3.0], [0.5, -20.0], [10.0, -20.0]])
    lower, upper = np.array([0.0, -30.0]), np.array([1.0, 2.0])
    assert np.allclose(_excess(y, lower, upper), [1.0 / 3.0, 0.0, 9.0 / 20.0])


def test_bounds_that_cut_off_outputs_are_reported(monkeypatch):
    from hybridver.bounds import engine

    real = engine.compute_bounds

    def too_tight(*args, **kwargs):
        res = real(*args, **kwargs)
        mid = (res.lower + res.upper) / 2
        return types.SimpleNamespace(lower=mid - 1e-9, upper=mid + 1e-9)

    monkeypatch.setattr(engine, "compute_bounds", too_tight)
    rng = np.random.default_rng([13, 0])
    finding, _ = check_bounds(random_network(rng, ("tanh",)), rng, n_samples=50,
                              methods=("ibp",), dtypes=("float64",))
    assert finding.kind == "disagree"
    assert "leaves" in finding.detail
