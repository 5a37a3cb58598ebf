"""L1/L2 balls: projection onto them, membership, and the search inside them."""

from __future__ import annotations

import numpy as np
import pytest

from hybridver.manipulations import manipulation_spec, parameter_graph
from hybridver.manipulations.ball import ball_attack, in_balls, project

SHAPE = (1, 9)
X0 = np.linspace(0, 1, 9)


@pytest.mark.parametrize("family, order", [("l1=0.5", 1), ("l2=0.5", 2)])
def test_projection_lands_in_the_ball_and_is_nearest(family, order):
    spec = manipulation_spec(X0, 0, [family], SHAPE, 2)
    rng = np.random.default_rng(0)
    p = rng.normal(size=(50, 9))
    q = project(spec, p)
    assert all(in_balls(spec, row) for row in q)
    norms = np.linalg.norm(q, ord=order, axis=1)
    assert np.all(norms <= 0.5) and np.all(norms > 0.5 * (1 - 1e-6))  # all started outside
    # nearest: no random point of the ball is closer to p than its projection
    for row, proj in zip(p[:5], q[:5]):
        cand = rng.normal(size=(2000, 9))
        cand = cand / np.linalg.norm(cand, ord=order, axis=1, keepdims=True)
        cand *= 0.5 * rng.random((2000, 1)) ** (1 / 9)
        assert np.min(np.linalg.norm(cand - row, axis=1)) >= np.linalg.norm(proj - row) - 1e-9
    inside = np.full((1, 9), 0.01)
    np.testing.assert_array_equal(project(spec, inside), inside)


def test_in_balls_checks_box_and_ball():
    spec = manipulation_spec(X0, 0, ["l1=0.5", "brightness=0.1"], SHAPE, 2)
    p = np.zeros(10)
    assert in_balls(spec, p)
    p[0] = 0.3
    p[1] = 0.3
    assert not in_balls(spec, p)  # |d|_1 = 0.6
    p[1], p[9] = 0.1, 0.2
    assert not in_balls(spec, p)  # brightness 0.2 outside its box


def test_ball_attack_stays_in_the_ball(tmp_path):
    from tests.manipulations import nets
    from hybridver.api import load_model

    model = load_model(nets.flat_mlp(tmp_path / "f.onnx", n=9))
    spec = manipulation_spec(X0, 0, ["l2=0.3"], SHAPE, 3)
    g = parameter_graph(model.graph, spec)
    found = ball_attack(spec, g, np.ones((1, 9)), steps=10, restarts=3)
    assert found.shape == (4, 9)
    assert all(in_balls(spec, row) for row in found)
