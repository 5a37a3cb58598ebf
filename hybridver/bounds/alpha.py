"""alpha-CROWN: optimize the free parameters of the relaxations per spec row.

Every relaxation with ``optimizable = True`` accepts ``alpha_lower, alpha_upper`` in
``[0, 1]`` that select among sound linear bounds (ReLU's lower slope, a tangent point of
an S-shaped function...).  For the FINAL backward pass (from the spec rows), each such
node ``v`` gets ``alpha_lower, alpha_upper: (m, N, *v.shape)`` (one per spec row, per
subdomain, per neuron); the bound of every row is a differentiable function of them, and
Adam maximizes the sum of the rows' lower bounds.

* Soundness: every alpha in ``[0, 1]`` gives a sound bound (the relaxation contract) and
  each iterate's bound includes the rounding margin of :mod:`hybridver.bounds.crown`, so
  the elementwise maximum over iterations (and over the CROWN bound itself) is sound.
* Never looser than CROWN: the CROWN bound is the starting value of that maximum.
* Initialization: a relaxation may provide ``initial_alpha(lower, upper, attrs)``
  returning ``(alpha_lower, alpha_upper)``; otherwise, per neuron, the value of a grid
  (0, 1/4, 1/2, 3/4, 1) whose lower line is highest (upper line lowest) at the centre of
  the input box.
* beta-CROWN (``splits``): each restricted node ``z`` also gets signed multipliers
  ``beta: (m, N, *z.shape)``, starting at 0 (the alpha-CROWN bound) and projected after
  every step onto their sign constraints (:meth:`SplitConstraints.project`; the backward
  pass projects again, so soundness never depends on the optimizer).  They are optimized
  jointly with the alphas by the same Adam (learning rate ``config.beta_lr``); every
  iterate is a sound bound (:mod:`hybridver.bounds.crown`), so the elementwise best is.
* Warm start (``warm``, a :class:`WarmStart`): initial alphas and betas per subdomain
  (branch-and-bound passes a parent's optimized values to its children); the optimized
  values of the best iterate per row and subdomain are written back into it.  Any start
  is sound: alphas are clamped into ``[0, 1]`` and betas projected before the first pass.
* Intermediate bounds are NOT optimized here: they come from CROWN (or IBP) and stay
  fixed, so one iteration costs one backward pass of the spec rows; joint alpha-CROWN
  (:mod:`hybridver.bounds.joint`) optimizes them too.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import time
from typing import Any

import torch

from hybridver.bounds.backward import check_deadline
from hybridver.bounds.crown import backward
from hybridver.bounds.linear_ops import broadcast_operand
from hybridver.bounds.options import AlphaConfig
from hybridver.bounds.plan import NodeKind
from hybridver.bounds.state import BoundState, Relaxed, SplitConstraints

Tensor = torch.Tensor
_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclasses.dataclass
class WarmStart:
    """Initial values for :func:`optimize`, replaced by the optimized ones after it.

    ``known``: bool ``(N,)``, the subdomains that have initial values (the others start
    as usual); ``alphas``: node -> ``(alpha_lower, alpha_upper)``, each ``(m, N, *shape)``;
    ``betas``: restricted node -> ``(m, N, *shape)`` (a node missing here starts at 0).
    Used only when ``m`` and ``N`` match the call (one chunk of rows and subdomains);
    otherwise ignored, and nothing is written back (``alphas`` and ``betas`` empty).
    """

    known: Tensor
    alphas: dict[str, tuple[Tensor, Tensor]] = dataclasses.field(default_factory=dict)
    betas: dict[str, Tensor] = dataclasses.field(default_factory=dict)
    m: int = 0

    def fits(self, m: int, n: int) -> bool:
        return self.m == m and self.known.shape[0] == n


_WARM: contextvars.ContextVar[WarmStart | None] = contextvars.ContextVar("warm", default=None)


@contextlib.contextmanager
def warm_start(warm: WarmStart | None):
    """Within this block, :func:`optimize` calls without a ``warm`` argument use ``warm``
    (how branch-and-bound reaches the optimization through
    :func:`~hybridver.bounds.engine.compute_bounds`)."""
    token = _WARM.set(warm)
    try:
        yield warm
    finally:
        _WARM.reset(token)


def _start(cold: Tensor, warm: Tensor | None, known: Tensor) -> Tensor:
    """``cold (m, N, *shape)`` with the known subdomains' entries taken from ``warm``."""
    if warm is None or warm.shape != cold.shape:
        return cold
    mask = known.to(cold.device).reshape(1, -1, *([1] * (cold.dim() - 2)))
    return torch.where(mask, warm.to(cold.device, cold.dtype), cold)


def optimizable_nodes(state: BoundState, start: str) -> list[str]:
    """Nonlinear nodes in the backward cone of ``start`` whose relaxation takes alphas."""
    plan = state.plan
    return [name for name in plan.cone(start) if state.kind(name).nonlinear
            and getattr(plan.relaxations[name], "optimizable", False)]


def smooth(state: BoundState, name: str) -> bool:
    """Whether node ``name``'s relaxation is not piecewise linear (its parameters move
    tangent points over a fraction of their sound range: ``AlphaConfig.smooth_lr``)."""
    return not state.plan.relaxations[name].traits.piecewise_linear


def learning_rates(state: BoundState, names: list[str], config: AlphaConfig) -> list[float]:
    """Adam's learning rate of each node's parameters (``lr``, or ``smooth_lr``)."""
    return [config.lr if config.smooth_lr is None or not smooth(state, n) else config.smooth_lr
            for n in names]


def _value_at_centre(state: BoundState, name: str, relaxed: Relaxed) -> tuple[Tensor, Tensor]:
    """Lower and upper line of ``relaxed`` evaluated at the centre of the operands' box."""
    plan = state.plan
    node = plan.graph.node(name)
    low, up = relaxed.bias_lower, relaxed.bias_upper
    for pos, (cl, cu) in relaxed.coefs.items():
        lo, hi = state.work(node.inputs[pos])
        centre = broadcast_operand((lo + hi) / 2, node.shape)
        low, up = low + cl * centre, up + cu * centre
    return low, up


def initial_alphas(state: BoundState, name: str) -> tuple[Tensor, Tensor]:
    """``(alpha_lower, alpha_upper)`` of shape ``(1, N, *shape)`` (see module docstring)."""
    plan = state.plan
    node = plan.graph.node(name)
    relaxation = plan.relaxations[name]
    shape = (1, state.n, *node.shape)
    hook = getattr(relaxation, "initial_alpha", None)
    if hook is not None and plan.kind[name] is NodeKind.UNARY:
        lo, hi = state.work(node.inputs[0])
        al, au = hook(lo, hi, plan.attrs[name])
        return (torch.broadcast_to(al, shape).clamp(0, 1).to(state.dtype),
                torch.broadcast_to(au, shape).clamp(0, 1).to(state.dtype))
    best_l = best_u = None
    alpha_l = alpha_u = None
    with torch.no_grad():
        for g in _GRID:
            a = torch.full(shape, g, dtype=state.dtype, device=state.device)
            low, up = _value_at_centre(state, name, state.relax(name, a, a))
            if best_l is None:
                best_l, best_u, alpha_l, alpha_u = low, up, a.clone(), a.clone()
                continue
            better_l, better_u = low > best_l, up < best_u
            best_l, best_u = torch.where(better_l, low, best_l), torch.where(better_u, up, best_u)
            alpha_l = torch.where(better_l, a, alpha_l)
            alpha_u = torch.where(better_u, a, alpha_u)
    return alpha_l, alpha_u


class _Adam:
    """Adam (Kingma and Ba) over groups of tensors with one learning rate per group, written
    out because ``torch.optim`` costs seconds of imports on first use.  ``step(grads)``
    takes the gradients in the order of the flattened groups."""

    def __init__(self, groups: list[tuple[list[Tensor], float]], b1: float = 0.9,
                 b2: float = 0.999, eps: float = 1e-8):
        self.groups = [(list(ps), lr) for ps, lr in groups]
        self.params = [p for ps, _ in self.groups for p in ps]
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.b1, self.b2, self.eps, self.t = b1, b2, eps, 0

    def step(self, grads: list[Tensor | None]) -> None:
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        i = 0
        with torch.no_grad():
            for ps, lr in self.groups:
                for p in ps:
                    g = grads[i]
                    if g is not None:
                        g = g.nan_to_num(0.0, 0.0, 0.0)
                        self.m[i].mul_(self.b1).add_(g, alpha=1 - self.b1)
                        self.v[i].mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
                        denom = (self.v[i] / c2).sqrt_().add_(self.eps)
                        p.addcdiv_(self.m[i], denom, value=-lr / c1)
                    i += 1

    def decay(self, factor: float) -> None:
        self.groups = [(ps, lr * factor) for ps, lr in self.groups]


def optimize(state: BoundState, start: str, lam: Tensor, beta: Tensor | None,
             crown_lower: Tensor, config: AlphaConfig, exact_start: bool = False,
             splits: dict[str, SplitConstraints] | None = None,
             warm: WarmStart | None = None) -> tuple[Tensor, dict[str, Any]]:
    """Best sound lower bounds ``(m, N)`` of ``<lam, start> + beta`` over the iterations.

    ``crown_lower``: the CROWN bound of the same rows (the starting best).  ``splits``:
    restricted nodes whose constraints get beta multipliers (none: plain alpha-CROWN).
    ``config.deadline`` ends the optimization early (the best bound so far is returned);
    the bound computation's own deadline (``state.config.deadline``) raises
    :class:`~hybridver.errors.DeadlineExceeded`.  ``warm``: initial values, and where the
    optimized ones go (:class:`WarmStart`; default: the one of :func:`warm_start`).
    """
    warm = _WARM.get() if warm is None else warm
    if warm is not None:
        usable_warm = warm.fits(lam.shape[0], state.n)
        old_alphas, old_betas = warm.alphas, warm.betas
        warm.alphas, warm.betas = {}, {}
        if not usable_warm:
            warm = None
    names = optimizable_nodes(state, start)
    cone = set(state.plan.cone(start))
    splits = {k: v for k, v in (splits or {}).items() if k in cone}
    stats: dict[str, Any] = {"iterations": 0, "optimized_nodes": len(names),
                             "split_nodes": len(splits)}
    if (not names and not splits) or config.iterations == 0 or (
            config.stop_when_proven and bool((crown_lower > 0).all())):
        return crown_lower, stats
    m = lam.shape[0]
    alphas: dict[str, tuple[Tensor, Tensor]] = {}
    params: list[Tensor] = []
    for name in names:
        al, au = initial_alphas(state, name)
        al, au = al.expand(m, *al.shape[1:]), au.expand(m, *au.shape[1:])
        if warm is not None and name in old_alphas:
            al = _start(al, old_alphas[name][0], warm.known).clamp(0.0, 1.0)
            au = _start(au, old_alphas[name][1], warm.known).clamp(0.0, 1.0)
        al = al.clone().requires_grad_(True)
        au = au.clone().requires_grad_(True)
        alphas[name] = (al, au)
        params += [al, au]
    betas = {}
    for name, sc in splits.items():
        b0 = torch.zeros((m, *sc.lower.shape), dtype=state.dtype, device=state.device)
        if warm is not None:
            b0 = sc.project(_start(b0, old_betas.get(name), warm.known).nan_to_num(0.0, 0.0, 0.0))
        betas[name] = b0.requires_grad_(True)
    # the values of the best iterate per (row, subdomain), for the warm start of children
    kept = None
    if warm is not None:
        kept = ({k: (al.detach().clone(), au.detach().clone()) for k, (al, au) in alphas.items()},
                {k: b.detach().clone() for k, b in betas.items()})
    rates = learning_rates(state, names, config)
    optimizer = _Adam([([alphas[n][0], alphas[n][1]], lr) for n, lr in zip(names, rates)]
                      + [(list(betas.values()), config.beta_lr)])
    best = crown_lower.detach().clone()
    stale = 0
    for it in range(config.iterations):
        check_deadline(state.config.deadline)
        with torch.enable_grad():
            overrides = {name: state.relax(name, al, au) for name, (al, au) in alphas.items()}
            lower = backward(state, start, lam, beta, overrides, exact_start,
                             {name: (b, splits[name]) for name, b in betas.items()})
        stats["iterations"] = it + 1
        value = lower.detach()
        usable = torch.isfinite(value)
        new_best = torch.where(usable, torch.maximum(best, value), best)
        if kept is not None:
            _keep(kept, alphas, betas, new_best > best)
        gain = float((new_best - best).sum())
        best = new_best
        if config.stop_when_proven and bool((best > 0).all()):
            break
        finite = torch.isfinite(best)
        scale = float(best[finite].abs().sum()) if bool(finite.any()) else 0.0
        stale = stale + 1 if gain <= config.tolerance * (scale + 1.0) else 0
        if config.patience and stale >= config.patience:
            break
        if it == config.iterations - 1 or not bool(usable.any()):
            break
        if config.deadline is not None and time.monotonic() > config.deadline:
            break
        loss = -lower[usable].sum()
        grads = torch.autograd.grad(loss, optimizer.params, allow_unused=True)
        optimizer.step(list(grads))
        with torch.no_grad():
            for p in params:
                p.nan_to_num_(0.5).clamp_(0.0, 1.0)
            for name, b in betas.items():
                b.copy_(splits[name].project(b.nan_to_num(0.0, 0.0, 0.0)))
        optimizer.decay(config.lr_decay)
    if warm is not None:
        warm.alphas, warm.betas = kept
    return best, stats


def _keep(kept, alphas: dict[str, tuple[Tensor, Tensor]], betas: dict[str, Tensor],
          improved: Tensor) -> None:
    """Copy the current values into ``kept`` where the bound improved (``(m, N)``)."""
    with torch.no_grad():
        for name, (al, au) in alphas.items():
            mask = improved.reshape(*improved.shape, *([1] * (al.dim() - 2)))
            kl, ku = kept[0][name]
            kept[0][name] = (torch.where(mask, al, kl), torch.where(mask, au, ku))
        for name, b in betas.items():
            mask = improved.reshape(*improved.shape, *([1] * (b.dim() - 2)))
            kept[1][name] = torch.where(mask, b, kept[1][name])
