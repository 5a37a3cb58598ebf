"""Root intervals of activation splitting tightened by LPs/MILPs, given to every domain.

After the root bound leaves a case open, :func:`refine_root` tightens the pre-activation
intervals of the first ReLU layers of a deep ReLU network
(:func:`hybridver.backends.bound_refine.refine_intermediate_bounds`, settings
:class:`~hybridver.backends.bound_refine.RefineConfig`); :func:`with_root` then
gives them to the bound engine for every domain, so it relaxes those neurons on the
tighter intervals (a stabilized neuron is linear and never split), and FSB
and the hand-off see them too (they read the domains' restrictions).

Soundness: the tightened intervals hold for every input of the case's box (the module
above), so a fortiori for every input of a domain.  They reach the engine as ``known``
intervals (intersected with the nodes' intervals, never split constraints: beta
multipliers on hundreds of such ends stalled alpha-beta-CROWN's optimization at its
first iterate), and FSB and the hand-off as part of the domains' restrictions.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from hybridver.bab.input_split import disjunct_margins
from hybridver.backends.bound_refine import RefineConfig, refine_intermediate_bounds
from hybridver.bounds.engine import compute_bounds
from hybridver.ir.ops import OpKind

Tensor = torch.Tensor

__all__ = ["refine_root", "refine_and_rebound", "with_root"]


def _flat(t: Tensor) -> np.ndarray:
    return t[0].reshape(-1).detach().cpu().numpy().astype(np.float64)


def refine_root(graph, cands, intervals, lower: np.ndarray, upper: np.ndarray,
                deadline: float, config: RefineConfig, device
                ) -> tuple[dict[str, tuple[Tensor, Tensor]], dict]:
    """Tightened root intervals of the candidates' pre-activations, as restrictions
    ``(1, *shape)`` per node (only nodes some bound moved), and the stats; ``({}, stats)``
    with ``stats["skipped"]`` saying why when the network does not qualify (see
    :class:`RefineConfig`).  ``intervals``: the engine's root intervals (batch of one)."""
    relus = [c for c in cands if graph.node(c.act).op is OpKind.RELU]
    if not config.enabled:
        return {}, {"skipped": "disabled"}
    if len(relus) != len(cands) or len(cands) < config.min_relu_layers:
        return {}, {"skipped": "not a ReLU network of enough layers"}
    start = {c.pre: (_flat(intervals[c.pre].lower), _flat(intervals[c.pre].upper))
             for c in cands if c.pre in intervals}
    if len(start) != len(cands):
        return {}, {"skipped": "no root interval"}
    unstable = sum(int(np.sum((lo < 0) & (hi > 0)))
                   for lo, hi in (start[c.pre] for c in cands[1:config.layers]))
    if unstable < config.min_unstable:
        return {}, {"skipped": f"{unstable} unstable neurons"}
    now = time.monotonic()
    budget = min(config.max_time_s, config.time_share * max(deadline - now, 0.0))
    new, stats = refine_intermediate_bounds(graph, lower, upper, start, config.layers,
                                            now + budget, milp=config.milp,
                                            neuron_time_s=config.neuron_time_s)
    out = {}
    moved = 0
    for c in cands:
        lo0, hi0 = start[c.pre]
        lo, hi = new.get(c.pre, (lo0, hi0))
        if np.any(lo > lo0) or np.any(hi < hi0):
            moved += int(np.sum((lo > lo0) | (hi < hi0)))
            out[c.pre] = (torch.as_tensor(lo, device=device).reshape(1, *c.shape),
                          torch.as_tensor(hi, device=device).reshape(1, *c.shape))
    stats["neurons_moved"] = moved
    return out, stats


def refine_and_rebound(strategy, res, margin: Tensor, restr: dict):
    """The root of activation splitting (``strategy``, its bound result ``res``, margins
    ``(1,)`` and restrictions) is open: tighten its intervals where that pays
    (:func:`refine_root`, into ``strategy.root_restr`` and ``strategy.stats.refine``) and,
    if any moved, bound it again with them.  Returns the (new) result, margins and
    restrictions."""
    s = strategy
    s.root_restr, s.stats.refine = refine_root(s.graph, s.cands, res.intervals, s.lo_in[0],
                                               s.hi_in[0], s.deadline, s.config.refine,
                                               s.device)
    if not s.root_restr:
        return res, margin, restr
    res = compute_bounds(s.graph, s.lo_in, s.hi_in, s.C, s.d, config=s.bconfig,
                         restrictions=restr or None, bound_upper=False, device=s.device,
                         known=s.root_restr)
    restr = with_root(restr, s.root_restr, 1)
    s.stats.domains_bounded += 1
    s.stats.refine["root_margin_before"] = float(margin.min())
    margin = disjunct_margins(res.lower, s.groups).cpu()
    s.stats.refine["root_margin_after"] = float(margin.min())
    return res, margin, restr


def with_root(restr: dict[str, tuple[Tensor, Tensor]],
              root: dict[str, tuple[Tensor, Tensor]], n: int
              ) -> dict[str, tuple[Tensor, Tensor]]:
    """``restr`` (per node ``(n, *shape)``) intersected with the root intervals
    ``(1, *shape)``; nodes only in ``root`` get them repeated ``n`` times."""
    out = dict(restr)
    for name, (lo, hi) in root.items():
        if name in out:
            rl, rh = out[name]
            out[name] = (torch.maximum(rl, lo), torch.minimum(rh, hi))
        else:
            out[name] = (lo.repeat(n, *([1] * (lo.dim() - 1))),
                         hi.repeat(n, *([1] * (hi.dim() - 1))))
    return out
