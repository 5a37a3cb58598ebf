"""Intervals of every node of one bound computation (IBP, then CROWN at pre-activations).

:func:`build_state` walks the graph forward once: interval bounds per node
(:mod:`hybridver.bounds.intervals`), intersected with the caller's restrictions, and, for
the linear methods, the error weights and relaxations of the backward pass; where the
intermediate method is CROWN, every pre-activation's interval is tightened by backward
passes from it (:func:`hybridver.bounds.crown.backward`) before the nodes that read it
are relaxed.  The deadline (``BoundConfig.deadline``) is checked at every node.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch

from hybridver.bounds.backward import check_deadline
from hybridver.bounds.crown import backward
from hybridver.bounds.intervals import RULES, Interval, UnsupportedBoundError
from hybridver.bounds.options import BoundConfig, IntermediateMethod
from hybridver.bounds.plan import GraphPlan, NodeKind
from hybridver.bounds.state import BoundState, SplitConstraints
from hybridver.ir.ops import OpKind

Tensor = torch.Tensor


@dataclasses.dataclass(frozen=True)
class IntermediateAlphas:
    """Relaxation parameters for the intermediate backward passes (joint alpha-CROWN).

    ``alphas[p][v] = (alpha_lower, alpha_upper)``, each ``(2 k_p, N, *v.shape)``: the
    parameters of optimizable node ``v`` in the passes from pre-activation ``p`` (rows: the
    lower bounds of the ``k_p`` neurons of ``rows[p]``, then their upper bounds).
    ``rows``: the CROWN state's ``tightened`` (only these are recomputed); ``floor``:
    sound intervals of the pre-activations (e.g. the best so far), intersected with the
    new ones (both are sound, so is the intersection).  ``crown_gradient``: the
    intersection of a recomputed neuron's CROWN bound with its IBP bound has the value of
    the tighter one but the gradient of the CROWN bound (whose parameters are being
    optimized); without it, wherever IBP is tighter the gradient stops there, and those
    parameters never move, even once they could beat IBP.
    """

    alphas: Mapping[str, Mapping[str, tuple[Tensor, Tensor]]]
    rows: Mapping[str, tuple[Tensor, Tensor]]
    floor: Mapping[str, Interval]
    crown_gradient: bool = True


def build_state(plan: GraphPlan, config: BoundConfig, lower: Tensor, upper: Tensor,
                restrictions: Mapping[str, tuple[Tensor, Tensor]] | None,
                linear_bounds: bool, joint: IntermediateAlphas | None = None,
                known: Mapping[str, tuple[Tensor, Tensor]] | None = None) -> BoundState:
    """Intervals of every node (IBP, tightened by CROWN at every pre-activation when
    ``linear_bounds`` and ``config.intermediate`` is CROWN, intersected with
    ``restrictions``), and the relaxations and error weights of the backward pass.

    ``lower, upper``: float64 ``(N, *input.shape)``.  ``joint``: the intermediate passes
    use these relaxation parameters (differentiable when they require grad).  Raises
    UnsupportedBoundError when a node has no interval rule, or (``linear_bounds``) no
    linear rule and no relaxation; :class:`~hybridver.errors.DeadlineExceeded` past
    ``config.deadline``.
    """
    graph = plan.graph
    state = BoundState(plan, config, lower.shape[0])
    restrictions = restrictions or {}
    tighten = linear_bounds and config.intermediate is IntermediateMethod.CROWN
    for name in plan.order:
        check_deadline(config.deadline)
        node = graph.node(name)
        if name not in plan.variable:
            value = plan.constants[name]
            state.intervals[name] = Interval(value, value)
            continue
        if node.op is OpKind.INPUT:
            itv = Interval(lower, upper)
        else:
            rule = RULES.get(node.op)
            if rule is None:
                raise UnsupportedBoundError(f"no interval rule for {node.op.value} ('{name}')")
            itv = rule(node, [state.intervals[i] for i in node.inputs])
            if bool(torch.isnan(itv.lower).any() or torch.isnan(itv.upper).any()):
                raise UnsupportedBoundError(f"interval bounds of '{name}' are undefined (NaN)")
            itv = Interval(itv.lower.expand(state.n, *node.shape),
                           itv.upper.expand(state.n, *node.shape))
        if known and name in known:   # sound intervals: intersected, never split constraints
            itv = Interval(torch.maximum(itv.lower, known[name][0]),
                           torch.minimum(itv.upper, known[name][1]))
        if name in restrictions:
            rl, ru = restrictions[name]
            if linear_bounds:
                _record_split(state, name, itv, rl, ru)
            itv = Interval(torch.maximum(itv.lower, rl), torch.minimum(itv.upper, ru))
        state.set_interval(name, itv)
        if linear_bounds:
            kind = plan.kind[name]
            if kind is NodeKind.LINEAR:
                state.prepare_linear(name)
            elif kind.nonlinear:
                state.relaxed[name] = state.relax(name)
            elif kind is NodeKind.UNSUPPORTED:
                if not config.interval_fallback:
                    raise UnsupportedBoundError(f"'{name}': {plan.unsupported[name]}")
                state.leaves.add(name)
        if (tighten and name in plan.pre_activations
                and state.kind(name) is not NodeKind.LEAF):
            _tighten(state, name, restrictions.get(name), joint)
    return state


def _record_split(state: BoundState, name: str, itv: Interval, rl: Tensor, ru: Tensor
                  ) -> None:
    """Keep the ends of restriction ``[rl, ru]`` that are finite and tighter than the
    interval ``itv`` the node has without it, for beta multipliers."""
    has_lo = torch.isfinite(rl) & (rl > itv.lower)
    has_hi = torch.isfinite(ru) & (ru < itv.upper)
    if bool(has_lo.any() or has_hi.any()):
        zero = torch.zeros((), dtype=torch.float64, device=rl.device)
        state.splits[name] = SplitConstraints(torch.where(has_lo, rl, zero),
                                              torch.where(has_hi, ru, zero), has_lo, has_hi)

def intermediate_row_chunk(state: BoundState, name: str) -> int:
    """Rows per backward pass from ``name`` that fit the memory limit."""
    plan = state.plan
    item = torch.finfo(state.dtype).bits // 8
    per_row = state.n * item * 6 * plan.max_node_size(name)
    return max(1, int(state.config.memory_limit_bytes // max(1, per_row)))


def _through(value: Tensor, source: Tensor) -> Tensor:
    """``value`` (exactly: ``x - x.detach()`` is 0) with the gradient of ``source``."""
    return value.detach() + (source - source.detach())


def _tighten(state: BoundState, name: str, restriction: tuple[Tensor, Tensor] | None,
             joint: IntermediateAlphas | None = None) -> None:
    """Intersect the interval of pre-activation ``name`` with CROWN bounds of its neurons.

    Only neurons whose interval crosses a breakpoint of their (piecewise-linear)
    consumers, or (other consumers) has a positive width, are recomputed; a subdomain takes the CROWN value of a neuron only where that
    neuron is unstable in it, so that results do not depend on the rest of the batch.
    With ``joint``: the neurons (and subdomains) of ``joint.rows``, with its alphas, and
    the result is intersected with ``joint.floor``.
    """
    plan = state.plan
    node = plan.graph.node(name)
    itv = state.intervals[name]
    lower, upper = itv.lower.reshape(state.n, -1), itv.upper.reshape(state.n, -1)
    alphas: Mapping[str, tuple[Tensor, Tensor]] = {}
    if joint is not None:
        if name not in joint.rows:
            return
        rows, use_rows = joint.rows[name]
        alphas = joint.alphas.get(name, {})
    else:
        points = plan.breakpoints(name)
        if points is None:  # a point interval has nothing to tighten
            use = lower < upper
        else:
            use = torch.zeros_like(lower, dtype=torch.bool)
            for p in points:
                use |= (lower < p) & (p < upper)
        use &= ~state.infeasible[:, None]
        rows = torch.nonzero(use.any(0)).reshape(-1)
        if rows.numel() == 0:
            return
        use_rows = use[:, rows]
        state.tightened[name] = (rows, use_rows)
    total = rows.numel()
    chunk = max(1, intermediate_row_chunk(state, name) // 2)
    new_lower, new_upper = lower.clone(), upper.clone()
    for start in range(0, total, chunk):
        idx = rows[start:start + chunk]
        k = idx.numel()
        lam = torch.zeros((2 * k, state.n, node.size), dtype=state.dtype, device=state.device)
        ar = torch.arange(k, device=state.device)
        lam[ar, :, idx] = 1.0
        lam[ar + k, :, idx] = -1.0
        pick = torch.cat([ar + start, ar + start + total])  # this chunk's alpha rows
        overrides = {v: state.relax(v, al[pick], au[pick]) for v, (al, au) in alphas.items()}
        result = backward(state, name, lam.reshape(2 * k, state.n, *node.shape),
                          overrides=overrides, exact_start=True)
        lo_c, hi_c = result[:k].T, -result[k:].T
        sel = use_rows[:, start:start + chunk]
        lo_n, hi_n = torch.maximum(lower[:, idx], lo_c), torch.minimum(upper[:, idx], hi_c)
        if joint is not None and joint.crown_gradient:
            lo_n, hi_n = _through(lo_n, lo_c), _through(hi_n, hi_c)
        new_lower[:, idx] = torch.where(sel, lo_n, lower[:, idx])
        new_upper[:, idx] = torch.where(sel, hi_n, upper[:, idx])
    if bool(torch.isnan(new_lower).any() or torch.isnan(new_upper).any()):
        raise UnsupportedBoundError(f"CROWN bounds of '{name}' are undefined (NaN)")
    itv = Interval(new_lower.reshape(itv.lower.shape), new_upper.reshape(itv.upper.shape))
    if joint is not None:
        # exactly the intersection's value (``x - x.detach()`` is 0), with the gradient of
        # the new bounds: through the maximum alone, a bound that fell behind the reference
        # would get no gradient and its parameters would stop moving
        ref = joint.floor[name]
        lo_v = torch.maximum(itv.lower, ref.lower).detach()
        hi_v = torch.minimum(itv.upper, ref.upper).detach()
        itv = Interval(lo_v + (itv.lower - itv.lower.detach()),
                       hi_v + (itv.upper - itv.upper.detach()))
    if restriction is not None:
        itv = Interval(torch.maximum(itv.lower, restriction[0]),
                       torch.minimum(itv.upper, restriction[1]))
    state.set_interval(name, itv)
