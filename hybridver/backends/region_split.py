"""Branch-and-bound on ReLU phases in layer order, over input polytopes (for chains of
affine + ReLU layers with low-dimensional inputs, e.g. ACAS Xu).

A *region* is a convex polytope ``P = {x in box, G x <= h}`` of the case's input box on
which the ReLUs of the first layers have fixed phases; on it the pre-activations of the
next hidden layer are an exact affine function of ``x`` (:meth:`ReluChain.affine_map`).
Splitting an unstable neuron of the first layer that still has one cuts ``P`` by the
hyperplane ``z_j(x) = 0`` into two regions (the geometric path enumeration of nnenum,
with bounds from this package's engine):

* every region of a batch is bounded by CROWN over its bounding box, with its phases and
  its parent's pre-activation intervals passed as restrictions; a disjunct is refuted when
  one of its rows has a positive bound;
* otherwise CROWN's linear lower bounds ``L_r(x) <= row_r(x)`` (valid at every point of
  the box, :func:`hybridver.bounds.engine.linear_bound_offset`) are minimised over ``P``
  itself by LP, with a rigorous dual bound (:mod:`hybridver.backends.polytope_lp`): this is
  where the cuts pay off, as CROWN alone only sees the box;
* the LP's minimiser is tested on the model (a candidate counterexample);
* the region still open is split on an unstable neuron of its first unstable layer
  (``RegionSplitConfig.choice``), after that layer's intervals are tightened by LPs over
  ``P`` (a neuron unstable on the box is often stable on the polytope);
* open regions are taken most promising first (lowest LP bound of the parent).

The loop is :func:`hybridver.bab_core.run_search`; this module is its strategy for
polytopes.

Soundness: the cut of a split is the computed ``A_j x + a_j`` widened by its rounding
radius on both sides (``A_j x + a_j >= -radius`` for the active child, ``<= radius`` for
the inactive one), so every point of the parent whose true ``z_j`` is ``>= 0`` (resp.
``<= 0``) lies in the active (resp. inactive) child's polytope, and the child's
restriction ``z_j >= 0`` (resp. ``<= 0``) is true at exactly those points: the children
cover the parent.  A region is dropped only when the engine's bound, an LP dual bound or an
emptiness certificate proves it; PROVEN needs no open region.  A fully linear region
whose LP cannot refute it and whose minimiser is not a confirmed counterexample is
unresolved (a tie within rounding, counted as ``stats.stuck``): the run ends EXHAUSTED,
never PROVEN.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from hybridver.backends.lp import LpSolver
from hybridver.backends.polytope_lp import (bounding_box, linear_minima, min_max_over_polytope,
                                            new_solver, propagate_cut)
from hybridver.bab_core import (ProbeFn, SearchLimits, SearchOutcome, SearchStats, StopFn,
                                run_search)
from hybridver.ir.relu_chain import ReluChain
from hybridver.numerics import TINY, U64, gamma

Tensor = torch.Tensor


@dataclasses.dataclass
class RegionBounds:
    """What a bound function returns for ``N`` regions (boxes plus restrictions).

    ``row_lower (N, m)``: sound lower bounds of the stacked rows; ``coef (N, m, n_in)``
    and ``offset (N, m)``: CROWN's linear lower bounds, valid at every point of the box
    that satisfies the restrictions; ``intervals``: pre-activation name -> ``(lower,
    upper)`` ``(N, n)`` sound on each region; ``infeasible (N,)``: contradictory
    restrictions (the region is empty)."""

    row_lower: np.ndarray
    coef: np.ndarray
    offset: np.ndarray
    intervals: Mapping[str, tuple[np.ndarray, np.ndarray]]
    infeasible: np.ndarray


#: ``bound_fn(lower (N, n_in), upper (N, n_in), restrictions name -> (lo, hi) (N, n))``
BoundFn = Callable[[np.ndarray, np.ndarray, Mapping[str, tuple[np.ndarray, np.ndarray]]],
                   RegionBounds]


@dataclasses.dataclass(frozen=True)
class RegionSplitConfig:
    batch_size: int = 256          # regions bounded per engine call
    max_regions: int = 5_000_000   # regions bounded before giving up (EXHAUSTED)
    tighten_boxes: bool = True     # shrink new regions' boxes to their polytope (LPs)
    lp_intervals: bool = True      # exact intervals of the split layer's unstable neurons
    #                                over the polytope (2 LPs each) before choosing
    choice: str = "balanced"       # neuron of the first unstable layer: "balanced"
    #                                (largest min(-l, u)), "area" (-l u / (u - l), the
    #                                triangle relaxation's gap), "first" (lowest index)


@dataclasses.dataclass
class _Region:
    lo: np.ndarray                    # (n_in,) a box containing the polytope
    hi: np.ndarray
    G: np.ndarray                     # (K, n_in) cuts
    h: np.ndarray                     # (K,)
    intervals: dict[str, tuple[np.ndarray, np.ndarray]]   # restrictions (n,) per node
    open_disjuncts: np.ndarray        # (g,) bool: not yet refuted on this region
    box_points: np.ndarray | None = None   # (2 n_in, n_in) LP minimisers of the box ends


@dataclasses.dataclass
class _Bounded:
    """A bounded batch: ``children``, per split region ``(worst LP bound, parent's box
    minimisers, its children)``, and the candidate ``points`` (LP minimisers)."""

    children: list[tuple[float, np.ndarray | None, list[_Region]]]
    points: list[np.ndarray]


class _RegionSplitting:
    """The strategy (:class:`hybridver.bab_core.Strategy`): pop the most promising
    regions, bound them (engine, then LPs over each polytope), split each open one on a
    neuron of its first unstable layer, probe the LP minimisers, shrink the children's
    boxes and push them."""

    hand_off = None

    def __init__(self, chain: ReluChain, bound_fn: BoundFn, lower: np.ndarray,
                 upper: np.ndarray, C: np.ndarray, d: np.ndarray, groups: Sequence[slice],
                 config: RegionSplitConfig, cuts: tuple[np.ndarray, np.ndarray] | None):
        self.chain, self.bound_fn, self.C, self.d = chain, bound_fn, C, d
        self.groups, self.config = groups, config
        self.stats = SearchStats()
        self.lp = new_solver()   # the run owns one LP solver
        lower, upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
        n_in = lower.shape[0]
        self.reach = np.maximum(np.abs(lower), np.abs(upper))
        full = {name: (np.full(w.shape[0], -np.inf), np.full(w.shape[0], np.inf))
                for name, w in zip(chain.pre_names, chain.weights)}
        G0, h0 = cuts if cuts is not None else (np.zeros((0, n_in)), np.zeros(0))
        # open regions, most promising first: keyed by the parent's worst LP bound (the
        # tree to prove is the same in any order; a counterexample is reached sooner)
        self.heap = [(-math.inf, 0, _Region(lower, upper, np.asarray(G0, np.float64),
                                            np.asarray(h0, np.float64), full,
                                            np.ones(len(groups), dtype=bool)))]
        self.pushed = 1

    def root(self) -> None:
        return None   # the root region is in the heap

    def open_count(self) -> int:
        return len(self.heap)

    def best_margin(self) -> float:
        return self.heap[0][0] if self.heap else math.inf

    def select(self) -> list[_Region]:
        return [heapq.heappop(self.heap)[2]
                for _ in range(min(self.config.batch_size, len(self.heap)))]

    def bound(self, batch: list[_Region]) -> _Bounded:
        """Refute disjuncts by the engine's bounds, then by LPs over each polytope; split
        the regions still open (fully linear ones: the exact rows' LP, else stuck)."""
        chain, groups, stats, config = self.chain, self.groups, self.stats, self.config
        n = len(batch)
        restrictions = {name: (np.stack([r.intervals[name][0] for r in batch]),
                               np.stack([r.intervals[name][1] for r in batch]))
                        for name in chain.pre_names}
        bounds = self.bound_fn(np.stack([r.lo for r in batch]),
                               np.stack([r.hi for r in batch]), restrictions)
        stats.domains_bounded += n
        stats.batches += 1
        out = _Bounded([], [])
        points = out.points
        for b, region in enumerate(batch):
            if bounds.infeasible[b]:
                stats.infeasible += 1
                continue
            still = region.open_disjuncts.copy()
            for k, rows in enumerate(groups):
                if still[k] and bounds.row_lower[b, rows].max() > 0:
                    still[k] = False
            if not still.any():
                continue
            worst = math.inf
            for k in np.flatnonzero(still):
                rows = groups[k]
                stats.lps += 1
                result = min_max_over_polytope(bounds.coef[b, rows], bounds.offset[b, rows],
                                               region.G, region.h, region.lo, region.hi,
                                               self.lp)
                if result.lower > 0:
                    still[k] = False
                    stats.lp_proven += 1
                    continue
                worst = min(worst, result.lower)
                if result.point is not None:
                    points.append(result.point)
            if not still.any():
                continue
            intervals = {name: (bounds.intervals[name][0][b], bounds.intervals[name][1][b])
                         for name in chain.pre_names}
            children, phases = _split(chain, region, intervals, still, self.reach,
                                      config.choice, config.lp_intervals, self.lp)
            if children is None:   # fully linear: the exact affine output, in float64
                stats.linear_regions += 1
                for k in np.flatnonzero(still):
                    lam, c = _linear_rows(chain, phases, self.C[groups[k]], self.d[groups[k]],
                                          self.reach)
                    result = min_max_over_polytope(lam, c, region.G, region.h, region.lo,
                                                   region.hi, self.lp)
                    if result.lower > 0:
                        still[k] = False
                    elif result.point is not None:
                        points.append(result.point)
                stats.stuck += int(still.any())
                continue
            out.children.append((worst, region.box_points, children))
            stats.max_cuts = max(stats.max_cuts, region.G.shape[0] + 1)
        return out

    def candidates(self, bounded: _Bounded) -> np.ndarray | None:
        return np.stack(bounded.points) if bounded.points else None

    def branch(self, bounded: _Bounded) -> None:
        """Shrink each child's box to its polytope (dropping the empty ones) and push it."""
        for worst, box_points, children in bounded.children:
            for child in children:
                if not _shrink_box(child, box_points, self.config.tighten_boxes, self.lp):
                    self.stats.infeasible += 1
                    continue
                heapq.heappush(self.heap, (worst, self.pushed, child))
                self.pushed += 1


def region_split_bab(chain: ReluChain, bound_fn: BoundFn, lower: np.ndarray,
                     upper: np.ndarray, C: np.ndarray, d: np.ndarray,
                     groups: Sequence[slice], deadline: float,
                     probe: ProbeFn, config: RegionSplitConfig = RegionSplitConfig(),
                     stop: StopFn | None = None,
                     cuts: tuple[np.ndarray, np.ndarray] | None = None) -> SearchOutcome:
    """Decide one case on its box ``[lower, upper]`` ``(n_in,)`` (module docstring).

    ``C (m, n_out)``, ``d (m,)``: the case's stacked rows (``bound_fn`` bounds the same);
    ``groups``: the row slices of each disjunct in them; ``probe`` tests candidate points
    on the model; ``deadline``: a ``time.monotonic()`` value; ``stop()`` True ends the run
    early (STOPPED); ``cuts``: ``(G (K, n_in), h (K,))`` that every point of interest
    satisfies (e.g. branching decisions on the first layer), the root region's polytope.
    The status is a :class:`~hybridver.bab_core.SearchStatus`: EXHAUSTED when
    ``config.max_regions`` is reached or a region is unresolved (``stats.stuck``).  The
    run owns one LP solver."""
    strategy = _RegionSplitting(chain, bound_fn, lower, upper, np.asarray(C, np.float64),
                                np.asarray(d, np.float64), groups, config, cuts)
    return run_search(strategy, SearchLimits(deadline, config.max_regions, stop), probe)


def _shrink_box(child: _Region, parent_points: np.ndarray | None, use_lp: bool,
                lp: LpSolver) -> bool:
    """Shrink ``child``'s box (its parent's) to its polytope: the new cut propagated, then,
    if ``use_lp``, an LP for every end whose parent minimiser violates the new cut (the
    others are still optimal).  False when the child is proven empty."""
    box = propagate_cut(child.G[-1], child.h[-1], child.lo, child.hi)
    if box is None:
        return False
    child.lo, child.hi = box
    if not use_lp:
        return True
    n = child.lo.shape[0]
    if parent_points is None:
        solve = np.ones(2 * n, dtype=bool)
    else:
        with np.errstate(invalid="ignore"):
            solve = ~(parent_points @ child.G[-1] <= child.h[-1])   # NaN rows: solve
    result = bounding_box(child.G, child.h, child.lo, child.hi, solve, lp)
    if result is None:
        return False
    child.lo, child.hi = result.lower, result.upper
    points = result.points
    if parent_points is not None:
        points = np.where(solve[:, None], points, parent_points)
    child.box_points = points
    return True


def _polytope_intervals(A: np.ndarray, a: np.ndarray, radius: np.ndarray,
                        which: np.ndarray, region: _Region, lp: LpSolver
                        ) -> tuple[np.ndarray, np.ndarray] | None:
    """Bounds ``(lo, hi)`` ``(n,)`` of the pre-activations ``z = A x + a`` (within
    ``radius``) over ``region``'s polytope, by LP for the neurons in ``which`` (others
    unbounded); None when the polytope is proven empty."""
    idx = np.flatnonzero(which)
    result = linear_minima(np.vstack([A[idx], -A[idx]]), region.G, region.h, region.lo,
                           region.hi, lp)
    if result is None:
        return None
    bounds = result[0]
    k = len(idx)
    u = U64
    low = bounds[:k] + a[idx] - radius[idx]
    high = -bounds[k:] + a[idx] + radius[idx]
    slack = 4 * u * (np.abs(bounds[:k]) + np.abs(bounds[k:]) + np.abs(a[idx]) + radius[idx])
    lo, hi = np.full(len(a), -np.inf), np.full(len(a), np.inf)
    lo[idx], hi[idx] = low - slack, high + slack
    return lo, hi


def _linear_rows(chain: ReluChain, phases: list[np.ndarray], C: np.ndarray, d: np.ndarray,
                 reach: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """On a region where every ReLU is stable, the rows ``C y + d`` as exact affine
    functions of the input: ``lam (R, n_in)`` and ``c (R,)`` with ``lam . x + c <=
    row(x)`` (the composition's radius and the float64 rounding of ``C A`` subtracted);
    ``phases``: every hidden layer's (True: active), as :func:`_split` found them."""
    A, a, radius = chain.affine_map(chain.n_hidden, phases, reach)
    C = np.asarray(C, np.float64)
    lam = C @ A
    k = C.shape[1] + 1
    u = U64
    err = gamma(k, u) * (np.abs(C) @ (np.abs(A) @ reach + np.abs(a)) + np.abs(d))
    c = C @ a + d - np.abs(C) @ radius - 2 * err
    # lam's own rounding is inside err (it multiplies reach); c's subtraction rounding:
    return lam, c - 4 * u * (np.abs(C @ a) + np.abs(d) + np.abs(C) @ radius + 2 * err)


def _split(chain: ReluChain, region: _Region,
           intervals: dict[str, tuple[np.ndarray, np.ndarray]], open_disjuncts: np.ndarray,
           reach: np.ndarray, choice: str = "balanced", lp_intervals: bool = True,
           lp: LpSolver | None = None) -> tuple[list[_Region] | None, list[np.ndarray]]:
    """``(children, phases)``: the two children of ``region`` on the chosen unstable neuron
    (``choice``) of its first layer with one (``[]`` when the polytope is proven empty),
    or None with every layer's phases when no neuron is unstable (the region is fully
    linear).  With ``lp_intervals``, the intervals of each layer reached are first
    tightened by LPs over the polytope (nnenum's exact bounds): a neuron the box calls
    unstable is often stable on the polytope, and the tighter intervals go to the
    children as restrictions."""
    phases = []
    intervals = dict(intervals)
    for layer, name in enumerate(chain.pre_names):
        lo, hi = intervals[name]
        unstable = (lo < 0) & (hi > 0)
        A = a = radius = None
        if unstable.any() and lp_intervals and region.G.shape[0]:
            A, a, radius = chain.affine_map(layer, phases, reach)
            tight = _polytope_intervals(A, a, radius, unstable, region,
                                        lp if lp is not None else new_solver())
            if tight is None:
                return [], phases   # the polytope is proven empty
            lo, hi = np.fmax(lo, tight[0]), np.fmin(hi, tight[1])   # NaN never wins
            intervals[name] = (lo, hi)
            unstable = (lo < 0) & (hi > 0)
        if not unstable.any():
            phases.append(lo >= 0)
            continue
        if choice == "first":
            j = int(np.argmax(unstable))
        else:
            score = np.minimum(-lo, hi) if choice == "balanced" else -lo * hi / (hi - lo)
            j = int(np.argmax(np.where(unstable, score, -np.inf)))
        if A is None:
            A, a, radius = chain.affine_map(layer, phases, reach)
        children = []
        for active in (True, False):
            sign = -1.0 if active else 1.0   # active: -(A x + a) <= radius; else A x + a <= r
            cut_row = sign * A[j]
            cut_rhs = radius[j] - sign * a[j]
            cut_rhs += 2 * U64 * (radius[j] + abs(a[j])) + TINY   # its rounding, upward
            new = dict(intervals)
            lo_j, hi_j = lo.copy(), hi.copy()
            if active:
                lo_j[j] = 0.0
            else:
                hi_j[j] = 0.0
            new[name] = (lo_j, hi_j)
            children.append(_Region(region.lo, region.hi,
                                    np.vstack([region.G, cut_row[None, :]]),
                                    np.append(region.h, cut_rhs), new, open_disjuncts.copy()))
        return children, phases
    return None, phases
