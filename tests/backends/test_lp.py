"""The LP module (backends/lp.py): the one rigorous dual bound for any multipliers, dense
and sparse, with infinite sides and bounds; HiGHS's duals make it tight; LP tightening is
sound; the solver belongs to its caller."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.sparse as sp

from hybridver.backends.lp import (LpSolver, LpStatus, dual_lower_bounds, lp_tightened_bounds,
                                   model_lower_bound)
from hybridver.encode.milp import encode_milp, merged_bounds
from hybridver.ir.evaluate import evaluate_all
from hybridver.problem import Subproblem
from tests.encode.test_milp import NETS, _samples, _solve, _true_assignment

pytest.importorskip("highspy")


def test_model_bound_is_valid_for_any_multipliers():
    problem = NETS["relu"]()
    model = encode_milp(problem)
    rng = np.random.default_rng(1)
    points = [_true_assignment(model, problem, x) for x in _samples(problem, 100)]
    for trial in range(20):
        cost = np.zeros(model.n_vars)
        cost[rng.integers(model.n_vars, size=3)] = rng.normal(size=3)
        y = rng.normal(size=model.n_rows) * (trial > 0)
        bound = model_lower_bound(model, cost, y)
        assert all(bound <= cost @ p + 1e-12 for p in points)


def test_model_bound_matches_lp_optimum_with_duals():
    problem = NETS["relu"]()
    model = encode_milp(problem)
    lp = dataclasses.replace(model, integer=np.zeros(model.n_vars, dtype=bool))
    z = lp.sites[1].z_vars
    for j in z[:4]:
        h = _solve(lp, 1.0, j)
        cost = np.zeros(lp.n_vars)
        cost[j] = 1.0
        bound = model_lower_bound(lp, cost, np.asarray(h.getSolution().row_dual))
        optimum = h.getInfo().objective_function_value
        assert bound <= optimum + 1e-9
        assert bound >= optimum - 1e-6


def test_dual_bound_dense_and_sparse_agree_and_hold_at_sampled_points():
    rng = np.random.default_rng(3)
    K, n, E = 5, 4, 6
    A = rng.normal(size=(K, n))
    A[rng.random((K, n)) < 0.3] = 0.0
    lo, hi = -rng.random(n) - 0.1, rng.random(n) + 0.1
    row_lower = np.where(rng.random(K) < 0.5, -np.inf, -2.0)
    row_upper = np.where(rng.random(K) < 0.5, np.inf, 2.0)
    costs, consts = rng.normal(size=(E, n)), rng.normal(size=E)
    Y = rng.normal(size=(E, K))
    Y[0] = np.nan                                  # not finite: treated as 0
    dense = dual_lower_bounds(costs, consts, Y, A, row_lower, row_upper, lo, hi)
    sparse = dual_lower_bounds(costs, consts, Y, sp.csr_array(A), row_lower, row_upper, lo, hi)
    np.testing.assert_allclose(dense, sparse, rtol=1e-12, atol=1e-12)
    x = lo + (hi - lo) * rng.random((20000, n))
    ax = x @ A.T
    inside = np.all((ax >= row_lower) & (ax <= row_upper), axis=1)
    values = x[inside] @ costs.T + consts
    assert inside.sum() > 100 and np.all(dense <= values.min(0))
    # with no multipliers the bound is the box minimum, within rounding
    box = dual_lower_bounds(costs, consts, np.zeros((E, K)), A, row_lower, row_upper, lo, hi)
    exact = np.minimum(costs * lo, costs * hi).sum(1) + consts
    assert np.all(box <= exact) and np.all(box >= exact - 1e-12)


def test_dual_bound_is_minus_infinity_only_where_an_infinite_bound_matters():
    A = np.array([[1.0, 0.0]])                     # the row x0 >= 0.5; x1 is free
    lo, hi = np.array([0.0, -np.inf]), np.array([1.0, np.inf])
    rl, ru = np.array([0.5]), np.array([np.inf])
    cost = np.array([[1.0, 0.0]])
    with_row = dual_lower_bounds(cost, np.zeros(1), np.array([[1.0]]), A, rl, ru, lo, hi)
    assert 0.5 - 1e-12 <= with_row[0] <= 0.5
    # a multiplier on an infinite side is dropped: the box minimum remains
    wrong_side = dual_lower_bounds(cost, np.zeros(1), np.array([[-1.0]]), A, rl, ru, lo, hi)
    assert -1e-12 <= wrong_side[0] <= 0.0
    # any cost on the free variable: no finite bound
    free = dual_lower_bounds(np.array([[1.0, 1e-300]]), np.zeros(1), np.array([[1.0]]), A, rl,
                             ru, lo, hi)
    assert free[0] == -math.inf


def test_solver_is_owned_by_its_caller():
    one, two = LpSolver(presolve=False), LpSolver(presolve=False)
    rows = np.array([[1.0, 1.0]])
    one.load_dense(rows, np.array([1.0]), np.zeros(2), np.ones(2), np.array([-1.0, -1.0]))
    two.load_dense(rows, np.array([-1.0]), np.zeros(2), np.ones(2), np.zeros(2))
    assert one.highs is not two.highs
    assert one.run() is LpStatus.OPTIMAL
    assert two.run() is LpStatus.INFEASIBLE
    assert np.isclose(one.col_values().sum(), 1.0)


def test_lp_tightening_is_sound_and_tighter():
    problem = NETS["relu"]()
    tight, stats = lp_tightened_bounds(problem, 30.0)
    assert stats["complete"] and stats["lps"] > 0
    loose = merged_bounds(problem)
    values = evaluate_all(problem.graph, _samples(problem, 500)[:, None])
    for name, (lo, hi) in tight.items():
        assert np.all(lo >= loose[name][0] - 1e-12) and np.all(hi <= loose[name][1] + 1e-12)
        v = values[name].reshape(values[name].shape[0], -1).numpy()
        assert np.all(v >= lo - 1e-12) and np.all(v <= hi + 1e-12), name
    assert encode_milp(Subproblem(problem.graph, problem.box, problem.constraints, tight)
                       ).n_integer <= encode_milp(problem).n_integer
