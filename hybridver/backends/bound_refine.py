"""Pre-activation intervals of the first ReLU layers tightened by LPs and MILPs (HiGHS).

For a box ``[lower, upper]`` and sound starting intervals (CROWN's, say), the neurons of
the first ``layers`` ReLU-like layers that are unstable (``lo < 0 < hi``) get, most
unstable first (largest ``min(-lo, hi)``):

1. two LPs each, ``max z`` and ``min z`` over the LP relaxation of the MILP of
   :mod:`hybridver.encode.milp` restricted to the layers before ``z`` (the big-M encoding
   with its binaries relaxed: the triangle relaxation of every earlier ReLU, with the
   intervals tightened so far);
2. with ``milp``, for each neuron the LPs left unstable, the same two problems with the
   binaries of the earlier layers' unstable neurons kept integral (an exact encoding of
   the earlier layers), each stopped after ``neuron_time_s``.

The first ReLU layer reading the input through affine nodes only is skipped: over a box
its LP optimum is the interval bound, which CROWN already gives.  Layers are done in
order and the model is rebuilt between them, so later big-Ms use the tighter bounds.

Soundness: every execution of the network on the box is a feasible point of each LP and
MILP (the starting intervals are sound, and each problem only drops the rows of later
layers, which enlarges the feasible set).  An LP bound is never HiGHS's objective: it is
:func:`~hybridver.backends.lp.model_lower_bound` of its duals, which holds in exact
arithmetic whatever the tolerances, and only after status Optimal.  A MILP bound is
HiGHS's dual (best) bound, never the incumbent, read only after status Optimal or a
limit, and widened by :func:`hybridver.numerics.milp_bound_margin` (docs/soundness.md,
"LP/MILP-tightened intermediate bounds").  A new bound that would empty an interval keeps
the old one and is counted (``stats["empty"]``) and logged: it can only come from a bug or
an empty box.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping

import numpy as np

from hybridver.backends.lp import LpSolver, LpStatus, model_lower_bound, prefix_model
from hybridver.encode.milp import MilpModel, encode_milp
from hybridver.ir.ops import OpKind
from hybridver.numerics import milp_bound_margin
from hybridver.problem import Subproblem
from hybridver.relaxations.base import kink_slope
from hybridver.specs import InputBox, OutputConstraints

__all__ = ["RefineConfig", "refine_intermediate_bounds"]

log = logging.getLogger(__name__)

NodeBounds = Mapping[str, tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class RefineConfig:
    """LP/MILP tightening of the first ReLU layers' intervals before activation splitting.

    ``enabled``: the switch; ``layers``: ReLU layers whose pre-activations are tightened
    (counting the first, which is exact already); it runs only on networks whose every
    splittable nonlinearity is ReLU-like with at least ``min_relu_layers`` such layers and
    at least ``min_unstable`` unstable neurons in layers 2..``layers`` after the root bound,
    and only when the root bound leaves the case open.  ``milp``: the MILP pass (else LPs
    only); ``neuron_time_s``: the limit of each MILP (one side of one neuron);
    ``time_share``/``max_time_s``: the whole refinement spends at most that share of the
    time left, and at most that many seconds.
    """

    enabled: bool = True
    layers: int = 3
    min_relu_layers: int = 3
    min_unstable: int = 20
    milp: bool = False
    neuron_time_s: float = 0.5
    time_share: float = 0.3
    max_time_s: float = 60.0

    def __post_init__(self) -> None:
        if self.layers < 1 or self.min_relu_layers < 1 or self.min_unstable < 0:
            raise ValueError("layers and min_relu_layers must be >= 1, min_unstable >= 0")
        if not (self.neuron_time_s > 0 and 0 < self.time_share <= 1 and self.max_time_s >= 0):
            raise ValueError("neuron_time_s > 0, 0 < time_share <= 1, max_time_s >= 0")


def _relu_sites(graph, model: MilpModel, layers: int) -> list[int]:
    """Indices of the first ``layers`` sites, all ReLU-like with a flat operand (stops
    at the first other nonlinearity: later layers' encodings would not be exact)."""
    out = []
    for s, site in enumerate(model.sites[:layers]):
        if site.op is not OpKind.RELU or site.z_vars.ndim != 1:
            break
        out.append(s)
    return out


def _lp_pass(sub: MilpModel, cols: np.ndarray, lo: np.ndarray, hi: np.ndarray,
             targets: np.ndarray, deadline: float, stats: dict) -> None:
    """Two LPs per target over ``sub`` (its LP relaxation); ``lo``/``hi`` updated in
    place with rigorous dual bounds (status Optimal only)."""
    solver = LpSolver()
    solver.load_model(sub)
    for j in targets:
        for sense in (-1.0, 1.0):          # the maximum first: z <= 0 settles the neuron
            left = deadline - time.monotonic()
            if left <= 0:
                stats["complete"] = False
                return
            if sense > 0 and hi[j] <= 0:
                continue
            # HiGHS's time_limit counts the instance's run time over all its runs
            solver.set_option("time_limit", solver.highs.getRunTime() + max(left, 0.01))
            solver.set_costs([cols[j]], [sense])
            optimal = solver.run() is LpStatus.OPTIMAL
            duals = solver.row_duals() if optimal else None
            solver.set_costs([cols[j]], [0.0])
            stats["lps"] += 1
            if duals is None:
                stats["lp_failed"] += 1
                continue
            cost = np.zeros(sub.n_vars)
            cost[cols[j]] = sense
            _update(lo, hi, j, sense, model_lower_bound(sub, cost, duals), stats, "lp")


def _milp_pass(sub: MilpModel, cols: np.ndarray, lo: np.ndarray, hi: np.ndarray,
               targets: np.ndarray, neuron_time_s: float, deadline: float,
               stats: dict) -> None:
    """Two MILPs per target still unstable, each within ``neuron_time_s``; the bound is
    HiGHS's dual bound widened by :func:`milp_bound_margin` (read after Optimal or a
    limit only; never the incumbent)."""
    import highspy

    solver = LpSolver()
    solver.load_model(sub, integer=True)
    h = solver.highs
    for key, value in (("mip_rel_gap", 1e-4), ("random_seed", 0),
                       ("primal_feasibility_tolerance", 1e-7),
                       ("dual_feasibility_tolerance", 1e-7),
                       ("mip_feasibility_tolerance", 1e-7)):
        h.setOptionValue(key, value)
    ms = highspy.HighsModelStatus
    readable = (ms.kOptimal, ms.kTimeLimit, ms.kInterrupt, ms.kSolutionLimit,
                ms.kIterationLimit)
    for j in targets:
        for sense in (-1.0, 1.0):
            if not (lo[j] < 0 < hi[j]):
                break
            left = deadline - time.monotonic()
            if left <= 0.05:
                stats["complete"] = False
                return
            h.setOptionValue("time_limit", h.getRunTime() + float(min(neuron_time_s, left)))
            solver.set_costs([cols[j]], [sense])
            h.run()
            status = h.getModelStatus()
            dual = float(h.getInfo().mip_dual_bound)
            solver.set_costs([cols[j]], [0.0])
            stats["milps"] += 1
            if status not in readable or not math.isfinite(dual):
                stats["milp_failed"] += 1
                continue
            _update(lo, hi, j, sense, dual - milp_bound_margin(dual), stats, "milp")


def _update(lo: np.ndarray, hi: np.ndarray, j: int, sense: float, bound: float,
            stats: dict, what: str) -> None:
    """``bound``: a proven lower bound of ``sense * z_j``.  Tightens ``lo[j]`` (sense +1)
    or ``hi[j]`` (sense -1) unless it would empty the interval (kept, counted, logged)."""
    if not math.isfinite(bound):
        return
    new_lo, new_hi = (bound, hi[j]) if sense > 0 else (lo[j], -bound)
    if new_lo > new_hi:
        stats["empty"] += 1
        log.warning("%s bound %.17g of neuron %d would empty [%.17g, %.17g]: kept the old "
                    "interval", what, sense * bound, j, lo[j], hi[j])
        return
    if new_lo > lo[j] or new_hi < hi[j]:
        stats[f"{what}_tightened"] += 1
    lo[j], hi[j] = new_lo, new_hi


def refine_intermediate_bounds(graph, lower: np.ndarray, upper: np.ndarray,
                               bounds: NodeBounds, layers: int, deadline: float,
                               milp: bool = True, neuron_time_s: float = 0.5
                               ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:
    """Tighter intervals of the pre-activations of the first ``layers`` ReLU layers of
    ``graph`` on the box ``[lower, upper]`` (``(n_in,)`` each).

    ``bounds``: sound starting intervals, node name -> ``(lo, hi)`` flat ``(node.size,)``
    (those the box's interval bounds do not give, e.g. CROWN's); ``deadline``: a
    ``time.monotonic()`` value, after which it stops keeping what it has.  Returns the
    intervals (every node of ``bounds`` and of the box's interval bounds, the tightened
    ones intersected in) and stats: ``lps``/``milps`` solved, ``lp_tightened``/
    ``milp_tightened`` bounds moved, ``stabilized`` neurons, ``unstable_before`` (in the
    layers tightened), ``empty`` refused bounds, ``complete``, ``time_s``, ``per_layer``
    (node, unstable, stabilized, seconds since the start at its end).
    """
    start = time.monotonic()
    stats = {"lps": 0, "milps": 0, "lp_failed": 0, "milp_failed": 0, "lp_tightened": 0,
             "milp_tightened": 0, "stabilized": 0, "unstable_before": 0, "empty": 0,
             "complete": True, "time_s": 0.0, "per_layer": []}
    box = InputBox(np.asarray(lower, dtype=np.float64).reshape(-1),
                   np.asarray(upper, dtype=np.float64).reshape(-1))
    n_out = graph.output_node.size
    problem = Subproblem(graph, box, OutputConstraints(np.zeros((0, n_out)), np.zeros(0)),
                         {k: (np.asarray(lo, np.float64).reshape(-1),
                              np.asarray(hi, np.float64).reshape(-1))
                          for k, (lo, hi) in bounds.items()})
    current = dict(problem.node_bounds)
    model = encode_milp(problem)
    for s in _relu_sites(graph, model, layers):
        if s == 0:
            continue           # over a box the first layer's LP is its interval bound
        if time.monotonic() >= deadline:
            stats["complete"] = False
            break
        model = encode_milp(dataclasses.replace(problem, node_bounds=current))
        site = model.sites[s]
        z = site.z_vars
        lo, hi = model.var_lower[z].copy(), model.var_upper[z].copy()
        unstable = np.nonzero((lo < 0) & (hi > 0))[0]
        stats["unstable_before"] += int(unstable.size)
        if not unstable.size:
            continue
        targets = unstable[np.argsort(-np.minimum(-lo[unstable], hi[unstable]),
                                      kind="stable")]
        sub, index = prefix_model(model, s, integer=False)
        cols = index[z]
        _lp_pass(sub, cols, lo, hi, targets, deadline, stats)
        left = targets[(lo[targets] < 0) & (hi[targets] > 0)]
        if milp and left.size and stats["complete"] and model.n_integer:
            sub, index = prefix_model(model, s, integer=True)
            if sub.n_integer:
                _milp_pass(sub, index[z], lo, hi, left, neuron_time_s, deadline, stats)
        settled = int(np.sum((lo[unstable] >= 0) | (hi[unstable] <= 0)))
        stats["stabilized"] += settled
        stats["per_layer"].append({"node": site.operand, "unstable": int(unstable.size),
                                   "stabilized": settled,
                                   "until_s": round(time.monotonic() - start, 3)})
        _store(graph, current, site, lo, hi, stats)
        if not stats["complete"]:
            break
    stats["time_s"] = time.monotonic() - start
    return current, stats


def _store(graph, current: dict, site, lo: np.ndarray, hi: np.ndarray, stats: dict) -> None:
    """Intersect the operand's interval with ``[lo, hi]`` (never to an empty one) and
    pass the new ends through the ReLU to its output's interval."""
    old_lo, old_hi = current.get(site.operand, (np.full(lo.size, -np.inf),
                                                np.full(lo.size, np.inf)))
    new_lo, new_hi = np.maximum(old_lo, lo), np.minimum(old_hi, hi)
    bad = new_lo > new_hi
    if bad.any():
        stats["empty"] += int(bad.sum())
        log.warning("tightened interval of %d neurons of '%s' would be empty: kept the old",
                    int(bad.sum()), site.operand)
        new_lo, new_hi = np.where(bad, old_lo, new_lo), np.where(bad, old_hi, new_hi)
    current[site.operand] = (new_lo, new_hi)
    alpha = kink_slope(site.op, graph.node(site.node).attrs)
    if alpha == 0.0 and site.node in current:   # relu is monotone: f of the ends
        out_lo, out_hi = current[site.node]
        current[site.node] = (np.maximum(out_lo, np.maximum(new_lo, 0.0)),
                              np.minimum(out_hi, np.maximum(new_hi, 0.0)))
