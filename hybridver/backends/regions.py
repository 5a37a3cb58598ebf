"""Region splitting as an exact back end: ReLU phases split in layer order over input
polytopes, with CROWN bounds and LPs (:mod:`hybridver.backends.region_split`).

It is exact for networks that are chains of affine layers with ReLUs
(:class:`~hybridver.ir.relu_chain.ReluChain`) and pays off for low-dimensional inputs
(ACAS Xu's 5), where it decides instances that input splitting cannot in the time
limit.  Any other graph gets UNKNOWN at once.  INFEASIBLE is a proof (the region split's
soundness argument); a CANDIDATE is a point where the IR evaluation violates every row
(within ``1e-6``), still to be confirmed on the real model by the caller.  Needs highspy
for the LPs.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import torch

from hybridver.backends.base import (Capabilities, Limits, Outcome, Status,
                                     register_backend)
from hybridver.bab_core import SearchStatus
from hybridver.numerics import TINY, U64
from hybridver.problem import Subproblem
from hybridver.result import CandidateCounterexample

#: IR margin (max over rows of ``C y + d``) at or below which a point is a candidate.
CANDIDATE_TOLERANCE = 1e-6


@register_backend
class RegionsBackend:
    """Layer-order ReLU splitting over polytopes (no options)."""

    name = "regions"
    capabilities = Capabilities(exact_piecewise_linear=True, smooth_envelopes=False,
                                exact_arithmetic=False, max_binaries_hint=None,
                                max_inputs_hint=16, relu_chains_only=True)

    def is_available(self) -> bool:
        return importlib.util.find_spec("highspy") is not None

    def solve(self, problem: Subproblem, limits: Limits) -> Outcome:
        from hybridver.backends.region_split import RegionBounds, region_split_bab
        from hybridver.bounds.engine import compute_bounds
        from hybridver.bounds.options import BoundConfig
        from hybridver.ir.evaluate import evaluate
        from hybridver.ir.relu_chain import ReluChain

        start = time.monotonic()
        graph = problem.graph
        chain = ReluChain.of(graph)
        if chain is None:
            return Outcome(Status.UNKNOWN, time.monotonic() - start,
                           message="not a chain of affine layers and ReLUs")
        C, d = problem.constraints.C, problem.constraints.d
        box = problem.box
        if C.shape[0] == 0:   # output condition 'true': any input is a counterexample
            x = (box.lower + box.upper) / 2
            return self._candidate(graph, x, time.monotonic() - start, evaluate)
        shape = graph.input_node.shape
        pre_shapes = {name: graph.node(name).shape for name in chain.pre_names}
        known = {name: problem.node_bounds[name] for name in chain.pre_names
                 if name in problem.node_bounds}
        for relu in graph.nodes():   # branching decisions: +1 input >= 0, -1 input <= 0
            split = problem.relu_splits.get(relu.name)
            if split is None or relu.inputs[0] not in pre_shapes:
                continue
            pre = relu.inputs[0]
            size = graph.node(pre).size
            lo, hi = known.get(pre, (np.full(size, -np.inf), np.full(size, np.inf)))
            split = np.asarray(split).reshape(-1)
            known[pre] = (np.where(split > 0, np.maximum(lo, 0.0), lo),
                          np.where(split < 0, np.minimum(hi, 0.0), hi))

        def bound_fn(lo: np.ndarray, hi: np.ndarray, restrictions) -> RegionBounds:
            n = lo.shape[0]
            restr = {}
            for name, (rl, ru) in restrictions.items():
                if name in known:
                    rl, ru = np.maximum(rl, known[name][0]), np.minimum(ru, known[name][1])
                restr[name] = (torch.as_tensor(rl).reshape(n, *pre_shapes[name]),
                               torch.as_tensor(ru).reshape(n, *pre_shapes[name]))
            result = compute_bounds(graph, np.ascontiguousarray(lo).reshape(n, *shape),
                                    np.ascontiguousarray(hi).reshape(n, *shape), C, d,
                                    config=BoundConfig(method="crown"), restrictions=restr,
                                    bound_upper=False, input_coefficients=True)
            intervals = {name: (result.intervals[name].lower.reshape(n, -1).numpy(),
                                result.intervals[name].upper.reshape(n, -1).numpy())
                         for name in chain.pre_names}
            return RegionBounds(result.lower.numpy(), result.input_coef.numpy(),
                                result.input_offset.numpy(), intervals,
                                result.infeasible.numpy())

        found: list[np.ndarray] = []

        def probe(points: np.ndarray) -> int | None:
            with torch.no_grad():
                y = evaluate(graph, torch.as_tensor(points).reshape(-1, *shape))
            margins = (y.reshape(len(points), -1).double().numpy() @ C.T + d).max(axis=1)
            k = int(np.argmin(margins))
            if margins[k] <= CANDIDATE_TOLERANCE:
                found.append(points[k])
                return k
            return None

        # first-layer decisions are exact half-spaces of the input: the root's cuts
        cut_rows, cut_rhs = [], []
        first = chain.pre_names[0]
        if first in known:
            w, b = chain.weights[0], chain.biases[0]
            u, tiny = U64, TINY   # right-hand sides rounded upward
            for j in np.flatnonzero(known[first][0] >= 0):   # z_j >= lo_j >= 0 is implied
                rhs = b[j] - known[first][0][j]
                cut_rows.append(-w[j])
                cut_rhs.append(rhs + 2 * u * abs(rhs) + tiny)
            for j in np.flatnonzero(known[first][1] <= 0):
                rhs = known[first][1][j] - b[j]
                cut_rows.append(w[j])
                cut_rhs.append(rhs + 2 * u * abs(rhs) + tiny)
        cuts = (np.array(cut_rows).reshape(-1, len(box.lower)), np.array(cut_rhs))
        outcome = region_split_bab(chain, bound_fn, box.lower, box.upper, C, d,
                                   [slice(0, C.shape[0])], start + limits.time_s, probe,
                                   cuts=cuts)
        elapsed = time.monotonic() - start
        stats = outcome.stats.as_dict()
        if outcome.status is SearchStatus.PROVEN:
            return Outcome(Status.INFEASIBLE, elapsed, solver_status="proven", stats=stats)
        if outcome.status is SearchStatus.COUNTEREXAMPLE and found:
            return self._candidate(graph, found[-1], elapsed, evaluate, stats)
        status = Status.TIMEOUT if outcome.status is SearchStatus.TIMEOUT else Status.UNKNOWN
        message = "a fully linear region left unrefuted (a tie within rounding)" \
            if outcome.stats.stuck else ""
        return Outcome(status, elapsed, solver_status=outcome.status.value, message=message,
                       stats=stats)

    @staticmethod
    def _candidate(graph, x: np.ndarray, elapsed: float, evaluate, stats=None) -> Outcome:
        with torch.no_grad():
            y = evaluate(graph, torch.as_tensor(x).reshape(1, *graph.input_node.shape))
        cand = CandidateCounterexample(np.asarray(x, np.float64),
                                       y.reshape(-1).double().numpy(), "regions")
        return Outcome(Status.CANDIDATE, elapsed, candidate=cand, solver_status="candidate",
                       stats=stats or {})
