"""``--grid``: verdicts about the grid images of the region, against full enumeration.

The enumeration here is written independently of :mod:`hybridver.manipulations.grid`:
brightness ``b = m / N``, contrast ``c = m / d`` for every denominator ``d <= N`` (a grid
image needs ``c * k_i`` integral for its unclipped pixels ``k_i <= N``), both ends of the
parameter range, and every patch change ``m / N``; the images are computed in exact
rational arithmetic and kept when all pixels are grid values of ``[0, 1]``.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from hybridver.api import load_model, verify_robust
from hybridver.config import VerifyConfig
from hybridver.manipulations import ManipulationError
from hybridver.result import Verdict
from tests.manipulations import nets, search

CONFIG = VerifyConfig(timeout_s=60)
N = 8


def exact_image(values, clip: bool):
    out = []
    for v in values:
        v = min(max(v, Fraction(0)), Fraction(N)) if clip else v
        if v.denominator != 1 or not 0 <= v <= N:
            return None
        out.append(int(v))
    return tuple(out)


def grid_set(x0, family: str, delta: Fraction, clip: bool) -> set:
    """Every grid image (in units of 1/N) of the one-parameter family."""
    k = [Fraction(int(round(v * N))) for v in np.ravel(x0)]
    if family == "brightness":
        params = [Fraction(m, N) for m in range(-N * 2, N * 2 + 1)] + [-delta, delta]
        images = (exact_image([v + b * N for v in k], clip) for b in params if abs(b) <= delta)
    else:
        params = {Fraction(m, d) for d in range(1, N + 1) for m in range(0, 3 * d + 1)}
        params |= {1 - delta, 1 + delta}
        images = (exact_image([c * v for v in k], clip) for c in params
                  if 1 - delta <= c <= 1 + delta)
    return {im for im in images if im is not None}


def misclassified_images(model, spec, images) -> list:
    arr = np.array(sorted(images), dtype=np.float64) / N
    bad = search.misclassified(model.real_model, spec, arr)
    return [im for im, b in zip(sorted(images), bad) if b]


@pytest.mark.parametrize("family", ["brightness", "contrast"])
@pytest.mark.parametrize("net", ["mlp", "cnn"])
@pytest.mark.parametrize("delta", ["0.2", "0.5", "1"])
@pytest.mark.parametrize("clip", [True, False])
def test_one_parameter_grid_verdict_is_exact(tiny_models, family, net, delta, clip):
    model, x0, label = tiny_models[net]
    result = verify_robust(model, x0, label, [f"{family}={delta}"],
                           clip=(0.0, 1.0) if clip else None, grid=N, config=CONFIG)
    images = grid_set(x0, family, Fraction(delta), clip)
    bad = misclassified_images(model, result.spec, images)
    assert result.verdict is (Verdict.SAT if bad else Verdict.UNSAT), result.message
    if result.method == "grid enumeration":
        assert result.grid_images_checked == len(images) or bad
    if bad:
        units = tuple(int(v) for v in np.rint(result.image.reshape(-1) * N))
        assert units in images and units in set(bad)
        np.testing.assert_allclose(result.image.reshape(-1), np.array(units) / N, atol=1e-7)


def _sat_continuously_then_on_halves(tmp_path, family: str):
    """``family`` around a point of the grid of halves: ``sat`` over the continuous
    region (checked), then the result on the grid."""
    model = load_model(nets.mlp(tmp_path / "m.onnx"))
    x0 = nets.grid_point(4, 2, seed=0).reshape(1, 1, 4, 4)
    label = int(np.argmax(model.real_model(x0[None].astype(np.float32))))
    cont = verify_robust(model, x0, label, [family], clip=(0, 1), config=CONFIG)
    assert cont.verdict is Verdict.SAT
    return verify_robust(model, x0, label, [family], clip=(0, 1), grid=2, config=CONFIG)


def test_coarse_grid_holds_where_the_continuous_region_fails(tmp_path):
    """On the grid of halves, brightness 0.4 leaves only the point itself: the continuous
    region has a counterexample, the grid none (enumeration decides it)."""
    grid = _sat_continuously_then_on_halves(tmp_path, "brightness=0.4")
    assert grid.verdict is Verdict.UNSAT and grid.method == "grid enumeration"
    assert grid.grid_images_checked == 1


@pytest.mark.parametrize("net, delta", [("mlp", "0.5"), ("mlp", "0.25"), ("cnn", "0.25"),
                                        ("cnn", "0.5")])
def test_patch_grid_verdict_against_enumeration(tiny_models, net, delta):
    """Snapping a continuous counterexample: sat only with a misclassified grid image;
    a grid counterexample is never answered unsat."""
    model, x0, label = tiny_models[net]
    result = verify_robust(model, x0, label, [f"patch=1x2@1,1:{delta}"], clip=(0.0, 1.0),
                           grid=N, config=CONFIG)
    k = np.rint(np.ravel(x0) * N).astype(int)
    idx = [1 * int(math.isqrt(k.size)) + 1, 1 * int(math.isqrt(k.size)) + 2]
    top = int(Fraction(delta) * N)
    images = set()
    for m in itertools.product(range(-top, top + 1), repeat=2):
        u = k.copy()
        u[idx] = np.clip(u[idx] + np.array(m), 0, N)
        images.add(tuple(int(v) for v in u))
    bad = misclassified_images(model, result.spec, images)
    assert result.verdict in (Verdict.SAT, Verdict.UNSAT), result.message
    assert (result.verdict is Verdict.SAT) == bool(bad)
    if bad:
        units = tuple(int(v) for v in np.rint(result.image.reshape(-1) * N))
        assert units in set(bad) and result.method in ("grid snap", "engine")


def test_the_point_must_be_on_the_grid(tiny_models):
    model, x0, label = tiny_models["mlp"]
    with pytest.raises(ManipulationError, match="is not a grid image"):
        verify_robust(model, x0 + 0.01, label, ["brightness=0.1"], grid=N, config=CONFIG)


def test_the_one_parameter_cases_include_both_verdicts(tiny_models):
    """The exact comparison above is not vacuous: some cases hold and some fail."""
    seen = set()
    for net, family, delta in (("mlp", "brightness", "0.2"), ("mlp", "brightness", "1"),
                               ("cnn", "contrast", "0.2"), ("cnn", "contrast", "1")):
        model, x0, label = tiny_models[net]
        seen.add(verify_robust(model, x0, label, [f"{family}={delta}"], clip=(0.0, 1.0),
                               grid=N, config=CONFIG).verdict)
    assert seen == {Verdict.SAT, Verdict.UNSAT}


def test_a_counterexample_off_the_grid_is_not_sat(tmp_path):
    """Patch changes of up to 0.45 on the grid of halves snap to the point itself, which
    the model classifies right: the continuous counterexample does not count (unknown)."""
    grid = _sat_continuously_then_on_halves(tmp_path, "linf=0.45")
    assert grid.verdict is Verdict.UNKNOWN and "snapping to the grid" in grid.message


def test_snapped_images_are_grid_images_of_the_region():
    """Every snapped candidate: parameters that are multiples of the step inside the box
    and the ball, and an image on the grid equal to the map of those parameters."""
    from hybridver.manipulations import manipulation_spec
    from hybridver.manipulations.ball import in_balls
    from hybridver.manipulations.grid import snap

    x0 = nets.grid_point(3, N, seed=4).reshape(-1)
    spec = manipulation_spec(x0, 0, ["l1=0.5", "patch=2x2@1,1:0.3", "brightness=0.2"],
                             (1, 9), 3, clip=(0.0, 1.0), grid=N)
    rng = np.random.default_rng(0)
    p = rng.uniform(spec.amap.lower, spec.amap.upper) * 0.4
    found = snap(spec, p)
    assert len(found) >= 2  # toward zero and nearest at least (random ones may leave the ball)
    for q, units in found:
        assert in_balls(spec, q)
        np.testing.assert_allclose(q * N, np.rint(q * N), atol=1e-9)
        np.testing.assert_allclose(spec.images(q)[0], units / N, atol=1e-12)
    contrast = manipulation_spec(x0, 0, ["contrast=0.2"], (1, 9), 3, grid=N)
    assert snap(contrast, np.array([0.1])) == []


def test_enumeration_finds_the_grid_counterexample(tiny_models):
    """The enumeration path, which can answer unsat, answers sat where the grid holds a
    counterexample (contrast cannot be snapped: enumeration decides)."""
    model, x0, label = tiny_models["mlp"]
    result = verify_robust(model, x0, label, ["contrast=1"], clip=(0.0, 1.0), grid=N,
                           config=CONFIG)
    assert result.verdict is Verdict.SAT and result.method == "grid enumeration"
    assert result.predicted != label
    units = np.rint(result.image.reshape(-1) * N)
    np.testing.assert_allclose(result.image.reshape(-1), units / N, atol=1e-7)
