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
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from hybridver.bab.input_split import InputSplitOutcome, ProbeFn, ProgressFn, disjunct_margins
from hybridver.bounds.engine import compute_bounds
from hybridver.bounds.options import AlphaConfig, BoundConfig, BoundMethod
from hybridver.bounds.plan import NodeKind, get_plan
from hybridver.bounds.sensitivity import branching_sensitivities
from hybridver.ir.evaluate import evaluate_all
from hybridver.ir.ops import OpKind
from hybridver.numerics import REL_SLACK, TINY, U64

Tensor = torch.Tensor


#: alpha/beta optimization per batch of domains: short, as BaB bounds many batches
BAB_ALPHA = AlphaConfig(iterations=20, lr=0.3, lr_decay=0.95, patience=3, beta_lr=0.3)


@dataclasses.dataclass(frozen=True)
class ActivationSplitConfig:
    """Settings of :func:`activation_split_bab`.

    ``method``: the bound method per batch; None (default) picks ``alpha-beta-crown`` when
    every splittable nonlinearity is piecewise linear (ReLU-like: a split makes the neuron
    exactly linear, and the split constraint's multiplier is what turns that into
    progress), else ``crown``.  ``alpha``: the optimization of the optimized methods.
    Counterexample search (only with a ``probe``): every ``probe_every`` batches (and on
    the first), the ``probe_domains`` open domains with the lowest margin are attacked by
    ``attack_steps`` signed-gradient steps inside their input box; ``probe_every=0`` never.
    """

    batch_size: int = 256          # domains per compute_bounds call
    max_domains: int = 2_000_000   # domains bounded before giving up ("exhausted")
    method: BoundMethod | None = None
    min_width: float = 1e-9        # smooth neurons narrower than this are not split
    alpha: AlphaConfig = BAB_ALPHA
    probe_every: int = 4
    probe_domains: int = 8
    attack_steps: int = 12

    def bound_method(self, plan, cands: "list[_Candidate]") -> BoundMethod:
        if self.method is not None:
            return BoundMethod(self.method)
        linear_pieces = all(plan.relaxations[c.act].traits.piecewise_linear for c in cands)
        return BoundMethod.ALPHA_BETA_CROWN if cands and linear_pieces else BoundMethod.CROWN


@dataclasses.dataclass(frozen=True)
class _Candidate:
    """A splittable nonlinear node: ``act`` (the nonlinearity) reading pre-activation
    ``pre``."""

    act: str
    pre: str
    size: int
    shape: tuple[int, ...]


#: one split decision: (candidate index, flat neuron index, is_upper, point)
#: ``is_upper``: the decision sets the restriction's upper end (``hi := point``).
Decision = tuple[int, int, bool, float]


def _candidates(graph, plan) -> list[_Candidate]:
    out, seen = [], set()
    for name in plan.order:
        if plan.kind.get(name) is not NodeKind.UNARY:
            continue
        pre = plan.graph.node(name).inputs[0]
        if pre not in plan.pre_activations or pre not in graph or pre in seen:
            continue  # an input node, or a node created by decomposition
        seen.add(pre)
        node = plan.graph.node(pre)
        out.append(_Candidate(name, pre, node.size, tuple(node.shape)))
    return out


def _affine_rows(graph, cands: list[_Candidate]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Candidates whose pre-activation is an affine function of the input: a LINEAR node
    reading the input through size-preserving reshapes only (row-major, so the flat
    order is kept), with all leading dimensions 1.  Candidate index -> (W (out, n_in),
    b (out,)): neuron ``f`` is ``W[f] @ x_flat + b[f]``."""
    out = {}
    n_in = graph.input_node.size
    for ci, cand in enumerate(cands):
        node = graph.node(cand.pre)
        if node.op is not OpKind.LINEAR or any(s != 1 for s in node.shape[:-1]):
            continue
        src = graph.node(node.inputs[0])
        while src.op is OpKind.RESHAPE and src.size == n_in:
            src = graph.node(src.inputs[0])
        weight = np.asarray(node.consts["weight"], dtype=np.float64)
        if src.op is not OpKind.INPUT or weight.shape[1] != n_in:
            continue
        bias = node.consts.get("bias")
        bias = np.zeros(weight.shape[0]) if bias is None else np.asarray(bias, np.float64)
        out[ci] = (weight, bias)
    return out


def _tighten_boxes(lo: Tensor, hi: Tensor, domains: list[tuple[Decision, ...]],
                   affine: dict[int, tuple[Tensor, Tensor]], passes: int = 2
                   ) -> tuple[Tensor, Tensor]:
    """Shrink each domain's input box ``(N, n_in)`` with its decisions on affine neurons
    (``w @ x + b <= p`` or ``>= p``): bound propagation, one input dimension at a time,
    rounded outward.  Sound: every input of the box satisfying the decisions stays in the
    shrunk box (an empty box, lower > upper, means no input satisfies them)."""
    rows = [[(ci, f, up, p) for ci, f, up, p in dec if ci in affine] for dec in domains]
    k = max((len(r) for r in rows), default=0)
    if k == 0:
        return lo, hi
    n, n_in = lo.shape
    A = torch.zeros((n, k, n_in), dtype=torch.float64, device=lo.device)
    c = torch.full((n, k), np.inf, dtype=torch.float64, device=lo.device)
    for i, r in enumerate(rows):
        for j, (ci, f, up, p) in enumerate(r):
            w, b = affine[ci]
            sign = 1.0 if up else -1.0      # A x <= c:  sign * (w x + b) <= sign * p
            A[i, j] = sign * w[f]
            c[i, j] = sign * (p - float(b[f]))
    tol = 4 * (n_in + 4) * U64
    for _ in range(passes):
        low_terms = torch.minimum(A * lo[:, None], A * hi[:, None])        # (N, K, n_in)
        total = low_terms.sum(-1, keepdim=True)
        mag = (A.abs() * torch.maximum(lo.abs(), hi.abs())[:, None]).sum(-1, keepdim=True)
        slack = c[..., None] - (total - low_terms) + tol * (mag + c.abs()[..., None]) + TINY
        bound = slack / A                                                  # x_j on one side
        bound = bound + (bound.abs() * REL_SLACK + TINY) * torch.sign(A)    # widen outward
        pos, neg = A > 0, A < 0
        inf = torch.full_like(bound, np.inf)
        new_hi = torch.where(pos, bound, inf).amin(1)
        new_lo = torch.where(neg, bound, -inf).amax(1)
        lo, hi = torch.maximum(lo, new_lo.nan_to_num(nan=-np.inf)), \
            torch.minimum(hi, new_hi.nan_to_num(nan=np.inf))
    return lo, hi


def _restrictions(cands: list[_Candidate], domains: list[tuple[Decision, ...]],
                  device) -> dict[str, tuple[Tensor, Tensor]]:
    """Restriction tensors ``(N, *shape)`` rebuilt from each domain's decisions."""
    n = len(domains)
    per = [([], [], [], []) for _ in cands]  # rows, flat, value, is_upper
    for row, decisions in enumerate(domains):
        for ci, flat, upper, point in decisions:
            rows, flats, vals, ups = per[ci]
            rows.append(row)
            flats.append(flat)
            vals.append(point)
            ups.append(upper)
    out = {}
    for cand, (rows, flats, vals, ups) in zip(cands, per):
        if not rows:
            continue
        lo = torch.full((n, cand.size), -np.inf, dtype=torch.float64, device=device)
        hi = torch.full((n, cand.size), np.inf, dtype=torch.float64, device=device)
        r = torch.as_tensor(rows, device=device)
        f = torch.as_tensor(flats, device=device)
        v = torch.as_tensor(vals, dtype=torch.float64, device=device)
        u = torch.as_tensor(ups, device=device)
        idx = r * cand.size + f
        # decisions along a path are nested, but reduce anyway (tightest wins)
        hi.view(-1).scatter_reduce_(0, idx[u], v[u], reduce="amin")
        lo.view(-1).scatter_reduce_(0, idx[~u], v[~u], reduce="amax")
        out[cand.pre] = (lo.reshape(n, *cand.shape), hi.reshape(n, *cand.shape))
    return out


def _sensitivities(plan, intervals, rows_C: Tensor, cands: list[_Candidate]
                   ) -> dict[str, Tensor] | None:
    """``|lambda|`` ``(N, size)`` at each candidate's nonlinear output and at the input,
    from one backward walk of ``rows_C (N, n_out)`` with the slopes of the relaxations on
    the domains' intervals (:func:`hybridver.bounds.sensitivity.branching_sensitivities`);
    the signed input coefficients under the key :data:`SIGNED_INPUT`.  None when a node
    kind on the way has no backward rule there."""
    sens = branching_sensitivities(plan, intervals, rows_C, [c.act for c in cands])
    if sens is None:
        return None
    found = dict(sens.magnitudes)
    if sens.signed_input is not None:
        found[SIGNED_INPUT] = sens.signed_input
    return found


#: key of the signed input coefficients in :func:`_sensitivities`' answer
SIGNED_INPUT = "<signed input>"


def _choose_splits(plan, intervals, cands, sens, n: int, min_width: float
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """Per domain ``(candidate index, flat index, point)``; candidate index -1 where no
    neuron can be split."""
    best_score = torch.full((n,), -1.0, dtype=torch.float64)
    best_c = torch.full((n,), -1, dtype=torch.long)
    best_f = torch.zeros(n, dtype=torch.long)
    best_p = torch.zeros(n, dtype=torch.float64)
    for ci, cand in enumerate(cands):
        relax = plan.relaxations[cand.act]
        attrs = plan.attrs[cand.act]
        itv = intervals[cand.pre]
        lo = itv.lower.reshape(n, -1).to(torch.float64)
        hi = itv.upper.reshape(n, -1).to(torch.float64)
        finite = torch.isfinite(lo) & torch.isfinite(hi) & (hi - lo > min_width)
        safe_lo = torch.where(finite, lo, torch.zeros_like(lo))
        safe_hi = torch.where(finite, hi, torch.ones_like(hi))
        point = relax.branch_point(safe_lo, safe_hi, attrs)
        ok = finite & (safe_lo < point) & (point < safe_hi)
        bps = relax.traits.breakpoints
        if relax.traits.piecewise_linear and bps:
            crosses = torch.zeros_like(ok)
            for b in bps:
                crosses |= (safe_lo < b) & (b < safe_hi)
            ok &= crosses
        lb = relax.bounds(safe_lo, safe_hi, attrs)
        gap = (lb.upper_slope - lb.lower_slope) * point + (lb.upper_bias - lb.lower_bias)
        gap = torch.broadcast_to(gap, lo.shape)
        gap = torch.nan_to_num(gap, nan=0.0, posinf=0.0, neginf=0.0).clamp(min=0)
        # a tiny width term breaks ties among zero-gap (e.g. zero-sensitivity) neurons
        score = gap + 1e-12 * (safe_hi - safe_lo)
        if sens is not None and cand.act in sens:
            score = score * (sens[cand.act].to(torch.float64).cpu() + 1e-9)
        score = torch.where(ok.cpu(), score.cpu(), torch.full_like(score.cpu(), -1.0))
        val, arg = score.max(dim=1)
        better = val > best_score
        best_score = torch.where(better, val, best_score)
        best_c = torch.where(better, torch.full_like(best_c, ci), best_c)
        best_f = torch.where(better, arg, best_f)
        best_p = torch.where(better, point.cpu().gather(1, arg[:, None])[:, 0], best_p)
    best_c = torch.where(best_score > 0, best_c, torch.full_like(best_c, -1))
    return best_c, best_f, best_p


def _attack_margin(y: Tensor, C: Tensor, d: Tensor, groups: Sequence[slice]) -> Tensor:
    """Violation margin ``(K,)`` of outputs ``y (K, n_out)``: min over disjuncts of max
    over their rows of ``C y + d``; <= 0 means the point violates the property."""
    rows = y @ C.T + d
    return torch.stack([rows[:, g].max(dim=1).values for g in groups], 1).min(dim=1).values


def _domain_attack(graph, lo: Tensor, hi: Tensor, starts: Tensor, C: Tensor, d: Tensor,
                   groups: Sequence[slice], steps: int,
                   restrictions: dict[str, tuple[Tensor, Tensor]] | None = None
                   ) -> tuple[Tensor, Tensor]:
    """Signed-gradient descent from ``starts (K, n_in)``, each kept inside its box
    ``[lo, hi] (K, n_in)``, of the violation margin plus the violation of the domain's
    decisions (``restrictions``: node -> ``(lo, hi) (K, *shape)``, +-inf where free): the
    decisions pull the point into the domain's region, where the bounds say a violation
    may hide, even where the margin is flat.  Steps shrink geometrically from a quarter
    of the box width.  float64 IR evaluation: a guide only.  Returns the best point of each
    start (lowest margin) and its margin."""
    shape = graph.input_node.shape
    width = hi - lo
    x = torch.minimum(torch.maximum(starts, lo), hi)
    best_x, best_m = x.clone(), torch.full((len(x),), np.inf, dtype=torch.float64)
    names = [k for k in (restrictions or {}) if k in graph]
    for step in range(steps + 1):
        last = step == steps
        x = x.detach().requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            values = evaluate_all(graph, x.reshape(-1, *shape), dtype=torch.float64)
            y = values[graph.output_node.name].reshape(len(x), -1)
            margin = _attack_margin(y, C, d, groups)
            objective = margin
            for name in names:
                rl, ru = restrictions[name]
                z = values[name].reshape(len(x), -1)
                gap = (torch.where(torch.isfinite(rl), rl - z, 0.0).clamp(min=0)
                       + torch.where(torch.isfinite(ru), z - ru, 0.0).clamp(min=0))
                objective = objective + gap.sum(1)
        better = margin.detach() < best_m
        best_x = torch.where(better[:, None], x.detach(), best_x)
        best_m = torch.where(better, margin.detach(), best_m)
        if last or bool((best_m <= 0).any()):
            break
        (grad,) = torch.autograd.grad(objective.sum(), x)
        size = 0.25 * 0.6 ** step
        x = torch.minimum(torch.maximum(x - size * width * grad.sign(), lo), hi)
    return best_x, best_m


def activation_split_bab(graph, lower: np.ndarray, upper: np.ndarray, C: np.ndarray,
                         d: np.ndarray, groups: Sequence[slice], deadline: float,
                         probe: ProbeFn | None = None,
                         config: ActivationSplitConfig = ActivationSplitConfig(),
                         device: str | torch.device = "cpu",
                         progress: ProgressFn | None = None,
                         stop: Callable[[], bool] | None = None) -> InputSplitOutcome:
    """Prove ``C y + d`` (disjuncts ``groups``, each refuted when one of its rows has a
    positive lower bound) on the box ``[lower, upper]`` by splitting neurons, or find a
    counterexample.

    Status: "proven" (every domain proven or infeasible), "counterexample" (``probe``
    confirmed a point: ``counterexample_point (n_in,)``, flat, inside ``[lower, upper]``),
    "timeout" (``deadline``, a ``time.monotonic()`` value), "exhausted"
    (``config.max_domains`` reached, or a domain left open with no neuron to split), or
    "stopped" (``stop()``, asked before every batch, returned True).
    ``probe(points (K, n_in)) -> index of a confirmed counterexample or None``: the caller
    checks candidates on the real model; without it no attack runs and the search never
    claims a counterexample.  The candidates come from short PGD runs inside the input
    boxes of the hardest open domains (``config.probe_every``), started at the corner
    minimizing the domain's critical row's linear bound and at the box centre.
    """
    start = time.monotonic()
    stats = {"domains_bounded": 0, "batches": 0, "max_queue": 0, "infeasible": 0,
             "proven_domains": 0, "stuck": 0, "max_depth": 0, "input_splits": 0,
             "probes": 0, "attacks": 0, "attack_s": 0.0}
    bconfig = BoundConfig(alpha=dataclasses.replace(config.alpha, deadline=deadline))
    plan = get_plan(graph, bconfig.torch_dtype, torch.device(device))
    cands = _candidates(graph, plan)
    method = config.bound_method(plan, cands)
    bconfig = dataclasses.replace(bconfig, method=method)
    stats["method"] = method.value
    affine = {ci: (torch.as_tensor(w, device=device), b)
              for ci, (w, b) in _affine_rows(graph, cands).items()}
    lo_in = np.asarray(lower, dtype=np.float64).reshape(1, -1)
    hi_in = np.asarray(upper, dtype=np.float64).reshape(1, -1)
    C = np.asarray(C, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    C_t = torch.as_tensor(C, device=device)
    C64, d64 = torch.as_tensor(C), torch.as_tensor(d)
    #: (margin, tie-break, decisions, input box or None for the case's whole box)
    queue: list[tuple[float, int, tuple[Decision, ...], tuple | None]] = []
    counter = 0
    use_sens = True

    def attack(blo: np.ndarray, bhi: np.ndarray, idx: Tensor, margin: Tensor, sens, restr
               ) -> InputSplitOutcome | None:
        """PGD in the boxes of the lowest-margin open domains; candidates to ``probe``."""
        t0 = time.monotonic()
        pick = idx[torch.argsort(margin[idx])[:config.probe_domains]]
        lo = torch.as_tensor(blo[pick.numpy()])
        hi = torch.as_tensor(bhi[pick.numpy()])
        starts = [(lo + hi) / 2]
        if sens is not None and SIGNED_INPUT in sens:
            coef = sens[SIGNED_INPUT][pick.to(sens[SIGNED_INPUT].device)].cpu().double()
            starts.append(torch.where(coef > 0, lo, hi))  # minimizes the linear bound
        k = len(starts)
        sub = {name: (rl[pick.to(rl.device)].cpu().reshape(len(pick), -1).repeat(k, 1),
                      ru[pick.to(ru.device)].cpu().reshape(len(pick), -1).repeat(k, 1))
               for name, (rl, ru) in restr.items()}
        x, m = _domain_attack(graph, lo.repeat(k, 1), hi.repeat(k, 1), torch.cat(starts),
                              C64, d64, groups, config.attack_steps, sub)
        stats["attacks"] += 1
        points = x[torch.argsort(m)].numpy()  # every start's best point, lowest margin first
        stats["probes"] += len(points)
        hit = probe(points)
        stats["attack_s"] += time.monotonic() - t0
        if hit is not None:
            return InputSplitOutcome("counterexample", counterexample_index=None,
                                     counterexample_point=points[hit], stats=stats)
        return None

    def bound(domains: list[tuple[Decision, ...]], boxes: list[tuple | None]
              ) -> InputSplitOutcome | None:
        nonlocal counter, use_sens
        n = len(domains)
        restr = _restrictions(cands, domains, device)
        blo = np.repeat(lo_in, n, 0)
        bhi = np.repeat(hi_in, n, 0)
        for i, box in enumerate(boxes):
            if box is not None:
                blo[i], bhi[i] = box
        tlo, thi = _tighten_boxes(torch.as_tensor(blo, device=device),
                                  torch.as_tensor(bhi, device=device), domains, affine)
        empty = (tlo > thi).any(1).cpu()
        tlo = torch.where(empty[:, None].to(tlo.device), torch.as_tensor(blo, device=device), tlo)
        thi = torch.where(empty[:, None].to(thi.device), torch.as_tensor(bhi, device=device), thi)
        blo, bhi = tlo.cpu().numpy(), thi.cpu().numpy()
        res = compute_bounds(graph, blo, bhi, C, d,
                             config=bconfig, restrictions=restr or None,
                             bound_upper=False, device=device)
        stats["domains_bounded"] += n
        stats["batches"] += 1
        infeasible = res.infeasible.cpu() | empty
        margin = disjunct_margins(res.lower, groups).cpu()
        proven = (margin > 0) & ~infeasible
        stats["infeasible"] += int(infeasible.sum())
        stats["proven_domains"] += int(proven.sum())
        open_idx = torch.nonzero(~(margin > 0) & ~infeasible).reshape(-1)
        if open_idx.numel() == 0:
            return None
        # the critical row of each open domain: best row of its worst disjunct
        low = res.lower.cpu()
        per_dj = torch.stack([low[:, g].max(dim=1).values for g in groups], 1)
        worst = per_dj.argmin(dim=1)
        row_in_g = torch.stack([low[:, g].argmax(dim=1) + g.start for g in groups], 1)
        crit = row_in_g.gather(1, worst[:, None])[:, 0]
        sens = None
        if use_sens:
            try:
                with torch.no_grad():
                    sens = _sensitivities(plan, res.intervals, C_t[crit.to(C_t.device)], cands)
            except Exception:  # heuristic only: fall back to the gap alone
                sens = None
            if sens is None:
                use_sens = False
        if probe is not None and config.probe_every > 0 \
                and (stats["batches"] - 1) % config.probe_every == 0:
            found = attack(blo, bhi, open_idx, margin, sens, restr)
            if found is not None:
                return found
        ci, fi, pt = _choose_splits(plan, res.intervals, cands, sens, n, config.min_width)
        for i in open_idx.tolist():
            parent = domains[i]
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
                    stats["stuck"] += 1
                    continue
                stats["input_splits"] += 1
                mid = (blo[i][dim] + bhi[i][dim]) / 2
                left_hi, right_lo = bhi[i].copy(), blo[i].copy()
                left_hi[dim] = mid
                right_lo[dim] = mid
                for box in ((blo[i].copy(), left_hi), (right_lo, bhi[i].copy())):
                    counter += 1
                    heapq.heappush(queue, (float(margin[i]), counter, parent, box))
                continue
            c, f, p = int(ci[i]), int(fi[i]), float(pt[i])
            stats["max_depth"] = max(stats["max_depth"], len(parent) + 1)
            for side in (True, False):
                counter += 1
                heapq.heappush(queue, (float(margin[i]), counter,
                                       parent + ((c, f, side, p),), boxes[i]))
        return None

    found = bound([()], [None])
    if found is not None:
        return _finish(found, start)
    while queue:
        stats["max_queue"] = max(stats["max_queue"], len(queue))
        if time.monotonic() > deadline:
            return _finish(InputSplitOutcome("timeout", stats=stats), start)
        if stop is not None and stop():   # the caller decided the case another way
            return _finish(InputSplitOutcome("stopped", stats=stats), start)
        if stats["domains_bounded"] >= config.max_domains:
            return _finish(InputSplitOutcome("exhausted", stats=stats), start)
        take = [heapq.heappop(queue) for _ in range(min(config.batch_size, len(queue)))]
        found = bound([t[2] for t in take], [t[3] for t in take])
        if found is not None:
            return _finish(found, start)
        if progress is not None:
            progress({**stats, "open": len(queue),
                      "best_margin": queue[0][0] if queue else float("inf")})
        if stats["stuck"]:  # an open domain with nothing left to split: cannot prove it
            return _finish(InputSplitOutcome("exhausted", stats=stats), start)
    status = "exhausted" if stats["stuck"] else "proven"
    return _finish(InputSplitOutcome(status, stats=stats), start)


def _finish(outcome: InputSplitOutcome, start: float) -> InputSplitOutcome:
    elapsed = time.monotonic() - start
    outcome.stats["time_s"] = elapsed
    outcome.stats["domains_per_s"] = outcome.stats["domains_bounded"] / max(elapsed, 1e-9)
    return outcome
