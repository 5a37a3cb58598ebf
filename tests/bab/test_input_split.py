"""Input-splitting branch-and-bound: the domain pool, splitting, lookahead, delegation.

The bound functions here are exact interval bounds of small functions, so every claim
can be checked by hand; the network-level paths are in tests/pipeline/test_verify_hybrid.py.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from hybridver.bab.input_split import (Bounded, DomainBatch, DomainPool, InputSplitConfig,
                                       input_split_bab, rank_split_dims, split_domains)

GROUPS = (slice(0, 1),)


def _batch(lo, hi, margin=None, depth=None, nodes=None) -> DomainBatch:
    lo = torch.as_tensor(np.array(lo, dtype=np.float64))
    hi = torch.as_tensor(np.array(hi, dtype=np.float64))
    n = lo.shape[0]
    return DomainBatch(lo, hi,
                       torch.zeros((n, 1), dtype=torch.float64) if margin is None
                       else torch.as_tensor(margin, dtype=torch.float64).reshape(n, -1),
                       torch.zeros(n, dtype=torch.long) if depth is None
                       else torch.as_tensor(depth), nodes or {})


def test_split_covers_the_parent_and_shares_the_midpoint():
    parents = _batch([[0.0, -1.0], [2.0, 2.0]], [[1.0, 1.0], [3.0, 6.0]])
    children = split_domains(parents, torch.tensor([1, 1]))
    assert len(children) == 4
    left_hi, right_lo = children.upper[:2], children.lower[2:]
    assert torch.equal(left_hi[:, 1], right_lo[:, 1])
    assert torch.equal(children.lower[:2], parents.lower)
    assert torch.equal(children.upper[2:], parents.upper)
    assert torch.equal(children.depth, torch.ones(4, dtype=torch.long))


def test_pool_pops_lowest_margin_first_and_keeps_node_bounds_aligned():
    pool = DomainPool(1, torch.device("cpu"))
    margins = [-3.0, -1.0, -2.0, -5.0]
    lo = torch.arange(4, dtype=torch.float64)[:, None]
    nodes = {"h": (lo * 10, lo * 10 + 1)}
    pool.push(lo, lo + 1, torch.tensor(margins, dtype=torch.float64)[:, None],
              torch.zeros(4, dtype=torch.long), torch.zeros((4, 1), dtype=torch.long), nodes)
    batch, _ = pool.pop(2)
    assert sorted(batch.worst.tolist()) == [-5.0, -3.0]
    assert torch.equal(batch.node_bounds["h"][0], batch.lower * 10)
    assert len(pool) == 2 and torch.equal(pool.node_bounds["h"][0], pool.lower * 10)


def test_rank_never_offers_a_zero_width_dimension():
    lo = torch.tensor([[0.0, 0.0, 0.0]], dtype=torch.float64)
    hi = torch.tensor([[1.0, 0.0, 0.5]], dtype=torch.float64)
    coef = torch.tensor([[[1.0, 100.0, 1.0]]], dtype=torch.float64)
    dims = rank_split_dims(lo, hi, coef, None, 3)
    assert 1 not in dims.tolist()[0]


@pytest.mark.parametrize("lookahead", [0, 2])
def test_positive_function_is_proven_by_splitting(lookahead):
    # f(x) = |x - 0.3|^2 + 0.01 with a loose bound: only splitting proves f > 0
    def bound_fn(lo, hi, restrictions):
        # interval bound of sum (x_i - 0.3)^2 with the square bounded by the product of
        # the endpoints' distances (loose unless the box is small)
        a, b = lo - 0.3, hi - 0.3
        low = torch.minimum(a * b, torch.minimum(a * a, b * b))  # may be negative: loose
        return Bounded(low.sum(1, keepdim=True) + 0.01, None)

    outcome = input_split_bab(bound_fn, np.array([-1.0, -1.0]), np.array([1.0, 1.0]),
                              GROUPS, time.monotonic() + 30,
                              config=InputSplitConfig(batch_size=64, lookahead=lookahead))
    assert outcome.status == "proven"
    assert outcome.stats["domains_bounded"] > 1


def test_hidden_counterexample_is_found_and_never_proven():
    # f(x) = |x - p|_1 - 1e-3: negative only in a tiny diamond around p
    p = torch.tensor([0.123, -0.456], dtype=torch.float64)

    def bound_fn(lo, hi, restrictions):
        near = torch.minimum(torch.maximum(p.expand_as(lo), lo), hi)
        return Bounded((near - p).abs().sum(1, keepdim=True) - 1e-3, None)

    def probe(points):
        values = np.abs(points - p.numpy()).sum(1) - 1e-3
        hits = np.nonzero(values <= 0)[0]
        return int(hits[0]) if len(hits) else None

    outcome = input_split_bab(bound_fn, np.array([-1.0, -1.0]), np.array([1.0, 1.0]),
                              GROUPS, time.monotonic() + 30, probe,
                              InputSplitConfig(batch_size=64))
    assert outcome.status == "counterexample"
    assert np.abs(outcome.counterexample_point - p.numpy()).sum() <= 1e-3


def test_without_a_probe_a_violated_case_times_out_not_proven():
    def bound_fn(lo, hi, restrictions):
        return Bounded(torch.full((lo.shape[0], 1), -1.0, dtype=torch.float64), None)

    outcome = input_split_bab(bound_fn, np.zeros(2), np.ones(2), GROUPS,
                              time.monotonic() + 0.5, config=InputSplitConfig(batch_size=32))
    assert outcome.status in ("timeout", "exhausted")


def test_parent_node_bounds_reach_the_children_as_restrictions():
    seen = []

    def bound_fn(lo, hi, restrictions):
        seen.append(restrictions)
        nodes = {"h": (lo.clone(), hi.clone())}
        margin = (hi - lo).max(1, keepdim=True).values - 0.3   # proven once narrower
        return Bounded(-margin, None, nodes)

    outcome = input_split_bab(bound_fn, np.zeros(1), np.ones(1), GROUPS,
                              time.monotonic() + 10, config=InputSplitConfig(batch_size=4))
    assert outcome.status == "proven"
    assert seen[0] is None
    child = seen[1]
    assert set(child) == {"h"} and child["h"][0].shape[0] == 2


class _Delegate:
    """Takes every open domain; ``verdict`` decides what it reports."""

    def __init__(self, verdict: str):
        self.verdict, self.taken = verdict, []

    def select(self, pool, deadline):
        batch, _ = pool.pop(len(pool))
        self.taken.append(batch)
        return batch

    def collect(self):
        taken, self.taken = self.taken, []
        if self.verdict == "proven":
            return [], None, sum(len(b) for b in taken)
        if self.verdict == "returned":
            return taken, None, 0
        self.taken = taken  # "silent": keeps them forever
        return [], None, 0

    def outstanding(self):
        return sum(len(b) for b in self.taken)

    def wait(self, deadline):
        time.sleep(0.01)


def _always_open(lo, hi, restrictions):
    width = (hi - lo).max(1, keepdim=True).values
    return Bounded(-width + 1e-3, None)   # proven only on tiny boxes


def test_delegated_domains_count_as_open_until_reported():
    silent = _Delegate("silent")
    outcome = input_split_bab(_always_open, np.zeros(2), np.ones(2), GROUPS,
                              time.monotonic() + 0.5, config=InputSplitConfig(batch_size=8),
                              delegate=silent)
    assert outcome.status == "timeout"
    proven = _Delegate("proven")
    outcome = input_split_bab(_always_open, np.zeros(2), np.ones(2), GROUPS,
                              time.monotonic() + 10, config=InputSplitConfig(batch_size=8),
                              delegate=proven)
    assert outcome.status == "proven" and outcome.stats["delegated_proven"] > 0


def test_returned_domains_are_branched_again():
    def bound_fn(lo, hi, restrictions):
        width = (hi - lo).max(1, keepdim=True).values
        return Bounded(0.3 - width, None)

    returned = _Delegate("returned")
    outcome = input_split_bab(bound_fn, np.zeros(2), np.ones(2), GROUPS,
                              time.monotonic() + 10, config=InputSplitConfig(batch_size=8),
                              delegate=returned)
    assert outcome.status == "proven"
    assert outcome.stats["delegated_returned"] > 0


def test_pool_take_keeps_the_rest_intact_through_growth_and_removal():
    """Random pushes and removals: the pool always holds exactly the domains pushed and not
    taken, each with its own node bounds (rows never mix)."""
    gen = torch.Generator().manual_seed(0)
    pool = DomainPool(2, torch.device("cpu"))
    alive: set[int] = set()
    next_id = 0
    for _ in range(30):
        k = int(torch.randint(1, 700, (1,), generator=gen))
        ids = torch.arange(next_id, next_id + k, dtype=torch.float64)
        next_id += k
        box = torch.stack([ids, -ids], 1)
        pool.push(box, box + 1, -ids[:, None], torch.zeros(k, dtype=torch.long),
                  torch.zeros((k, 1), dtype=torch.long), {"h": (ids[:, None] * 3, ids[:, None])})
        alive.update(range(next_id - k, next_id))
        take = torch.randperm(len(pool), generator=gen)[: len(pool) // 3]
        batch = pool.take(take)
        assert torch.equal(batch.node_bounds["h"][0][:, 0], batch.lower[:, 0] * 3)
        alive.difference_update(int(v) for v in batch.lower[:, 0].tolist())
        assert sorted(int(v) for v in pool.lower[:, 0].tolist()) == sorted(alive)
        assert torch.equal(pool.node_bounds["h"][1][:, 0], pool.lower[:, 0])
        assert torch.equal(pool.margin[:, 0], -pool.lower[:, 0])
