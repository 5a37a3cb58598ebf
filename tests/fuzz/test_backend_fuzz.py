"""Fast seeds of the back-end fuzzer: every exact back end and hybrid mode on random small
networks with planted answers (long runs: ``benchmarks/fuzz.py --only backends``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.fuzz.backend_oracle import _run, check_backends, planted_instance
from tests.fuzz.cases import run_case
from tests.fuzz.networks import random_network
from tests.fuzz.oracles import ort_session


@pytest.mark.parametrize("index", [2, 3, 5, 7])
def test_back_ends_agree_with_the_planted_answer(index):
    result = run_case("backends", 0, index, timeout=10.0)
    assert result.finding.kind == "agree", result.finding.detail


def test_a_planted_witness_violates_the_property_with_its_margin():
    for seed in range(5):
        rng = np.random.default_rng([11, seed])
        net = random_network(rng)
        inst = planted_instance(rng, net, want="sat")
        x = np.asarray(inst.spec["witness"], dtype=np.float32)
        assert np.all(inst.lo <= x) and np.all(x <= inst.hi)
        y = _run(ort_session(net.model), x)[0]
        assert np.all(inst.C @ y + inst.d <= -inst.spec["margin"] / 2)


def test_a_planted_unsat_minimum_is_below_every_sample():
    planted = 0
    for seed in range(8):
        rng = np.random.default_rng([12, seed])
        net = random_network(rng, ("relu", "leaky_relu", "abs"))
        inst = planted_instance(rng, net, want="unsat")
        if inst is None:
            continue
        planted += 1
        x = rng.uniform(inst.lo, inst.hi, (2000, net.n_in))
        values = _run(ort_session(net.model), x) @ inst.C[0] + inst.d[0]
        assert values.min() >= inst.spec["margin"] * (1 - 1e-3) - 1e-6
        assert values.min() <= inst.spec["margin"] * 10 + 1.0   # the minimum is near
    assert planted >= 4


def test_unsat_on_a_planted_sat_instance_is_reported():
    rng = np.random.default_rng([12, 0])
    net = random_network(rng, ("relu",))
    inst = planted_instance(rng, net, want="unsat")
    mislabelled = dataclasses.replace(inst, expected="sat")
    finding = check_backends(net, mislabelled, timeout=10.0, names=("highs",))
    assert finding.kind == "disagree"
    assert "highs: unsat on a planted sat" in finding.detail
