"""Robustness specs and the VNN-LIB writer (parse(write(spec)) == spec)."""

from __future__ import annotations

import numpy as np
import pytest

from hybridver.errors import SpecError
from hybridver.specs import (InputBox, OutputConstraints, Spec, SpecCase, load_vnnlib,
                             parse_vnnlib, robustness)
from hybridver.specs.robustness import format_vnnlib, write_vnnlib
from tests.conftest import shared_files


# ------------------------------------------------------------------ robustness builder
def test_robustness_box_and_rows():
    x0 = np.array([[0.5, 0.0], [1.0, 0.25]])  # any shape; flattened row-major
    spec = robustness(x0, 0.1, label=2, n_classes=4)
    assert (spec.n_inputs, spec.n_outputs) == (4, 4)
    case = spec.cases[0]
    np.testing.assert_allclose(case.region.lower, [0.4, -0.1, 0.9, 0.15])
    np.testing.assert_allclose(case.region.upper, [0.6, 0.1, 1.1, 0.35])
    assert len(case.disjuncts) == 3
    for dj, j in zip(case.disjuncts, [0, 1, 3]):
        expected = np.zeros((1, 4))
        expected[0, 2], expected[0, j] = 1.0, -1.0
        np.testing.assert_array_equal(dj.C, expected)
        np.testing.assert_array_equal(dj.d, [0.0])
    assert "label=2" in spec.name


def test_robustness_counterexample_semantics():
    spec = robustness(np.zeros(3), 0.5, label=1, n_classes=3)
    x = [0.1, -0.2, 0.3]
    assert not spec.is_counterexample(x, [0.0, 1.0, 0.5])    # label strictly best: safe
    assert spec.is_counterexample(x, [0.0, 1.0, 1.0])        # tie with class 2
    assert spec.is_counterexample(x, [2.0, 1.0, -5.0])       # class 0 wins
    assert not spec.is_counterexample([0.6, 0.0, 0.0], [2.0, 1.0, -5.0])  # outside ball
    assert spec.is_counterexample([0.5 + 1e-9, 0.0, 0.0], [2.0, 1.0, -5.0], tol=1e-6)


def test_robustness_clipping_and_per_entry_eps():
    spec = robustness([0.0, 0.95, 0.5], [0.1, 0.1, 0.0], label=0, n_classes=2,
                      lower=0.0, upper=[1.0, 1.0, 1.0])
    region = spec.cases[0].region
    np.testing.assert_allclose(region.lower, [0.0, 0.85, 0.5])
    np.testing.assert_allclose(region.upper, [0.1, 1.0, 0.5])
    assert spec.cases[0].disjuncts[0].C.tolist() == [[1.0, -1.0]]


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(x0=[0.0], eps=0.1, label=2, n_classes=2), "label"),
    (dict(x0=[0.0], eps=0.1, label=0, n_classes=1), "at least 2 classes"),
    (dict(x0=[0.0], eps=-0.1, label=0, n_classes=2), "eps"),
    (dict(x0=[np.nan], eps=0.1, label=0, n_classes=2), "finite"),
    (dict(x0=[5.0], eps=0.1, label=0, n_classes=2, upper=1.0), "misses the input domain"),
    (dict(x0=[0.0, 1.0], eps=[0.1, 0.2, 0.3], label=0, n_classes=2), "does not fit"),
])
def test_robustness_rejects_bad_arguments(kwargs, fragment):
    with pytest.raises(SpecError, match=fragment):
        robustness(**kwargs)


# ------------------------------------------------------------------ writer round trips
def test_write_parse_round_trip_robustness(tmp_path):
    rng = np.random.default_rng(0)
    spec = robustness(rng.random(50), 1 / 255, label=7, n_classes=10, lower=0.0, upper=1.0)
    path = write_vnnlib(spec, tmp_path / "robust.vnnlib")
    back = load_vnnlib(path, n_inputs=50, n_outputs=10)
    assert back == spec
    assert back.name == "robust"
    text = path.read_text()
    assert "(declare-const X_49 Real)" in text and "(declare-const Y_9 Real)" in text
    assert "(<= Y_7 Y_0)" in text  # the usual VNN-COMP style for y_label <= y_j
    assert text.count("(assert (or") == 1


def _random_case(rng, n_in, n_out, n_disjuncts):
    lo = rng.normal(size=n_in) * 10.0 ** rng.integers(-8, 8, size=n_in)
    hi = lo + np.abs(rng.normal(size=n_in)) * 10.0 ** rng.integers(-12, 3, size=n_in)
    disjuncts = []
    for _ in range(n_disjuncts):
        m = int(rng.integers(1, 4))
        C = rng.normal(size=(m, n_out)) * (rng.random((m, n_out)) < 0.6)
        C[:, 0] = np.where(np.all(C == 0, axis=1), 1.0, C[:, 0])  # no all-zero rows
        C[0, :] = 0.0
        C[0, rng.integers(n_out)] = rng.choice([1.0, -1.0])      # a bound-style row
        d = rng.normal(size=m) / 3.0
        disjuncts.append(OutputConstraints(C, d))
    return SpecCase(InputBox(lo, hi), tuple(disjuncts))


def test_write_parse_round_trip_random_multi_case(tmp_path):
    rng = np.random.default_rng(1234)
    cases = [_random_case(rng, 4, 3, k) for k in (1, 3, 2)]
    cases.append(SpecCase(InputBox(np.full(4, -1e-300), np.full(4, 5e-324)), ()))  # output true
    spec = Spec(tuple(cases), 4, 3, name="random")
    assert parse_vnnlib(format_vnnlib(spec)) == spec
    gz = write_vnnlib(spec, tmp_path / "random.vnnlib.gz")
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    assert load_vnnlib(gz) == spec


def test_write_parse_round_trip_single_case_variants():
    rng = np.random.default_rng(7)
    general = Spec((_random_case(rng, 3, 5, 4),), 3, 5)
    assert parse_vnnlib(format_vnnlib(general)) == general
    true_output = Spec((SpecCase(InputBox([0.0, -2.5], [1e-3, 7.0]), ()),), 2, 4)
    assert parse_vnnlib(format_vnnlib(true_output)) == true_output
    point = Spec((SpecCase(InputBox([0.1], [0.1]),
                           (OutputConstraints([[2.0, -3.0]], [-0.0]),)),), 1, 2)
    assert parse_vnnlib(format_vnnlib(point)) == point


def test_write_parse_round_trip_no_cases():
    spec = Spec((), 3, 2)
    text = format_vnnlib(spec)
    assert "(assert false)" in text
    back = parse_vnnlib(text)
    assert back == spec and not back.is_counterexample([0, 0, 0], [0, 0])


@pytest.mark.parametrize("path", [p for p in shared_files("acasxu/*.vnnlib",
                                                          "vnncomp_test/*.vnnlib",
                                                          "lsnc_2024/vnnlib/*.vnnlib.gz",
                                                          "cgan_2023/vnnlib/*.vnnlib.gz")][:30],
                         ids=lambda p: p.name)
def test_round_trip_of_shared_files(path):
    spec = load_vnnlib(path)
    assert parse_vnnlib(format_vnnlib(spec)) == spec
