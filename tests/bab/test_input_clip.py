"""Domain clipping (hybridver.bab.input_clip), multi-dimension splits and the
deciding-row split score of input splitting.

Clipping must keep every point of the box that satisfies a row's linear lower bound
``<= 0``: checked by sampling and, for the extreme points, in exact rational arithmetic.
"""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import pytest
import torch

from hybridver.bab.input_clip import clip_domains, clip_to_halfspaces, refuted_by_pairs
from hybridver.bab.input_domains import DomainBatch, split_domains_along
from hybridver.bab.input_split import (Bounded, InputSplitConfig, deciding_rows,
                                       input_split_bab)
from hybridver.bab_core import SearchStatus


def _random_problem(rng, k=64, m=3, n=4):
    lo = torch.as_tensor(rng.uniform(-3, 1, (k, n)))
    hi = lo + torch.as_tensor(rng.uniform(0, 3, (k, n)))
    coef = torch.as_tensor(rng.normal(size=(k, m, n)))
    coef[:, :, 0] = torch.where(torch.rand(k, m) < 0.2, 0.0, coef[:, :, 0])  # zero slopes
    offset = torch.as_tensor(rng.normal(size=(k, m)))
    return lo, hi, coef, offset


def test_clipped_box_keeps_every_sampled_point_of_the_halfspace():
    rng = np.random.default_rng(0)
    lo, hi, coef, offset = _random_problem(rng)
    c_lo, c_hi = clip_to_halfspaces(lo, hi, coef, offset)
    x = lo[:, None, :] + (hi - lo)[:, None, :] * torch.as_tensor(rng.random((64, 4000, 4)))
    value = torch.einsum("kmn,ksn->ksm", coef, x) + offset[:, None, :]     # (k, s, m)
    inside = (x[:, :, None, :] >= c_lo[:, None]) & (x[:, :, None, :] <= c_hi[:, None])
    kept = inside.all(-1)                                                   # (k, s, m)
    assert bool(kept[value <= 0].all())
    assert bool(((c_lo > lo[:, None]) | (c_hi < hi[:, None])).any())       # it does clip


def test_clipped_bounds_hold_at_the_exact_extreme_points():
    # The farthest point of the cut along dimension i is x_i = t_i / a_i with the other
    # coordinates at the corner minimizing their terms; computed here in rationals.
    rng = np.random.default_rng(1)
    lo, hi, coef, offset = _random_problem(rng, k=32, m=2, n=5)
    c_lo, c_hi = clip_to_halfspaces(lo, hi, coef, offset)
    checked = 0
    for b in range(32):
        for r in range(2):
            a = [Fraction(float(v)) for v in coef[b, r]]
            ls = [Fraction(float(v)) for v in lo[b]]
            us = [Fraction(float(v)) for v in hi[b]]
            terms = [min(ai * li, ai * ui) for ai, li, ui in zip(a, ls, us)]
            for i, ai in enumerate(a):
                if ai == 0:
                    continue
                t = -Fraction(float(offset[b, r])) - (sum(terms) - terms[i])
                x = t / ai
                if ai > 0 and ls[i] <= x <= us[i]:
                    assert Fraction(float(c_hi[b, r, i])) >= x
                    checked += 1
                if ai < 0 and ls[i] <= x <= us[i]:
                    assert Fraction(float(c_lo[b, r, i])) <= x
                    checked += 1
    assert checked > 20


def test_a_disjunct_with_an_empty_cut_is_refuted_and_the_union_covers_the_rest():
    lo = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    hi = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    # disjunct 0: x0 + x1 <= 0.5 and -x0 - x1 + 1.6 <= 0 (no common point);
    # disjunct 1: x0 - 0.25 <= 0; disjunct 2 already refuted
    coef = torch.tensor([[[1.0, 1.0], [-1.0, -1.0], [1.0, 0.0], [0.0, 1.0]]],
                        dtype=torch.float64)
    offset = torch.tensor([[-0.5, 1.6, -0.25, -0.1]], dtype=torch.float64)
    groups = (slice(0, 2), slice(2, 3), slice(3, 4))
    refuted = torch.tensor([[False, False, True]])
    c_lo, c_hi, now = clip_domains(lo, hi, coef, offset, groups, refuted)
    assert now.tolist() == [[True, False, True]]
    assert c_lo.tolist() == [[0.0, 0.0]]
    assert abs(c_hi[0, 0].item() - 0.25) < 1e-12 and c_hi[0, 1].item() == 1.0


def test_two_rows_that_exclude_each_other_refute_their_disjunct_where_clipping_cannot():
    # x0 + x1 >= 1.2 and x0 + x1 <= 0.9: each cut alone (and their intersection) leaves
    # [0.2, 0.9]^2, but their sum with t = 1 is the constant 0.3 > 0
    lo = torch.zeros(1, 2, dtype=torch.float64)
    hi = torch.ones(1, 2, dtype=torch.float64)
    coef = torch.tensor([[[-1.0, -1.0], [1.0, 1.0]]], dtype=torch.float64)
    offset = torch.tensor([[1.2, -0.9]], dtype=torch.float64)
    row_lo, row_hi = clip_to_halfspaces(lo, hi, coef, offset)
    assert bool((row_lo.max(dim=1).values <= row_hi.min(dim=1).values).all())
    assert refuted_by_pairs(lo, hi, coef, offset).tolist() == [True]
    _, _, now = clip_domains(lo, hi, coef, offset, (slice(0, 2),),
                             torch.zeros(1, 1, dtype=torch.bool))
    assert now.tolist() == [[True]]


def test_pairs_never_refute_a_box_where_a_sampled_point_satisfies_every_row():
    rng = np.random.default_rng(11)
    lo, hi, coef, offset = _random_problem(rng, k=256, m=3, n=3)
    refuted = refuted_by_pairs(lo, hi, coef, offset)
    x = lo[:, None, :] + (hi - lo)[:, None, :] * torch.as_tensor(rng.random((256, 4000, 3)))
    rows = torch.einsum("kmn,ksn->ksm", coef, x) + offset[:, None, :]
    feasible = (rows <= 0).all(dim=2).any(dim=1)
    assert int(feasible.sum()) > 20 and int(refuted.sum()) > 20
    assert not bool((refuted & feasible).any())


def test_every_disjunct_empty_leaves_the_box_and_refutes_all():
    lo, hi = torch.zeros(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64)
    coef = torch.ones(1, 1, 1, dtype=torch.float64)
    offset = torch.full((1, 1), 2.0, dtype=torch.float64)      # x + 2 <= 0: nowhere
    c_lo, c_hi, now = clip_domains(lo, hi, coef, offset, (slice(0, 1),),
                                   torch.zeros(1, 1, dtype=torch.bool))
    assert now.tolist() == [[True]] and c_lo.item() == 0.0 and c_hi.item() == 1.0


def test_split_along_several_dims_gives_a_covering_grid():
    batch = DomainBatch(torch.tensor([[0.0, 0.0, 0.0]], dtype=torch.float64),
                        torch.tensor([[1.0, 2.0, 4.0]], dtype=torch.float64),
                        torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.long),
                        {})
    grid = split_domains_along(batch, torch.tensor([[2, 0]]))
    assert len(grid) == 4 and grid.depth.tolist() == [2, 2, 2, 2]
    cells = sorted(zip(grid.lower[:, 0].tolist(), grid.lower[:, 2].tolist()))
    assert cells == [(0.0, 0.0), (0.0, 2.0), (0.5, 0.0), (0.5, 2.0)]
    assert torch.equal(grid.upper[:, 1], torch.full((4,), 2.0, dtype=torch.float64))
    volume = ((grid.upper - grid.lower).prod(1)).sum().item()
    assert volume == 8.0


def _linear_bound_fn(a: np.ndarray, b: np.ndarray):
    """Rows ``a x + b`` (``a (m, n)``) bounded exactly, with their linear bound."""
    at, bt = torch.as_tensor(a), torch.as_tensor(b)

    def bound_fn(lo, hi, restrictions):
        low = (torch.minimum(at * lo[:, None, :], at * hi[:, None, :])).sum(-1) + bt
        n = lo.shape[0]
        return Bounded(low, at.expand(n, -1, -1).clone(), None, bt.expand(n, -1).clone())
    return bound_fn


def _square_bound_fn(lo, hi, restrictions):
    # row = x0^2 + x1^2 - 0.02 (violated only near 0), loose interval bound and the
    # tangent-plane linear bound at the box centre (valid everywhere: convex)
    c = (lo + hi) / 2
    a, b = lo, hi
    sq = torch.where((a <= 0) & (b >= 0), torch.zeros_like(a), torch.minimum(a * a, b * b))
    low = sq.sum(1, keepdim=True) - 0.02
    coef = (2 * c)[:, None, :]
    offset = (-(c * c).sum(1) - 0.02)[:, None]
    return Bounded(low, coef, None, offset)


def test_clipping_keeps_a_hidden_counterexample_findable():
    def probe(points):
        hits = np.nonzero((points ** 2).sum(1) - 0.02 <= 0)[0]
        return int(hits[0]) if len(hits) else None

    for clip in (True, False):
        outcome = input_split_bab(_square_bound_fn, np.array([-1.0, -0.7]),
                                  np.array([0.8, 1.0]), (slice(0, 1),),
                                  time.monotonic() + 30, probe,
                                  InputSplitConfig(batch_size=16, clip_domains=clip))
        assert outcome.status is SearchStatus.COUNTEREXAMPLE
        assert (outcome.counterexample_point ** 2).sum() <= 0.02


def _probe_rows(a: np.ndarray, b: np.ndarray):
    def probe(points):
        hits = np.nonzero((points @ a.T + b <= 0).all(1))[0]
        return int(hits[0]) if len(hits) else None
    return probe


def test_clipping_proves_two_jointly_empty_rows_at_the_root():
    # a counterexample needs x0 + x1 <= 0.5 and x0 >= 0.6 on [0, 1]^2: none; each row
    # alone holds somewhere, so interval bounds alone must split
    a, b = np.array([[1.0, 1.0], [-1.0, 0.0]]), np.array([-0.5, 0.6])
    counts = {}
    for clip in (True, False):
        outcome = input_split_bab(_linear_bound_fn(a, b), np.zeros(2), np.ones(2),
                                  (slice(0, 2),), time.monotonic() + 30, _probe_rows(a, b),
                                  InputSplitConfig(batch_size=16, clip_domains=clip))
        assert outcome.status is SearchStatus.PROVEN
        counts[clip] = outcome.stats.domains_bounded
    assert counts[True] == 1 < counts[False]


def test_clipping_keeps_a_linear_counterexample():
    # x0 + x1 <= 1.5 and x0 - x1 <= -0.5 on [0, 1]^2: e.g. (0, 1)
    a, b = np.array([[1.0, 1.0], [1.0, -1.0]]), np.array([-1.5, 0.5])
    outcome = input_split_bab(_linear_bound_fn(a, b), np.zeros(2), np.ones(2),
                              (slice(0, 2),), time.monotonic() + 30, _probe_rows(a, b),
                              InputSplitConfig(batch_size=16))
    assert outcome.status is SearchStatus.COUNTEREXAMPLE
    assert bool((a @ outcome.counterexample_point + b <= 0).all())


def test_deciding_rows_names_the_best_row_of_each_open_disjunct():
    row_lower = torch.tensor([[-3.0, -1.0, 0.5, -2.0, -0.2, -4.0]], dtype=torch.float64)
    groups = (slice(0, 2), slice(2, 4), slice(4, 6))
    # disjunct 1 is refuted by row 2 (0.5 > 0): no row of it counts
    assert deciding_rows(row_lower, groups).tolist() == [[False, True, False, False, True,
                                                          False]]


def _ring_bound_fn(lo, hi, restrictions):
    """Two rows per domain: ``r0 = x0^2 + x1^2 - 0.04`` (exact interval bound) and a
    decoy ``r1 = -3 x0 - 5`` whose bound is far below 0: only r0 can refute the single
    disjunct, and its slopes point at the dimension to split."""
    a, b = lo, hi
    sq = torch.where((a <= 0) & (b >= 0), torch.zeros_like(a), torch.minimum(a * a, b * b))
    r0 = sq.sum(1) - 0.04
    r1 = torch.minimum(-3 * lo[:, 0], -3 * hi[:, 0]) - 5
    c = (lo + hi) / 2
    coef = torch.stack([2 * c, torch.tensor([-3.0, 0.0], dtype=torch.float64).expand_as(c)], 1)
    return Bounded(torch.stack([r0, r1], 1), coef, None,
                   torch.stack([-(c * c).sum(1) - 0.04, torch.full_like(r0, -5.0)], 1))


@pytest.mark.parametrize("fill", [1, 3])
@pytest.mark.parametrize("deciding", [False, True])
def test_split_choices_keep_the_known_answers(fill, deciding):
    def probe(points):
        hits = np.nonzero(((points ** 2).sum(1) - 0.04 <= 0) & (-3 * points[:, 0] - 5 <= 0))[0]
        return int(hits[0]) if len(hits) else None

    config = InputSplitConfig(batch_size=32, fill_splits=fill, deciding_rows=deciding)
    groups = (slice(0, 2),)
    holds = input_split_bab(_ring_bound_fn, np.array([0.3, -1.0]), np.array([1.0, 1.0]),
                            groups, time.monotonic() + 30, probe, config)
    assert holds.status is SearchStatus.PROVEN          # x0 >= 0.3: x0^2 > 0.04
    found = input_split_bab(_ring_bound_fn, np.array([-1.0, -1.0]), np.array([1.0, 1.0]),
                            groups, time.monotonic() + 30, probe, config)
    assert found.status is SearchStatus.COUNTEREXAMPLE
    assert (found.counterexample_point ** 2).sum() <= 0.04


def test_lookahead_and_fill_wider_than_the_input_are_capped():
    config = InputSplitConfig(batch_size=32, lookahead=4, fill_splits=3)
    outcome = input_split_bab(_square_bound_fn, np.array([-1.0, -0.7]), np.array([0.8, 1.0]),
                              (slice(0, 1),), time.monotonic() + 30,
                              lambda p: (int(np.argmin((p ** 2).sum(1)))
                                         if ((p ** 2).sum(1) <= 0.02).any() else None),
                              config)
    assert outcome.status is SearchStatus.COUNTEREXAMPLE
