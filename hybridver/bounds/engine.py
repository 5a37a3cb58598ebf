"""Public entry of the bound engine: :func:`compute_bounds`.

Bounds ``C y + d`` (``y`` the flattened network output) over ``N`` input boxes at once,
with IBP, CROWN, alpha-CROWN or alpha-beta-CROWN
(:class:`~hybridver.bounds.options.BoundConfig`), and
returns every node's interval too.  Each subdomain is independent of the others in the
batch (results equal one-by-one runs up to floating-point summation order).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from hybridver.bounds import alpha as alpha_mod
from hybridver.bounds import joint
from hybridver.bounds.crown import backward
from hybridver.bounds.intermediate import build_state
from hybridver.bounds.intervals import Interval, UnsupportedBoundError
from hybridver.bounds.options import BoundConfig, BoundMethod
from hybridver.bounds.plan import get_plan
from hybridver.bounds.state import BoundState, unit_roundoff
from hybridver.errors import DimensionMismatchError
from hybridver.ir.graph import NetworkGraph
from hybridver.numerics import U64, gamma

Tensor = torch.Tensor
ArrayLike = Any


@dataclasses.dataclass(frozen=True)
class BoundResult:
    """Bounds of the spec rows and every node's interval for ``N`` subdomains.

    ``lower``, ``upper``: float64 ``(N, m)``, ``lower <= C y + d <= upper`` for every input
    of subdomain ``b`` (``upper`` is None when not requested).  ``intervals``: node name ->
    :class:`Interval` ``(N or 1, *node.shape)`` float64.  ``infeasible``: ``(N,)`` bool,
    subdomains whose restrictions are contradictory (their rows get ``lower = +inf``,
    ``upper = -inf``: vacuously true).  ``stats``: counters (alpha iterations, chunks).
    ``input_coef``: ``(N, m, n_in)``, the input slopes of CROWN's linear lower bound of
    each row (only when asked for, linear methods; a guide for branching).
    ``input_offset``: ``(N, m)`` float64, with ``method`` CROWN only (alpha-CROWN's final
    pass has other slopes): ``input_coef[b, r] . x + input_offset[b, r] <= (C y + d)_r``
    for EVERY input ``x`` of box ``b`` whose node values satisfy the restrictions (a linear
    bound, valid pointwise; :func:`linear_bound_offset` says why).
    """

    method: BoundMethod
    lower: Tensor
    upper: Tensor | None
    intervals: Mapping[str, Interval]
    infeasible: Tensor
    stats: Mapping[str, Any]
    input_coef: Tensor | None = None
    input_offset: Tensor | None = None


def _as_tensor(value: ArrayLike, device: torch.device) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().to(device=device, dtype=torch.float64)
    return torch.as_tensor(np.array(value, dtype=np.float64), device=device)


def _spec(graph: NetworkGraph, n: int, C: ArrayLike | None, d: ArrayLike | None,
          device: torch.device) -> tuple[Tensor, Tensor]:
    """``C: (N or 1, m, n_out)`` and ``d: (N or 1, m)`` float64."""
    n_out = graph.output_node.size
    Ct = (torch.eye(n_out, dtype=torch.float64, device=device) if C is None
          else _as_tensor(C, device))
    if Ct.dim() == 2:
        Ct = Ct[None]
    if Ct.dim() != 3 or Ct.shape[-1] != n_out or Ct.shape[0] not in (1, n):
        raise DimensionMismatchError(f"C must be (m, {n_out}) or ({n}, m, {n_out}), "
                                     f"got {tuple(Ct.shape)}")
    m = Ct.shape[1]
    dt = torch.zeros((1, m), dtype=torch.float64, device=device) if d is None \
        else _as_tensor(d, device)
    if dt.dim() == 1:
        dt = dt[None]
    if dt.dim() != 2 or dt.shape[1] != m or dt.shape[0] not in (1, n):
        raise DimensionMismatchError(f"d must be ({m},) or ({n}, {m}), got {tuple(dt.shape)}")
    return Ct, dt


def interval_rows(y: Interval, C: Tensor, d: Tensor) -> Tensor:
    """Sound lower bounds ``(N, m)`` of ``C y + d`` over the box ``y`` (float64, the
    summation error ``gamma(n + 3) * sum |terms|`` subtracted)."""
    n = y.lower.shape[0]
    yl, yu = y.lower.reshape(n, 1, -1), y.upper.reshape(n, 1, -1)
    value = (C.clamp(min=0) * yl + C.clamp(max=0) * yu).sum(-1) + d
    size = yl.shape[-1]
    magnitude = (C.abs() * torch.maximum(yl.abs(), yu.abs())).sum(-1) + d.abs()
    return value - gamma(size + 3, U64) * magnitude


def _restrictions(graph: NetworkGraph, restrictions: Mapping[str, tuple] | None, n: int,
                  device: torch.device) -> dict[str, tuple[Tensor, Tensor]]:
    out: dict[str, tuple[Tensor, Tensor]] = {}
    for name, (lo, hi) in (restrictions or {}).items():
        if name not in graph:
            raise KeyError(f"restriction on unknown node '{name}'")
        shape = graph.node(name).shape
        lo_t, hi_t = _as_tensor(lo, device), _as_tensor(hi, device)
        try:
            out[name] = (lo_t.reshape(n, *shape), hi_t.reshape(n, *shape))
        except RuntimeError:
            raise DimensionMismatchError(
                f"restriction on '{name}' must have shape ({n}, {', '.join(map(str, shape))})"
                f", got {tuple(lo_t.shape)}") from None
    return out


def _row_chunk(state: BoundState, rows: int, alpha: bool) -> int:
    plan = state.plan
    item = torch.finfo(state.dtype).bits // 8
    cone = plan.cone(plan.output)
    if alpha:  # autograd keeps every node's coefficients
        per_row = 4 * sum(plan.graph.node(n).size for n in cone)
    else:
        per_row = 6 * plan.max_node_size(plan.output)
    per_row *= state.n * item
    return max(1, min(rows, int(state.config.memory_limit_bytes // max(1, per_row))))


def _linear_rows(state: BoundState, C: Tensor, d: Tensor, config: BoundConfig,
                 stats: dict[str, Any], coefs: list[Tensor] | None = None,
                 restrictions: dict[str, tuple[Tensor, Tensor]] | None = None) -> Tensor:
    """CROWN (and alpha-CROWN) lower bounds ``(N, m)`` of the rows ``C y + d``;
    ``coefs`` (if given) receives, per row chunk, the CROWN pass's input coefficients
    ``(rows, N, n_in)`` and its lower bound ``(rows, N)`` (before any alpha step)."""
    plan = state.plan
    out_shape = plan.graph.output_node.shape
    m = C.shape[1]
    lam_all = C.permute(1, 0, 2).expand(m, state.n, C.shape[-1]).to(state.dtype)
    beta_all = d.T.expand(m, state.n)
    use_alpha = config.method.optimized
    splits = state.splits if config.method is BoundMethod.ALPHA_BETA_CROWN else None
    chunk = _row_chunk(state, m, use_alpha)
    results = []
    for start in range(0, m, chunk):
        lam = lam_all[start:start + chunk].reshape(-1, state.n, *out_shape)
        beta = beta_all[start:start + chunk]
        capture: dict[str, Tensor] | None = {} if coefs is not None else None
        with torch.no_grad():
            lower = backward(state, plan.output, lam, beta, capture=capture)
        if coefs is not None:
            found = capture.get(plan.input)
            coefs.append((torch.zeros((lam.shape[0], state.n, plan.graph.input_node.size),
                                      dtype=state.dtype, device=state.device)
                          if found is None else found.reshape(lam.shape[0], state.n, -1),
                          lower.detach().clone()))
        if (config.method is BoundMethod.ALPHA_CROWN and config.alpha.optimize_intermediate
                and state.tightened):
            lower, info = joint.optimize(state, lam, beta, lower, restrictions or {})
            stats["alpha_iterations"] = max(stats.get("alpha_iterations", 0), info["iterations"])
            stats["joint"] = info["joint"]
        elif use_alpha:
            lower, info = alpha_mod.optimize(state, plan.output, lam, beta, lower, config.alpha,
                                             splits=splits)
            stats["alpha_iterations"] = max(stats.get("alpha_iterations", 0), info["iterations"])
            stats["split_nodes"] = max(stats.get("split_nodes", 0), info["split_nodes"])
        results.append(lower.detach())
    stats["row_chunks"] = stats.get("row_chunks", 0) + len(results)
    return torch.cat(results).T


def _batch_chunk(graph: NetworkGraph, config: BoundConfig, n: int, rows: int) -> int:
    item = torch.finfo(config.torch_dtype).bits // 8
    largest = max(node.size for node in graph.nodes())
    per_sample = 6 * item * largest * min(max(rows, 2 * largest), 64)
    return max(1, min(n, int(config.memory_limit_bytes // per_sample)))


def compute_bounds(graph: NetworkGraph, lower: ArrayLike, upper: ArrayLike,
                   C: ArrayLike | None = None, d: ArrayLike | None = None, *,
                   config: BoundConfig = BoundConfig(),
                   restrictions: Mapping[str, tuple[ArrayLike, ArrayLike]] | None = None,
                   bound_upper: bool = True,
                   device: str | torch.device | None = None,
                   input_coefficients: bool = False,
                   known: Mapping[str, tuple[ArrayLike, ArrayLike]] | None = None) -> BoundResult:
    """Sound bounds of ``C y + d`` over ``N`` input boxes.

    ``lower, upper``: ``(N, *input_shape)`` or ``(N, n_in)``; ``C``: ``(m, n_out)`` shared
    or ``(N, m, n_out)`` per subdomain, default the identity (bounds of every flattened
    output); ``d``: ``(m,)`` or ``(N, m)``, default 0.  ``restrictions``: node name (of
    ``graph`` or of its bound plan's decomposition, ``get_plan(graph, ...).graph``) ->
    ``(lower, upper)`` of shape ``(N, *node.shape)``: the node's value is known to lie there
    (branching decisions); intersected with that node's interval wherever it is used (a
    pre-activation: the input of a nonlinear node); with ``alpha-beta-crown`` each finite
    end tighter than the node's interval is also a linear constraint with an optimized
    multiplier in the final pass.  Bounds are sound for the inputs of the box whose node
    values satisfy the restrictions.  ``bound_upper=False`` skips the upper
    bounds (half the work).  ``device``: default the device of ``lower`` if a tensor, else
    CPU.  ``input_coefficients``: also return :attr:`BoundResult.input_coef`.  ``known``:
    like ``restrictions`` (sound intervals of nodes, same shapes), intersected with the
    nodes' intervals first but never split constraints (no beta multipliers).

    Raises :class:`UnsupportedBoundError` when some node cannot be bounded soundly, and
    :class:`~hybridver.errors.DeadlineExceeded` past ``config.deadline``.
    """
    if device is None:
        device = lower.device if isinstance(lower, Tensor) else torch.device("cpu")
    device = torch.device(device)
    node_in = graph.input_node
    lo = _as_tensor(lower, device)
    hi = _as_tensor(upper, device)
    n = lo.shape[0]
    lo, hi = lo.reshape(n, *node_in.shape), hi.reshape(n, *node_in.shape)
    if bool((lo > hi).any()):
        raise ValueError("input box has lower > upper")
    Ct, dt = _spec(graph, n, C, d, device)
    plan = get_plan(graph, config.torch_dtype, device, config.direct_linear_rules,
                    config.broadcast_products, config.quadratic_forms)
    # restrictions name nodes of the plan's graph (the decomposed one, a superset of names)
    restr = _restrictions(plan.graph, restrictions, n, device)
    known_t = _restrictions(plan.graph, known, n, device)
    linear = config.method is not BoundMethod.IBP
    stats: dict[str, Any] = {"batch_chunks": 0}
    chunk = _batch_chunk(graph, config, n, Ct.shape[1]) if linear else n
    lowers, uppers, infeasible, intervals, coefs, offsets = [], [], [], [], [], []
    t0 = time.perf_counter()
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        Cc = Ct if Ct.shape[0] == 1 else Ct[sl]
        dc = dt if dt.shape[0] == 1 else dt[sl]
        rc = {k: (v[0][sl], v[1][sl]) for k, v in restr.items()}
        kc = {k: (v[0][sl], v[1][sl]) for k, v in known_t.items()}
        with torch.no_grad():
            state = build_state(plan, config, lo[sl], hi[sl], rc, linear, known=kc)
        y = state.intervals[plan.output]
        low = interval_rows(y, Cc, dc)
        up = -interval_rows(y, -Cc, -dc) if bound_upper else None
        if linear:
            both = torch.cat([Cc, -Cc], 1) if bound_upper else Cc
            dboth = torch.cat([dc, -dc], 1) if bound_upper else dc
            chunk_coefs: list | None = [] if input_coefficients else None
            rows = _linear_rows(state, both, dboth, config, stats, chunk_coefs, rc)
            m = Cc.shape[1]
            if chunk_coefs is not None:   # (rows, N, n_in) per row chunk -> (N, m, n_in)
                coef = torch.cat([c for c, _ in chunk_coefs])[:m].transpose(0, 1).double()
                coefs.append(coef)
                if config.method is BoundMethod.CROWN:
                    crown = torch.cat([lw for _, lw in chunk_coefs])[:m].T
                    n_sub = coef.shape[0]
                    offsets.append(linear_bound_offset(
                        crown, coef, lo[sl].reshape(n_sub, -1).double(),
                        hi[sl].reshape(n_sub, -1).double(), unit_roundoff(state.dtype, device)))
            low = torch.maximum(low, rows[:, :m])
            if bound_upper:
                up = torch.minimum(up, -rows[:, m:])
        if bool(torch.isnan(low).any()) or (up is not None and bool(torch.isnan(up).any())):
            raise UnsupportedBoundError("bounds are undefined (NaN)")
        bad = state.infeasible
        low = torch.where(bad[:, None], torch.full_like(low, np.inf), low)
        if up is not None:
            up = torch.where(bad[:, None], torch.full_like(up, -np.inf), up)
        lowers.append(low)
        uppers.append(up)
        infeasible.append(bad)
        intervals.append(state.intervals)
        stats["batch_chunks"] += 1
    stats["time_s"] = time.perf_counter() - t0
    merged = intervals[0] if len(intervals) == 1 else {
        name: Interval(torch.cat([iv[name].lower for iv in intervals]),
                       torch.cat([iv[name].upper for iv in intervals]))
        if name in plan.variable else iv0 for name, iv0 in intervals[0].items()}
    return BoundResult(config.method, torch.cat(lowers),
                       torch.cat(uppers) if bound_upper else None, merged,
                       torch.cat(infeasible), stats, torch.cat(coefs) if coefs else None,
                       torch.cat(offsets) if offsets else None)


def linear_bound_offset(crown_lower: Tensor, coef: Tensor, lower: Tensor, upper: Tensor,
                        u_work: float) -> Tensor:
    """The constant of CROWN's linear lower bound: ``(N, m)`` float64 such that
    ``coef[b, r] . x + offset[b, r] <= row_r(x)`` for every ``x`` of box ``b``.

    ``crown_lower``: CROWN's bound ``(N, m)``; ``coef``: its input slopes ``(N, m, n)``
    (float64 copies of the working-dtype values the pass used); ``lower, upper``: the boxes
    ``(N, n)``.  Why it is sound: the backward pass bounds ``row_r(x)`` below by
    ``coef . x + (other terms) - errors`` at every point ``x`` of the box (every error
    term uses the box magnitudes, which hold pointwise), and then replaces ``coef . x`` by
    ``t``, its minimum over the box evaluated in the working dtype (unit roundoff
    ``u_work``): so ``row_r(x) >= coef . x + crown_lower - t``.  Here ``t`` is bounded
    above by the float64 minimum ``s`` plus both evaluations' rounding, at most
    ``gamma(n + 3)`` times ``sum |coef| max(|lower|, |upper|)`` each, and the subtraction's
    own rounding is covered by a relative ``4 * 2**-53``.
    """
    n = coef.shape[-1]
    lo, hi = lower[:, None, :], upper[:, None, :]
    s = torch.minimum(coef * lo, coef * hi).sum(-1)
    mag = (coef.abs() * torch.maximum(lo.abs(), hi.abs())).sum(-1)
    slack = (gamma(n + 3, u_work) + gamma(n + 3, U64)) * mag
    offset = crown_lower - s - slack
    return offset - 4 * U64 * (crown_lower.abs() + s.abs() + slack)

