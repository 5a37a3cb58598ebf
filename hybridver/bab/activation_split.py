"""Branch-and-bound by splitting the pre-activation intervals of nonlinear neurons.

For high-dimensional inputs (MNIST: 784) splitting the input box is hopeless; instead a
domain is the case's (fixed) input box plus a restriction ``[lo, hi]`` on some neurons of
the pre-activation nodes (the inputs of ReLU-like and general elementwise nonlinearities
with a registered :class:`~hybridver.relaxations.base.UnaryRelaxation`).  The bound engine
intersects each restriction with the node's interval wherever it is used, so a split
makes the relaxation of the split neuron tighter (ReLU: exactly linear on each side) and,
through CROWN's intermediate bounds, the intervals of later neurons too.

Loop: bound a batch of domains (lower bounds only; alpha-beta-CROWN for ReLU-like
networks by default, CROWN otherwise: see :class:`ActivationSplitConfig`); drop the proven
ones (every
disjunct refuted) and the infeasible ones (contradictory restrictions: no input of the box
reaches them); for each open domain choose ONE neuron and split it at
``relaxation.branch_point`` (0 for ReLU-like ops, the tabulated point for sigmoid/tanh,
the midpoint otherwise) into ``hi := p`` and ``lo := p``; hardest (lowest margin) first.

Split constraints: with alpha-beta-CROWN every decision is also a linear constraint of
the final backward pass, with an optimized multiplier (beta-CROWN), so a domain whose
neurons are all stable is bounded by (close to) the LP over its region.  With CROWN the
engine uses the restrictions only through intervals, so a domain can end with every
neuron stable yet unproven (the bound ignores the split constraints).  Either way such a
domain's input box is then split in two (midpoint of the dimension with the largest
``|lambda_input| * width``), which also lets contradictory restrictions show up as
infeasible sub-boxes.  Domains keep their own box only once this happens.

Counterexample search (with a caller's ``probe``): every ``probe_every`` batches the
hardest open domains are attacked by a few signed-gradient steps inside their (shrunk)
input boxes, from the box centre and from the corner minimizing the critical row's linear
bound, on the margin plus the violation of the domain's decisions (which pulls the point
into the domain's region even where the margin is flat).  The points go to ``probe``;
only a point it confirms ends the search as "counterexample".

Box tightening: decisions on neurons that are affine in the input (a LINEAR layer reading
the input through flattening reshapes: the first layer of an MLP) are turned into a
smaller input box per batch by one-dimension-at-a-time bound propagation (outward
rounded), so that first-layer splits also shrink the box the engine bounds over; an empty
box marks the domain infeasible.

Heuristic (BaBSR-like, cheap): one extra CROWN-style backward pass of the domain's
*critical row* (the row that decides the domain's margin) through the relaxations of the
domain, using the plan's transposed linear rules and the relaxation slopes
(``lambda+ * lower_slope + lambda- * upper_slope``), gives each nonlinear output a
coefficient ``lambda``.  The score of an unstable neuron (its interval strictly contains
its branch point, and for piecewise-linear ops a breakpoint) is
``|lambda| * (upper_line(p) - lower_line(p))``: the relaxation gap at the split point
weighted by how much the bound depends on that neuron (BaBSR's ``|lambda| * intercept``
for ReLU).  When the backward pass is unavailable (unsupported node kinds) the score is
the gap alone.  The heuristic has no soundness role.

Soundness: the two children of a split share the point ``p``, so together they cover the
parent's set of inputs; a domain is dropped only when sound bounds prove every disjunct on
it, or when its restrictions are contradictory (then it contains no input at all).  The
result is "proven" only when the queue is empty and no domain was left unsplittable.

Binary nonlinearities (products) are relaxed but not split here.

Layout: the loop is :func:`hybridver.bab_core.run_search`; this module is its strategy;
the candidates and the split choice are in :mod:`hybridver.bab.branching`, the domains'
restrictions and box tightening in :mod:`hybridver.bab.neuron_domains`, the attack in
:mod:`hybridver.bab.domain_attack`.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from collections.abc import Sequence

import numpy as np
import torch

from hybridver.bab.branching import (SIGNED_INPUT, Decision, _Candidate, _candidates,
                                     _choose_splits, _sensitivities)
from hybridver.bab.domain_attack import _domain_attack
from hybridver.bab.fsb import fsb_choose
from hybridver.bab.input_split import disjunct_margins
from hybridver.bab.memory import batch_size as memory_batch_size
from hybridver.bab.memory import warm_budget_bytes
from hybridver.bab.neuron_domains import (NeuronBatch, _affine_rows, _restrictions,
                                          _tighten_boxes)
from hybridver.bab.root_refine import refine_and_rebound, with_root
from hybridver.bab.warm_start import WarmStore
from hybridver.backends.bound_refine import RefineConfig
from hybridver.bab_core import (ProbeFn, ProgressFn, SearchLimits, SearchOutcome, SearchStats,
                                StopFn, run_search)
from hybridver.bounds.alpha import warm_start
from hybridver.bounds.engine import compute_bounds
from hybridver.bounds.options import AlphaConfig, BoundConfig, BoundMethod
from hybridver.bounds.plan import get_plan

Tensor = torch.Tensor


#: alpha/beta optimization per batch of domains: short, as BaB bounds many batches
BAB_ALPHA = AlphaConfig(iterations=20, lr=0.3, lr_decay=0.95, patience=3, beta_lr=0.3)


@dataclasses.dataclass(frozen=True)
class ActivationSplitConfig:
    """Settings of :func:`activation_split_bab`.

    ``method``: the bound method per batch; None (default) picks ``alpha-beta-crown`` when
    some splittable nonlinearity is piecewise linear (ReLU-like: a split makes the neuron
    exactly linear, and the split constraint's multiplier is what turns that into
    progress; a sigmoid beside ReLUs, as in dist_shift, gets its split constraints'
    multipliers too), else ``crown``.  ``alpha``: the optimization of the optimized methods.
    Counterexample search (only with a ``probe``): every ``probe_every`` batches (and on
    the first), the ``probe_domains`` open domains with the lowest margin are attacked by
    ``attack_steps`` signed-gradient steps inside their input box; ``probe_every=0`` never.
    ``batch_size``: domains per bound call; None (default): as many as the engine's
    ``memory_limit_bytes`` and a quarter of the available memory allow
    (:mod:`hybridver.bab.memory`), at most ``max_batch_size``.  ``warm_start``: children
    start their alpha/beta optimization at their parent's optimized values
    (:mod:`hybridver.bab.warm_start`; optimized methods only).  ``branching``: "babsr"
    (the cheap score alone) or "fsb" (filtered smart branching,
    :mod:`hybridver.bab.fsb`: the ``fsb_candidates`` best-scored neurons' children
    re-bounded, the best worse child wins; the default).  ``refine``: LP/MILP-tightened
    root intervals for every domain (:mod:`hybridver.bab.root_refine`).
    """

    batch_size: int | None = None  # domains per compute_bounds call; None: from memory
    max_batch_size: int = 1024
    warm_start: bool = True
    branching: str = "fsb"
    fsb_candidates: int = 3
    max_domains: int = 2_000_000   # domains bounded before giving up ("exhausted")
    method: BoundMethod | None = None
    min_width: float = 1e-9        # smooth neurons narrower than this are not split
    alpha: AlphaConfig = BAB_ALPHA
    probe_every: int = 4
    probe_domains: int = 8
    attack_steps: int = 12
    refine: RefineConfig = RefineConfig()

    def __post_init__(self) -> None:
        if min(self.batch_size or 1, self.max_batch_size, self.max_domains,
               self.probe_domains) < 1:
            raise ValueError("batch_size, max_batch_size, max_domains and probe_domains must "
                             "be at least 1")
        if min(self.probe_every, self.attack_steps) < 0 or not self.min_width >= 0:
            raise ValueError("probe_every, attack_steps and min_width must not be negative")
        if self.branching not in ("babsr", "fsb") or self.fsb_candidates < 1:
            raise ValueError("branching must be 'babsr' or 'fsb', fsb_candidates at least 1")

    def bound_method(self, plan, cands: "list[_Candidate]") -> BoundMethod:
        if self.method is not None:
            return BoundMethod(self.method)
        some_linear_pieces = any(plan.relaxations[c.act].traits.piecewise_linear for c in cands)
        return BoundMethod.ALPHA_BETA_CROWN if some_linear_pieces else BoundMethod.CROWN


@dataclasses.dataclass
class _Bounded:
    """A bounded batch: its domains, boxes and parents' margins (as in
    :class:`NeuronBatch`), the (tightened) boxes ``blo, bhi (N, n_in)``, restrictions, the
    engine's result, case margins ``(N,)``, the rows of the open domains, and the branching
    sensitivities (or None), and the open domains' optimized values (warm start)."""

    domains: list[tuple[Decision, ...]]
    boxes: list[tuple | None]
    parents: list[float]
    blo: np.ndarray
    bhi: np.ndarray
    restr: dict[str, tuple[Tensor, Tensor]]
    res: object
    margin: Tensor
    open_idx: Tensor
    sens: dict[str, Tensor] | None
    warm: dict = dataclasses.field(default_factory=dict)   # open index -> WarmRef


class ActivationSplitting:
    """The strategy (:class:`hybridver.bab_core.Strategy`): pop the lowest-margin domains,
    bound them, attack the hardest open ones every ``probe_every`` batches, split each open
    one on its best neuron (or, with none left, on its input box) unless the hand-off
    takes it."""

    def __init__(self, graph, lower: np.ndarray, upper: np.ndarray, C: np.ndarray,
                 d: np.ndarray, groups: Sequence[slice], deadline: float,
                 config: ActivationSplitConfig, device: str | torch.device,
                 hand_off=None):
        self.hand_off = hand_off
        self.graph, self.groups, self.config, self.device = graph, groups, config, device
        self.stats = SearchStats()
        # the deadline stops alpha's optimization early (keeping its best bound) and, past
        # it, every bound pass raises DeadlineExceeded (the run answers timeout)
        bconfig = BoundConfig(alpha=dataclasses.replace(config.alpha, deadline=deadline),
                              deadline=deadline)
        self.plan = get_plan(graph, bconfig.torch_dtype, torch.device(device))
        self.cands = _candidates(graph, self.plan)
        method = config.bound_method(self.plan, self.cands)
        self.bconfig = dataclasses.replace(bconfig, method=method)
        self.stats.method = method.value
        rows = int(np.asarray(C).shape[0])
        self.batch_size = config.batch_size or memory_batch_size(
            self.plan, rows, method.optimized, bconfig.memory_limit_bytes,
            config.max_batch_size)
        self.warm = (WarmStore(warm_budget_bytes())
                     if config.warm_start and method.optimized else None)
        self.affine = {ci: (torch.as_tensor(w, device=device), b)
                       for ci, (w, b) in _affine_rows(graph, self.cands).items()}
        self.lo_in = np.asarray(lower, dtype=np.float64).reshape(1, -1)
        self.hi_in = np.asarray(upper, dtype=np.float64).reshape(1, -1)
        self.C = np.asarray(C, dtype=np.float64)
        self.d = np.asarray(d, dtype=np.float64)
        self.C_t = torch.as_tensor(self.C, device=device)
        self.C64, self.d64 = torch.as_tensor(self.C), torch.as_tensor(self.d)
        #: (margin, tie-break, decisions, input box or None for the case's whole box,
        #: the parent's optimized values or None); the margin is the parent's bound
        self.queue: list[tuple[float, int, tuple[Decision, ...], tuple | None, object]] = []
        self.counter = 0
        self.use_sens = True
        self.deadline, self.root_restr = deadline, {}   # root_refine's intervals

    def root(self) -> NeuronBatch:
        return NeuronBatch([()], [None], [-np.inf])

    def open_count(self) -> int:
        return len(self.queue)

    def best_margin(self) -> float:
        return self.queue[0][0] if self.queue else float("inf")

    def select(self) -> NeuronBatch:
        take = [heapq.heappop(self.queue)
                for _ in range(min(self.batch_size, len(self.queue)))]
        return NeuronBatch([t[2] for t in take], [t[3] for t in take], [t[0] for t in take],
                           [t[4] for t in take])

    def bound(self, batch: NeuronBatch) -> _Bounded | None:
        """Bound the domains; drop the proven and the infeasible ones (contradictory
        restrictions, or an empty tightened box)."""
        domains, boxes = batch.domains, batch.boxes
        stats, device = self.stats, self.device
        n = len(domains)
        restr = _restrictions(self.cands, domains, device)
        known = with_root({}, self.root_restr, n) if self.root_restr else None
        blo = np.repeat(self.lo_in, n, 0)
        bhi = np.repeat(self.hi_in, n, 0)
        for i, box in enumerate(boxes):
            if box is not None:
                blo[i], bhi[i] = box
        tlo, thi = _tighten_boxes(torch.as_tensor(blo, device=device),
                                  torch.as_tensor(bhi, device=device), domains, self.affine)
        empty = (tlo > thi).any(1).cpu()
        tlo = torch.where(empty[:, None].to(tlo.device), torch.as_tensor(blo, device=device), tlo)
        thi = torch.where(empty[:, None].to(thi.device), torch.as_tensor(bhi, device=device), thi)
        blo, bhi = tlo.cpu().numpy(), thi.cpu().numpy()
        warm = self.warm.batch(batch.warm, self.C.shape[0]) if self.warm is not None else None
        with warm_start(warm):
            res = compute_bounds(self.graph, blo, bhi, self.C, self.d,
                                 config=self.bconfig, restrictions=restr or None,
                                 bound_upper=False, device=device, known=known)
        restr = with_root(restr, self.root_restr, n)   # what FSB and the hand-off read
        stats.domains_bounded += n
        stats.batches += 1
        infeasible = res.infeasible.cpu() | empty
        margin = disjunct_margins(res.lower, self.groups).cpu()
        if stats.batches == 1 and n == 1 and not (margin > 0).all() and not infeasible.all():
            res, margin, restr = refine_and_rebound(self, res, margin, restr)
            infeasible = res.infeasible.cpu() | empty
        proven = (margin > 0) & ~infeasible
        stats.infeasible += int(infeasible.sum())
        stats.proven_domains += int(proven.sum())
        open_idx = torch.nonzero(~(margin > 0) & ~infeasible).reshape(-1)
        if open_idx.numel() == 0:
            return None
        record = self.warm.keep(warm, open_idx) if self.warm is not None else None
        refs = {} if record is None else {i: (record, j)
                                          for j, i in enumerate(open_idx.tolist())}
        # the critical row of each open domain: best row of its worst disjunct
        low = res.lower.cpu()
        per_dj = torch.stack([low[:, g].max(dim=1).values for g in self.groups], 1)
        worst = per_dj.argmin(dim=1)
        row_in_g = torch.stack([low[:, g].argmax(dim=1) + g.start for g in self.groups], 1)
        crit = row_in_g.gather(1, worst[:, None])[:, 0]
        sens = None
        if self.use_sens:
            try:
                with torch.no_grad():
                    sens = _sensitivities(self.plan, res.intervals,
                                          self.C_t[crit.to(self.C_t.device)], self.cands)
            except Exception:  # heuristic only: fall back to the gap alone
                sens = None
            if sens is None:
                self.use_sens = False
        return _Bounded(domains, boxes, batch.parents, blo, bhi, restr, res, margin, open_idx,
                        sens, refs)

    def candidates(self, b: _Bounded) -> np.ndarray | None:
        """Every ``probe_every`` batches (and on the first): PGD in the boxes of the
        lowest-margin open domains, from the box centre and from the corner minimizing
        the critical row's linear bound; every start's best point, lowest margin first."""
        config = self.config
        if config.probe_every <= 0 or (self.stats.batches - 1) % config.probe_every != 0:
            return None
        t0 = time.monotonic()
        idx = b.open_idx
        pick = idx[torch.argsort(b.margin[idx])[:config.probe_domains]]
        lo = torch.as_tensor(b.blo[pick.numpy()])
        hi = torch.as_tensor(b.bhi[pick.numpy()])
        starts = [(lo + hi) / 2]
        sens = b.sens
        if sens is not None and SIGNED_INPUT in sens:
            coef = sens[SIGNED_INPUT][pick.to(sens[SIGNED_INPUT].device)].cpu().double()
            starts.append(torch.where(coef > 0, lo, hi))  # minimizes the linear bound
        k = len(starts)
        sub = {name: (rl[pick.to(rl.device)].cpu().reshape(len(pick), -1).repeat(k, 1),
                      ru[pick.to(ru.device)].cpu().reshape(len(pick), -1).repeat(k, 1))
               for name, (rl, ru) in b.restr.items()}
        x, m = _domain_attack(self.graph, lo.repeat(k, 1), hi.repeat(k, 1), torch.cat(starts),
                              self.C64, self.d64, self.groups, config.attack_steps, sub)
        self.stats.attacks += 1
        self.stats.attack_s += time.monotonic() - t0
        return x[torch.argsort(m)].numpy()

    def branch(self, b: _Bounded) -> None:
        """Split each open domain on its chosen neuron; with none left, on its input box;
        count it stuck when even the box cannot be split.  The domains the hand-off takes
        (:meth:`hybridver.bab.subdomain_handoff.SubdomainHandOff.take`) are not split."""
        stats, plan = self.stats, self.plan
        blo, bhi, margin, sens = b.blo, b.bhi, b.margin, b.sens
        if self.config.branching == "fsb":
            ci, fi, pt = fsb_choose(self.graph, plan, self.cands, b, sens, self.C, self.d,
                                    self.groups, self.bconfig, self.config.fsb_candidates,
                                    self.config.min_width, self.device)
        else:
            ci, fi, pt = _choose_splits(plan, b.res.intervals, self.cands, sens,
                                        len(b.domains), self.config.min_width)
        taken = self.hand_off.take(self, b) if self.hand_off is not None else set()
        for i in b.open_idx.tolist():
            if i in taken:
                continue
            parent = b.domains[i]
            if int(ci[i]) < 0:
                # nothing left to split among the neurons (all stable on the domain's
                # intervals, yet the bound is not positive): split the input box instead,
                # along the dimension with the largest |lambda| * width
                width = bhi[i] - blo[i]
                score = width.copy()
                if sens is not None and plan.input in sens:
                    score = width * (sens[plan.input][i].to(torch.float64).cpu().numpy() + 1e-12)
                score[width <= 0] = -1.0
                dim = int(np.argmax(score))
                if width[dim] <= 0 or not (blo[i][dim] < (blo[i][dim] + bhi[i][dim]) / 2
                                           < bhi[i][dim]):
                    stats.stuck += 1
                    continue
                stats.input_splits += 1
                mid = (blo[i][dim] + bhi[i][dim]) / 2
                left_hi, right_lo = bhi[i].copy(), blo[i].copy()
                left_hi[dim] = mid
                right_lo[dim] = mid
                for box in ((blo[i].copy(), left_hi), (right_lo, bhi[i].copy())):
                    self.counter += 1
                    heapq.heappush(self.queue, (float(margin[i]), self.counter, parent, box,
                                                b.warm.get(i)))
                continue
            c, f, p = int(ci[i]), int(fi[i]), float(pt[i])
            stats.max_depth = max(stats.max_depth, len(parent) + 1)
            for side in (True, False):
                self.counter += 1
                heapq.heappush(self.queue, (float(margin[i]), self.counter,
                                            parent + ((c, f, side, p),), b.boxes[i],
                                            b.warm.get(i)))


def activation_split_bab(graph, lower: np.ndarray, upper: np.ndarray, C: np.ndarray,
                         d: np.ndarray, groups: Sequence[slice], deadline: float,
                         probe: ProbeFn | None = None,
                         config: ActivationSplitConfig = ActivationSplitConfig(),
                         device: str | torch.device = "cpu",
                         progress: ProgressFn | None = None,
                         stop: StopFn | None = None, hand_off=None) -> SearchOutcome:
    """Prove ``C y + d`` (disjuncts ``groups``, each refuted when one of its rows has a
    positive lower bound) on the box ``[lower, upper]`` by splitting neurons, or find a
    counterexample.

    Status (:class:`~hybridver.bab_core.SearchStatus`): PROVEN (every domain proven or
    infeasible), COUNTEREXAMPLE (``probe`` confirmed a point: ``counterexample_point
    (n_in,)``, flat, inside ``[lower, upper]``), TIMEOUT (``deadline``, a
    ``time.monotonic()`` value), EXHAUSTED (``config.max_domains`` reached, or a domain
    left open with no neuron to split), or STOPPED (``stop()``, asked before every batch,
    returned True).
    ``probe(points (K, n_in)) -> index of a confirmed counterexample or None``: the caller
    checks candidates on the real model; without it no attack runs and the search never
    claims a counterexample.  The candidates come from short PGD runs inside the input
    boxes of the hardest open domains (``config.probe_every``), started at the corner
    minimizing the domain's critical row's linear bound and at the box centre.
    ``hand_off``: a :class:`~hybridver.bab.subdomain_handoff.SubdomainHandOff` (or None):
    open domains it takes go to exact back ends instead of being split.
    """
    strategy = ActivationSplitting(graph, lower, upper, C, d, groups, deadline, config, device,
                                    hand_off)
    return run_search(strategy, SearchLimits(deadline, config.max_domains, stop), probe,
                      progress)
