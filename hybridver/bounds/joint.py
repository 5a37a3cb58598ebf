"""Joint alpha-CROWN: the intermediate bounds are optimized too, for the final bound.

Plain alpha-CROWN (:mod:`hybridver.bounds.alpha`) keeps the CROWN intermediate bounds and
optimizes only the final pass.  Here every backward pass from a pre-activation ``p`` gets
its own relaxation parameters for every optimizable node ``v`` before it:
``(2 k_p, N, *v.shape)``, one set per tightened neuron bound (the ``k_p`` neurons CROWN
tightened, lower and upper).  One iteration rebuilds the whole state with them
(:func:`~hybridver.bounds.intermediate.build_state` with
:class:`~hybridver.bounds.intermediate.IntermediateAlphas`), differentiably, runs the final
pass with the final alphas, and one Adam step moves all parameters to raise the sum of the
final rows' lower bounds (the intermediate parameters are judged by what they do to the
final bound, not to their own neuron's bound).

* Soundness: with any parameters in ``[0, 1]`` each intermediate pass is a sound CROWN
  pass (relaxation contract, rounding accounted for by :mod:`hybridver.bounds.crown`) and
  its interval is intersected with the CROWN one (both sound); the final pass over sound
  intervals is sound; the best over iterations starts at the CROWN bound.
* Initialization: every set starts at the parameters plain alpha-CROWN starts from
  (:func:`~hybridver.bounds.alpha.initial_alphas` on the CROWN state).
* Cost: one iteration costs about one full CROWN computation plus its gradient; with more
  parameter entries than fit ``memory_limit_bytes`` (estimated) it is not attempted and
  plain alpha-CROWN runs instead (``stats["joint"] = False``).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from hybridver.bounds import alpha as alpha_mod
from hybridver.bounds.backward import check_deadline
from hybridver.bounds.crown import backward
from hybridver.bounds.intermediate import IntermediateAlphas, build_state
from hybridver.bounds.intervals import Interval
from hybridver.bounds.state import BoundState

Tensor = torch.Tensor


def _parameter_sets(state: BoundState, final_names: list[str]
                    ) -> dict[str, dict[str, tuple[Tensor, Tensor]]]:
    """Initial intermediate parameters per tightened pre-activation (not yet leaves)."""
    plan = state.plan
    init: dict[str, tuple[Tensor, Tensor]] = {}
    out: dict[str, dict[str, tuple[Tensor, Tensor]]] = {}
    optimizable = set(final_names)
    for p, (rows, _) in state.tightened.items():
        k2 = 2 * rows.numel()
        sets = {}
        for v in plan.cone(p):
            if v == p or v not in optimizable:
                continue
            if v not in init:
                init[v] = alpha_mod.initial_alphas(state, v)
            al, au = init[v]
            sets[v] = (al.expand(k2, *al.shape[1:]).clone(), au.expand(k2, *au.shape[1:]).clone())
        if sets:
            out[p] = sets
    return out


def _entries(sets: dict[str, dict[str, tuple[Tensor, Tensor]]]) -> int:
    return sum(2 * al.numel() for per in sets.values() for al, _ in per.values())


def optimize(state: BoundState, lam: Tensor, beta: Tensor | None, crown_lower: Tensor,
             restrictions: dict[str, tuple[Tensor, Tensor]]) -> tuple[Tensor, dict[str, Any]]:
    """Best sound lower bounds ``(m, N)`` of ``<lam, output> + beta`` with jointly optimized
    intermediate and final parameters (module docstring).

    ``state``: the CROWN state (its intervals and tightened rows are the reference);
    ``lam: (m, N, *output.shape)``, ``beta: (m, N)`` as for
    :func:`~hybridver.bounds.crown.backward`; ``crown_lower``: CROWN's bound of these rows;
    ``restrictions``: those the state was built with.  ``state.config.alpha`` sets the
    iterations, learning rate, decay, patience and deadline as for plain alpha-CROWN.
    """
    plan, config = state.plan, state.config
    opts = config.alpha
    final_names = alpha_mod.optimizable_nodes(state, plan.output)
    stats: dict[str, Any] = {"iterations": 0, "optimized_nodes": len(final_names),
                             "split_nodes": 0, "joint": True}
    if not final_names or opts.iterations == 0 or (
            opts.stop_when_proven and bool((crown_lower > 0).all())):
        return crown_lower, stats
    sets = _parameter_sets(state, final_names)
    m = lam.shape[0]
    item = torch.finfo(state.dtype).bits // 8
    # parameters, their Adam moments and gradients, and the relaxations built from them
    if 8 * item * (_entries(sets) + 2 * m * sum(
            state.n * plan.graph.node(v).size for v in final_names)) > config.memory_limit_bytes:
        best, info = alpha_mod.optimize(state, plan.output, lam, beta, crown_lower, opts)
        return best, {**info, "joint": False}
    final: dict[str, tuple[Tensor, Tensor]] = {}
    for v in final_names:
        al, au = alpha_mod.initial_alphas(state, v)
        final[v] = (al.expand(m, *al.shape[1:]).clone(), au.expand(m, *au.shape[1:]).clone())
    inner = [t for per in sets.values() for pair in per.values() for t in pair]
    outer = [(list(final[v]), lr) for v, lr in zip(
        final_names, alpha_mod.learning_rates(state, final_names, opts))]
    params = inner + [t for pair in final.values() for t in pair]
    for t in params:
        t.requires_grad_(True)
    optimizer = alpha_mod._Adam([(inner, opts.intermediate_lr), *outer])
    box = state.intervals[plan.input]
    floor = {p: state.intervals[p] for p in state.tightened}
    best = crown_lower.detach().clone()
    stale = 0
    for it in range(opts.iterations):
        check_deadline(config.deadline)
        with torch.enable_grad():
            current = build_state(plan, config, box.lower, box.upper, restrictions, True,
                                  IntermediateAlphas(sets, state.tightened, floor,
                                                     opts.crown_gradient))
            overrides = {v: current.relax(v, al, au) for v, (al, au) in final.items()}
            lower = backward(current, plan.output, lam, beta, overrides)
        stats["iterations"] = it + 1
        if not bool(current.infeasible.any()):  # the best intervals so far (all sound)
            floor = {p: Interval(torch.maximum(iv.lower, current.intervals[p].lower.detach()),
                                 torch.minimum(iv.upper, current.intervals[p].upper.detach()))
                     for p, iv in floor.items()}
        value = lower.detach()
        usable = torch.isfinite(value) & ~current.infeasible[None, :]
        new_best = torch.where(usable, torch.maximum(best, value), best)
        gain = float((new_best - best).sum())
        best = new_best
        if opts.stop_when_proven and bool((best > 0).all()):
            break
        finite = torch.isfinite(best)
        scale = float(best[finite].abs().sum()) if bool(finite.any()) else 0.0
        stale = stale + 1 if gain <= opts.tolerance * (scale + 1.0) else 0
        if opts.patience and stale >= opts.patience:
            break
        if it == opts.iterations - 1 or not bool(usable.any()):
            break
        if opts.deadline is not None and time.monotonic() > opts.deadline:
            break
        grads = torch.autograd.grad(-lower[usable].sum(), params, allow_unused=True)
        optimizer.step(list(grads))
        with torch.no_grad():
            for t in params:
                t.nan_to_num_(0.5).clamp_(0.0, 1.0)
        optimizer.decay(opts.lr_decay)
    return best, stats
