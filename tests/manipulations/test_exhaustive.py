"""Each family's verdict against exhaustive search over a parameter grid, on tiny networks.

A grid point the real model misclassifies is a known counterexample: the verdict must be
``sat`` (never ``unsat``).  Where the grid finds none the verdict must be ``unsat`` for
these tiny networks, unless the verifier returns a counterexample between the grid points,
which is then checked: its image is the map of its parameters, inside the box (and ball),
and misclassified by the real model.
"""

from __future__ import annotations

import numpy as np
import pytest

from hybridver.api import verify_robust
from hybridver.config import AttackConfig, VerifyConfig
from hybridver.manipulations import RobustConfig
from hybridver.result import Verdict
from tests.manipulations import search

# low_dim=0: the plain PGD attack; the many restarts and face samples of low-dimensional
# inputs cost seconds per case where no counterexample exists (the proofs are unchanged)
CONFIG = VerifyConfig(timeout_s=60, attack=AttackConfig(low_dim=0))
UNIT = (0.0, 1.0)

# (network, families, clip, grid steps per parameter, verdict of the exhaustive search)
CASES = [
    ("mlp", ["brightness=0.05"], None, 401, "unsat"),
    ("mlp", ["brightness=0.2"], UNIT, 401, "sat"),
    ("cnn", ["brightness=0.2"], UNIT, 401, "unsat"),
    ("cnn", ["brightness=0.5"], None, 401, "sat"),
    ("mlp", ["contrast=0.5"], None, 401, "unsat"),
    ("mlp", ["contrast=0.5"], UNIT, 401, "sat"),
    ("cnn", ["contrast=0.2"], UNIT, 401, "unsat"),
    ("cnn", ["contrast=0.5"], None, 401, "sat"),
    ("mlp", ["brightness=0.05", "contrast=0.05"], UNIT, 61, "unsat"),
    ("mlp", ["brightness=0.2", "contrast=0.2"], None, 61, "sat"),
    ("flat", ["brightness=0.2", "contrast=0.2"], None, 61, "unsat"),
    ("cnn", ["brightness=0.2", "contrast=0.2"], UNIT, 61, "sat"),
    ("mlp", ["patch=2x2@1,1:0.05"], None, 9, "unsat"),
    ("mlp", ["patch=2x2@1,1:0.2"], UNIT, 9, "sat"),
    ("cnn", ["patch=2x2@1,1:0.05"], UNIT, 9, "unsat"),
    ("cnn", ["patch=2x2@1,1:0.5"], None, 9, "sat"),
    ("mlp", ["occlude=2x2@0,0"], UNIT, 9, "sat"),
    ("flat", ["occlude=1x1@0,1"], UNIT, 101, "unsat"),
    ("flat", ["linf=0.2"], None, 9, "unsat"),
    ("flat", ["linf=0.5"], UNIT, 9, "sat"),
    ("flat", ["l2=0.2"], None, 9, "unsat"),
    ("flat", ["l2=0.5"], None, 9, "unsat"),  # the box has a counterexample, the ball none
    ("flat", ["l2=1"], None, 9, "sat"),
    ("flat", ["l1=0.2"], UNIT, 9, "unsat"),
    ("flat", ["l1=0.5"], None, 9, "unsat"),
    ("flat", ["l1=1"], None, 9, "sat"),
    ("mlp", ["brightness=0.1>occlude=1x2@0,0"], UNIT, 21, "sat"),
    ("flat", ["brightness=0.1", "patch=1x2@1,0:0.1"], None, 11, "unsat"),
]


def check_counterexample(model, result) -> None:
    """The sat result's image is the map of its parameters (up to the input dtype), its
    parameters lie in the box and every ball, and the real model misclassifies it."""
    spec = result.spec
    p = result.params
    assert np.all(p >= spec.amap.lower) and np.all(p <= spec.amap.upper)
    for g in spec.amap.norms:
        assert g.norm(p[None])[0] <= g.eps
    np.testing.assert_allclose(result.image.reshape(-1), spec.images(p)[0], atol=1e-6)
    y = model.real_model(result.image[None].astype(np.float32))
    assert spec.misclassified(y)[0]
    assert np.array_equal(np.asarray(y, dtype=np.float64).reshape(-1), result.logits)


@pytest.mark.parametrize("net, families, clip, steps, expected", CASES,
                         ids=[f"{c[0]}-{'+'.join(c[1])}-{'clip' if c[2] else 'free'}"
                              for c in CASES])
def test_verdict_agrees_with_exhaustive_search(tiny_models, net, families, clip, steps,
                                               expected):
    model, x0, label = tiny_models[net]
    result = verify_robust(model, x0, label, families, clip=clip, config=CONFIG)
    found = search.grid_counterexample(model.real_model, result.spec, steps)
    assert ("sat" if found else "unsat") == expected  # the table is the search's answer
    if found:
        assert result.verdict is Verdict.SAT, result.message
    else:
        assert result.verdict in (Verdict.UNSAT, Verdict.SAT), result.message
    if result.verdict is Verdict.SAT:
        check_counterexample(model, result)
    assert expected == result.verdict.value


def test_box_counterexample_outside_the_ball_is_not_sat(tiny_models):
    """The box [-0.5, 0.5]^4 holds a counterexample (linf=0.5 is sat), the L2 ball of
    radius 0.5 none on the search grid.  With the box alone (no cut, no search in the
    ball) the answer is unknown, never sat and never unsat; with the cut it is unsat."""
    model, x0, label = tiny_models["flat"]
    box = verify_robust(model, x0, label, ["linf=0.5"], config=CONFIG)
    assert box.verdict is Verdict.SAT
    assert np.linalg.norm(box.params) > 0.5
    bare = RobustConfig(norm_cut=False, ball_search=False)
    for family in ("l2=0.5", "l1=0.5"):
        ball = verify_robust(model, x0, label, [family], config=CONFIG, robust_config=bare)
        assert ball.verdict is Verdict.UNKNOWN and "none was found inside" in ball.message
        assert ball.spec.n_outputs == ball.spec.n_classes
        assert not search.grid_counterexample(model.real_model, ball.spec, 9)
        cut = verify_robust(model, x0, label, [family], config=CONFIG)
        assert cut.spec.n_outputs == cut.spec.n_classes + 1
        assert cut.verdict is Verdict.UNSAT, cut.message


@pytest.mark.parametrize("net, families, clip, expected", [
    ("flat", ["l1=0.5"], None, "unsat"), ("flat", ["l1=1"], None, "sat"),
    ("mlp", ["patch=2x2@1,1:0.05"], UNIT, "unsat"), ("mlp", ["brightness=0.2"], UNIT, "sat"),
])
def test_exact_mode_decides_the_network_over_parameters(tiny_models, net, families, clip,
                                                        expected):
    """The exact back end (MILP) on the map, the clip's ReLUs and the L1 cut's ReLUs."""
    from hybridver.config import Mode

    model, x0, label = tiny_models[net]
    result = verify_robust(model, x0, label, families, clip=clip,
                           config=VerifyConfig(timeout_s=60, mode=Mode.EXACT))
    assert result.verdict.value == expected, result.message
    if result.verdict is Verdict.SAT:
        check_counterexample(model, result)
