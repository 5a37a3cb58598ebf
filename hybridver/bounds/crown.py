"""CROWN: backward linear bound propagation over any IR graph, with a rigorous rounding bound.

One generic backward pass (:func:`backward`) walks the ancestors of a start node in reverse
topological order.  Each visited node ``v`` holds ``lam_v: (m, N, *v.shape)``, the
coefficients of ``v`` in ``m`` linear lower bounds (one per spec row) for ``N`` subdomains;
contributions of several consumers are summed (fan-out, residual adds).  Linear nodes push
``lam_v`` through their transposed rule (:mod:`hybridver.bounds.linear_ops`); nonlinear
nodes ask the relaxation registry for linear bounds on their input intervals and push
``lam+ * lower_slope + lam- * upper_slope``; the graph input (and, with
``interval_fallback``, nodes without a rule) are concretized over their box:
``<lam+, l> + <lam-, u>``.

Soundness in floating point
---------------------------
Every step is computed in the working dtype (float32 by default) with unit roundoff ``u``
(``2**-24``; ``2**-11`` when TF32 may be used on CUDA, ``2**-8`` when float32 matmuls may
run in bfloat16; ``2**-53`` for float64).  Write ``gamma(k) = k u / (1 - k u)`` and
``M_x >= |x|`` for the float64 interval magnitude of node ``x`` (``max(|l|, |u|)``).
Invariant kept by the pass, in exact arithmetic over the floats actually computed:

    for every input in the (restricted) region:
        spec row  >=  sum_{v in frontier} <lam_v, v>  +  beta  -  err

* Pushing through a linear node ``v = sum_i J_i x_i + b`` replaces ``<lam_v, v>`` by the
  computed ``sum_i <fl(lam_v J_i), x_i> + fl(<lam_v, b>)``.  Higham's dot-product bound
  gives ``|fl(lam_v J_i) - lam_v J_i| <= gamma(K) |lam_v| |J_i|`` with ``K`` the products per
  entry plus the roundings of the op's constants, so the change is at most
  ``gamma(K) <|lam_v|, sum_i |J_i| M_i> + gamma(n + 3) <|lam_v|, |b|>``: that is added
  to ``err``.
* A relaxation ``s_l x + b_l <= g(x) <= s_u x + b_u`` (sound in exact arithmetic, by the
  relaxation's contract) is computed in floating point; its biases are widened by
  ``relaxation_ulps * u * (|s| M_x + |b| + M_g)``, which covers a computation of a bounded
  number of well-conditioned operations on operands of those magnitudes.  Pushing then
  costs one rounding per entry (``lam+ * s_l + lam- * s_u`` has one non-zero product) and a
  dot product for the bias: ``gamma(2) <|lam|, S M_x> + gamma(n + 3) <|lam|, B>``.
* Summing the contributions of several consumers: ``gamma(1) <|sum|, M_x>`` per addition.
  Casting the spec matrix to the working dtype: ``gamma(1) <|C|, M_out>``.
* Concretization over a box ``[l, u]`` (rounded outward to the working dtype):
  ``gamma(n + 3) <|lam|, M>``.
* Split multipliers (beta-CROWN, :class:`SplitConstraints`): on the restricted set
  ``rl <= z <= ru``, so ``f >= f + b_hi (z - ru) + b_lo (rl - z)`` for ``b_lo, b_hi >= 0``.
  With one signed multiplier ``delta`` per entry (``b_hi = delta+``, ``b_lo = -delta-``,
  the optimal pair for a given difference) the coefficient of ``z`` grows by ``delta``
  and the constant by ``-(<delta+, ru> + <delta-, rl>)``.  ``delta`` is the float value
  actually added (it *defines* the multipliers, so it carries no error of its own); the
  addition to ``lam_z`` is covered like a fan-out addition, ``gamma(1) <|sum|, M_z>``;
  the constant is computed in float64 from the exact float64 values of ``delta`` and the
  restriction ends, at most ``gamma_64(n + 2) * sum |products|`` off, which is added to
  ``err``; its value joins ``beta`` (and ``abs_terms``) like any other constant term.
* ``beta`` and ``err`` are accumulated in float64 from the working-dtype terms; ``err`` is
  doubled (covering the rounding of its own computation, which is relative ``gamma(n)``
  with ``gamma(n) < 1/4`` checked) and the float64 accumulation of ``beta`` is covered by
  ``gamma_64(count) * sum |terms|``.

The float64 magnitudes ``M`` come from interval bounds with outward rounding
(:mod:`hybridver.bounds.intervals`), and ``|J_i| M_i`` is evaluated in float64 (relative
error far below the factor 2).  Constant subexpressions are taken at their float64 value,
as the IR's reference evaluation does (``simplify`` folds them anyway).
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np
import torch

from hybridver.bounds.intervals import RULES, Interval, UnsupportedBoundError
from hybridver.bounds.linear_ops import LinearRule, broadcast_operand, is_linear, unbroadcast
from hybridver.bounds.options import BoundConfig, IntermediateMethod
from hybridver.ir.evaluate import EVALUATORS
from hybridver.ir.graph import NetworkGraph
from hybridver.ir.ops import OpKind
from hybridver.numerics import U32, U64, U_BF16, U_TF32, gamma
from hybridver.relaxations.base import BinaryRelaxation, UnaryRelaxation, get_relaxation

Tensor = torch.Tensor


def unit_roundoff(dtype: torch.dtype, device: torch.device) -> float:
    """Unit roundoff of matmuls/convolutions in ``dtype`` on ``device`` (see module doc)."""
    if dtype == torch.float64:
        return U64
    u = U32
    if torch.get_float32_matmul_precision() != "highest":
        u = U_BF16
    if device.type == "cuda" and (torch.backends.cuda.matmul.allow_tf32
                                  or torch.backends.cudnn.allow_tf32):
        u = max(u, U_TF32)
    return u


def outward(lower: Tensor, upper: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """float64 bounds cast to ``dtype``, rounded outward (lower down, upper up)."""
    if lower.dtype == dtype:
        return lower, upper
    lo, hi = lower.to(dtype), upper.to(dtype)
    lo = torch.where(lo.double() > lower, torch.nextafter(lo, torch.full_like(lo, -math.inf)), lo)
    hi = torch.where(hi.double() < upper, torch.nextafter(hi, torch.full_like(hi, math.inf)), hi)
    return lo, hi


# ============================================================================ graph plan
class GraphPlan:
    """What the backward pass needs to know about a graph; built once per (graph, dtype,
    device) and cached (graphs are immutable).

    ``kind[name]``: ``"input"``, ``"linear"``, ``"unary"``, ``"binary"`` or
    ``"unsupported"`` for nodes that depend on the input; nodes that do not are constants
    with float64 values in ``constants``.
    """

    def __init__(self, graph: NetworkGraph, dtype: torch.dtype, device: torch.device):
        self.graph, self.dtype, self.device = graph, dtype, device
        self.input = graph.input_node.name
        self.output = graph.output_node.name
        self.order = graph.topological_order
        self.position = {name: i for i, name in enumerate(self.order)}
        self.variable: set[str] = set()
        self.constants: dict[str, Tensor] = {}
        self.kind: dict[str, str] = {}
        self.rules: dict[str, LinearRule] = {}
        self.relaxations: dict[str, UnaryRelaxation | BinaryRelaxation] = {}
        self.attrs: dict[str, Mapping[str, Any]] = {}
        self.unsupported: dict[str, str] = {}
        for name in self.order:
            node = graph.node(name)
            if node.op is OpKind.INPUT or any(i in self.variable for i in node.inputs):
                self.variable.add(name)
            else:
                self.constants[name] = self._constant_value(name)
        for name in self.order:
            if name in self.variable:
                self._classify(name)
        #: variable inputs of nonlinear nodes (their intervals feed relaxations)
        self.pre_activations: set[str] = set()
        for name, kind in self.kind.items():
            if kind in ("unary", "binary"):
                self.pre_activations.update(i for i in graph.node(name).inputs
                                            if i in self.variable and i != self.input)
        self._cones: dict[str, list[str]] = {}

    def _constant_value(self, name: str) -> Tensor:
        node = self.graph.node(name)
        if node.op is OpKind.CONSTANT:
            value = np.asarray(node.consts["value"])
            t = torch.as_tensor(value, device=self.device)
            t = t.to(torch.float64) if value.dtype.kind == "f" else t
            return t.reshape(1, *value.shape)
        with torch.no_grad():
            out = EVALUATORS[node.op](node, [self.constants[i] for i in node.inputs])
        return out.reshape(1, *node.shape)

    def _classify(self, name: str) -> None:
        node = self.graph.node(name)
        variable = [i in self.variable for i in node.inputs]
        shapes = [tuple(self.graph.node(i).shape) for i in node.inputs]
        if node.op is OpKind.INPUT:
            self.kind[name] = "input"
            return
        if is_linear(node, variable):
            constants = {p: self.constants[i] for p, i in enumerate(node.inputs)
                         if not variable[p]}
            try:
                self.rules[name] = LinearRule(node, shapes, variable, constants, self.dtype,
                                              self.device)
                self.kind[name] = "linear"
            except Exception as exc:  # an evaluator that cannot be transposed
                self.kind[name] = "unsupported"
                self.unsupported[name] = f"no backward rule for {node.op.value} ({exc})"
            return
        relaxation = get_relaxation(node.op)
        attrs = dict(node.attrs)
        reason = None
        if isinstance(relaxation, UnaryRelaxation):
            if node.op is OpKind.POW:
                exponent = self.constants.get(node.inputs[1]) if len(node.inputs) == 2 else None
                if not variable[0] or exponent is None or exponent.numel() != 1:
                    reason = "pow with a variable or non-scalar exponent"
                else:
                    attrs["exponent"] = float(exponent.reshape(-1)[0])
            elif variable != [True] or shapes[0] != tuple(node.shape):
                reason = f"{node.op.value} is not elementwise here"
            if reason is None:
                self.kind[name] = "unary"
        elif isinstance(relaxation, BinaryRelaxation) and len(node.inputs) == 2:
            self.kind[name] = "binary"
        else:
            reason = f"no linear rule and no relaxation for {node.op.value}"
        if reason is not None:
            self.kind[name] = "unsupported"
            self.unsupported[name] = reason
            return
        self.relaxations[name] = relaxation
        self.attrs[name] = attrs

    def cone(self, start: str) -> list[str]:
        """``start`` and its variable ancestors, in reverse topological order."""
        if start not in self._cones:
            names = (nx.ancestors(self.graph.nx, start) | {start}) & self.variable
            self._cones[start] = sorted(names, key=self.position.__getitem__, reverse=True)
        return self._cones[start]

    def max_node_size(self, start: str) -> int:
        return max(self.graph.node(n).size for n in self.cone(start))


_PLANS: "weakref.WeakKeyDictionary[NetworkGraph, dict]" = weakref.WeakKeyDictionary()


def get_plan(graph: NetworkGraph, dtype: torch.dtype, device: torch.device) -> GraphPlan:
    """The cached :class:`GraphPlan` of ``graph`` for this dtype and device."""
    per_graph = _PLANS.setdefault(graph, {})
    key = (dtype, str(device))
    if key not in per_graph:
        per_graph[key] = GraphPlan(for_bounds(graph), dtype, device)
    return per_graph[key]


_DECOMPOSED = (OpKind.SOFTMAX, OpKind.MAX_POOL, OpKind.MATMUL)


def for_bounds(graph: NetworkGraph) -> NetworkGraph:
    """``graph`` with softmax, max-pool and products of two matrices decomposed into
    relaxable ops (names of replaced nodes are kept); ``graph`` itself if it has none."""
    if not any(node.op in _DECOMPOSED for node in graph.nodes()):
        return graph
    from hybridver.ir.decompose import decompose_for_bounds

    return decompose_for_bounds(graph)


# ============================================================================ state
@dataclasses.dataclass(frozen=True)
class Relaxed:
    """Linear bounds of one nonlinear node, ready for the backward pass.

    ``coefs[pos] = (lower, upper)``: slopes on variable operand ``pos``; biases already
    widened for rounding (and with constant operands folded in); ``q``: error weights
    (``err += <|lam|, q>``).  Tensors are ``(N, *shape)`` or ``(m, N, *shape)``.
    """

    coefs: dict[int, tuple[Tensor, Tensor]]
    bias_lower: Tensor
    bias_upper: Tensor
    q: Tensor


class BoundState:
    """Intervals, magnitudes, relaxations and error weights of one batch of subdomains."""

    def __init__(self, plan: GraphPlan, config: BoundConfig, n_batch: int):
        self.plan, self.config = plan, config
        self.dtype, self.device, self.n = plan.dtype, plan.device, n_batch
        self.unit = unit_roundoff(self.dtype, self.device)
        self.intervals: dict[str, Interval] = {}
        self.relaxed: dict[str, Relaxed] = {}
        self.q: dict[str, Tensor] = {}
        self.leaves: set[str] = set()
        self.infeasible = torch.zeros(n_batch, dtype=torch.bool, device=self.device)
        #: restricted nodes -> their active restriction ends (beta-CROWN multipliers)
        self.splits: dict[str, SplitConstraints] = {}
        self._work: dict[str, tuple[Tensor, Tensor]] = {}
        self._mag: dict[str, Tensor] = {}
        self._mag_w: dict[str, Tensor] = {}

    # ----------------------------------------------------------------- intervals
    def set_interval(self, name: str, itv: Interval) -> None:
        """Store ``itv``; entries with lower > upper make their subdomain infeasible."""
        crossed = itv.lower > itv.upper
        if bool(crossed.any()):
            self.infeasible |= crossed.reshape(crossed.shape[0], -1).any(1)
            itv = Interval(itv.lower, torch.maximum(itv.lower, itv.upper))
        self.intervals[name] = itv
        for cache in (self._work, self._mag, self._mag_w):
            cache.pop(name, None)

    def work(self, name: str) -> tuple[Tensor, Tensor]:
        """Interval of ``name`` in the working dtype, rounded outward."""
        if name not in self._work:
            itv = self.intervals[name]
            self._work[name] = outward(itv.lower, itv.upper, self.dtype)
        return self._work[name]

    def mag(self, name: str) -> Tensor:
        """float64 ``max(|lower|, |upper|)``."""
        if name not in self._mag:
            itv = self.intervals[name]
            self._mag[name] = torch.maximum(itv.lower.abs(), itv.upper.abs())
        return self._mag[name]

    def mag_w(self, name: str) -> Tensor:
        """``mag`` in the working dtype (rounded up by the caller's factor 2)."""
        if name not in self._mag_w:
            self._mag_w[name] = self.mag(name).to(self.dtype)
        return self._mag_w[name]

    def kind(self, name: str) -> str:
        return "leaf" if name in self.leaves else self.plan.kind[name]

    def g(self, k: float) -> float:
        value = gamma(k, self.unit)
        if not math.isfinite(value) or value > 0.25:
            raise UnsupportedBoundError(
                f"rounding analysis needs {k:.0f} * u < 0.2; use dtype float64")
        return value

    # ----------------------------------------------------------------- per-node setup
    def prepare_linear(self, name: str) -> None:
        """Error weights ``q = gamma(K) sum_i |J_i| M_i + gamma(n + 3) |b|`` of a linear node."""
        plan = self.plan
        rule = plan.rules[name]
        node = plan.graph.node(name)
        mags = [self.mag(node.inputs[p]) for p in rule.var_pos]
        q = self.g(rule.fan) * rule.magnitude(mags)
        if rule.bias64 is not None:
            q = q + self.g(node.size + 3) * rule.bias64.abs()
        self.q[name] = q.to(self.dtype)

    def relax(self, name: str, alpha_lower: Tensor | None = None,
              alpha_upper: Tensor | None = None) -> Relaxed:
        """Linear bounds of nonlinear node ``name`` on its operands' current intervals."""
        plan = self.plan
        node = plan.graph.node(name)
        relaxation = plan.relaxations[name]
        attrs = plan.attrs[name]
        lead = tuple(alpha_lower.shape[:-len(node.shape) - 1]) if alpha_lower is not None \
            else tuple(alpha_upper.shape[:-len(node.shape) - 1]) if alpha_upper is not None else ()
        target = (*lead, self.n, *node.shape)
        kappa = self.config.relaxation_ulps * self.unit
        mag_v = self.mag_w(name)
        if plan.kind[name] == "unary":
            x = node.inputs[0]
            lo, hi = self.work(x)
            lb = _call_relaxation(name, lambda lo, hi: relaxation.bounds(
                lo, hi, attrs, alpha_lower, alpha_upper), [lo, hi])
            sl, bl, su, bu = (torch.broadcast_to(t, target) for t in (
                lb.lower_slope, lb.lower_bias, lb.upper_slope, lb.upper_bias))
            mx = self.mag_w(x)
            bl = bl - kappa * (sl.abs() * mx + bl.abs() + mag_v)
            bu = bu + kappa * (su.abs() * mx + bu.abs() + mag_v)
            q = self.g(2) * torch.maximum(sl.abs(), su.abs()) * mx \
                + self.g(node.size + 3) * torch.maximum(bl.abs(), bu.abs())
            return Relaxed({0: (sl, su)}, bl, bu, q)
        # binary: operands broadcast to the node's shape; constant operands are degenerate
        # intervals (rounded outward) whose terms are folded into the biases
        bounds, mags, consts = [], [], {}
        for pos, src in enumerate(node.inputs):
            if src in plan.variable:
                lo, hi = self.work(src)
                mags.append(broadcast_operand(self.mag_w(src), node.shape))
            else:
                value = plan.constants[src]
                lo, hi = outward(value, value, self.dtype)
                consts[pos] = (broadcast_operand(lo, node.shape),
                               broadcast_operand(hi, node.shape))
                mags.append(broadcast_operand(torch.maximum(lo.abs(), hi.abs()), node.shape))
            bounds.append((broadcast_operand(lo, node.shape).expand(self.n, *node.shape),
                           broadcast_operand(hi, node.shape).expand(self.n, *node.shape)))
        (xl, xu), (yl, yu) = bounds
        bb = _call_relaxation(name, lambda xl, xu, yl, yu: relaxation.bounds(
            xl, xu, yl, yu, attrs, alpha_lower, alpha_upper), [xl, xu, yl, yu])
        lower = [torch.broadcast_to(bb.lower_x, target), torch.broadcast_to(bb.lower_y, target)]
        upper = [torch.broadcast_to(bb.upper_x, target), torch.broadcast_to(bb.upper_y, target)]
        bl = torch.broadcast_to(bb.lower_bias, target)
        bu = torch.broadcast_to(bb.upper_bias, target)
        for pos, (clo, chi) in consts.items():
            bl = bl + torch.minimum(lower[pos] * clo, lower[pos] * chi)
            bu = bu + torch.maximum(upper[pos] * clo, upper[pos] * chi)
        width_l = sum(s.abs() * mg for s, mg in zip(lower, mags))
        width_u = sum(s.abs() * mg for s, mg in zip(upper, mags))
        bl = bl - kappa * (width_l + bl.abs() + mag_v)
        bu = bu + kappa * (width_u + bu.abs() + mag_v)
        fan = max(-(-node.size // max(1, plan.graph.node(i).size)) for i in node.inputs)
        q = self.g(node.size + fan + 4) * (torch.maximum(width_l, width_u)
                                           + torch.maximum(bl.abs(), bu.abs()))
        coefs = {p: (lower[p], upper[p]) for p in range(2) if p not in consts}
        return Relaxed(coefs, bl, bu, q)


def _finite(*ts: Tensor) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in ts)


def _call_relaxation(name: str, call, bounds: list[Tensor]):
    """Run a relaxation on ``bounds = [lower, upper, ...]``; retry once on slightly widened
    intervals if it returns non-finite values (e.g. 0/0 on a degenerate interval; widening
    is sound); any failure means no bound is claimed."""
    for _ in range(2):
        try:
            out = call(*bounds)
        except UnsupportedBoundError:
            raise
        except Exception as exc:  # NotRelaxableError and friends: no proven bound
            raise UnsupportedBoundError(f"relaxation of '{name}' failed: {exc}") from exc
        if _finite(*(getattr(out, f.name) for f in dataclasses.fields(out))):
            return out
        widened = []
        for i, t in enumerate(bounds):
            pad = 16 * torch.finfo(t.dtype).eps * (1 + t.abs())
            widened.append(t - pad if i % 2 == 0 else t + pad)
        bounds = widened
    raise UnsupportedBoundError(f"relaxation of '{name}' is not finite on its interval")


# ============================================================================ split constraints
@dataclasses.dataclass(frozen=True)
class SplitConstraints:
    """The restriction ``rl <= z <= ru`` of one node as constraints for beta multipliers.

    ``lower, upper``: float64 ``(N, *shape)``, the restriction's ends with every unused end
    replaced by 0; ``has_lower, has_upper``: bool ``(N, *shape)``, the ends that are finite
    and tighter than the node's interval before the restriction (only those get a
    multiplier; dropping a constraint is always sound).
    """

    lower: Tensor
    upper: Tensor
    has_lower: Tensor
    has_upper: Tensor

    def project(self, beta: Tensor) -> Tensor:
        """``beta (m, N, *shape)`` with the sides that have no constraint zeroed: positive
        entries need ``has_upper`` (``b_hi = beta+``), negative ones ``has_lower``."""
        beta = torch.where(self.has_upper, beta, beta.clamp(max=0))
        return torch.where(self.has_lower, beta, beta.clamp(min=0))


def _split_constant(delta: Tensor, sc: SplitConstraints) -> tuple[Tensor, Tensor]:
    """``-(<delta+, ru> + <delta-, rl>)`` in float64 ``(m, N)`` and the bound
    ``gamma_64(n + 2) * sum |products|`` on its rounding error."""
    m, n = delta.shape[:2]
    d64 = delta.double()
    prod = d64.clamp(min=0) * sc.upper + d64.clamp(max=0) * sc.lower
    prod = prod.reshape(m, n, -1)
    value = -prod.sum(-1)
    error = gamma(prod.shape[-1] + 2, U64) * prod.abs().sum(-1)
    return value, error


# ============================================================================ backward pass
def _dots(lam: Tensor, *ts: Tensor) -> list[Tensor]:
    """``<lam, t>`` over the node axes for each ``t``: ``lam (m, N, *s)``; ``t (N|1, *s)``
    (one matmul or batched matmul for all of them) or ``(m, N, *s)`` (elementwise).
    Returns ``(m, N)`` tensors."""
    m, n = lam.shape[:2]
    flat = lam.reshape(m, n, -1)
    out: list[Tensor | None] = [None] * len(ts)
    group = [(i, t.reshape(t.shape[0], -1)) for i, t in enumerate(ts) if t.dim() != lam.dim()]
    if group:
        nb = max(t.shape[0] for _, t in group)
        stacked = torch.stack([t.expand(nb, -1) for _, t in group], -1)  # (nb, k, g)
        if nb == 1:
            res = torch.matmul(flat.reshape(m * n, -1), stacked[0]).reshape(m, n, -1)
        else:
            res = torch.bmm(flat.transpose(0, 1), stacked).transpose(0, 1)
        for j, (i, _) in enumerate(group):
            out[i] = res[..., j]
    for i, t in enumerate(ts):
        if out[i] is None:
            out[i] = (flat * t.reshape(*t.shape[:2], -1)).sum(-1)
    return out  # type: ignore[return-value]


def _dot(lam: Tensor, t: Tensor) -> Tensor:
    return _dots(lam, t)[0]


def backward(state: BoundState, start: str, lam: Tensor, beta: Tensor | None = None,
             overrides: Mapping[str, Relaxed] | None = None, exact_start: bool = False,
             splits: Mapping[str, tuple[Tensor, SplitConstraints]] | None = None,
             capture: dict[str, Tensor] | None = None) -> Tensor:
    """Sound lower bounds of ``<lam, start> + beta`` over the subdomains.

    ``lam: (m, N, *start.shape)`` in the working dtype; ``beta: (m, N)`` float64 (or None);
    ``overrides``: relaxations to use instead of ``state.relaxed`` (alpha-CROWN);
    ``exact_start``: ``lam`` holds the exact coefficients (no cast error to account for);
    ``splits``: node -> ``(multipliers (m, N, *shape) in the working dtype, constraints)``
    (beta-CROWN; the multipliers are projected here, so any values are sound);
    ``capture``: if given, receives the coefficients ``(m, N, *shape)`` that reach the
    graph input (the linear bound's slopes over the box; for heuristics).
    Returns float64 ``(m, N)``, rounding accounted for (module docstring).
    """
    plan = state.plan
    graph = plan.graph
    overrides = overrides or {}
    splits = splits or {}
    m, n = lam.shape[:2]
    zeros = torch.zeros((m, n), dtype=torch.float64, device=state.device)
    total = zeros if beta is None else beta.to(torch.float64)
    abs_terms = total.abs()
    err = zeros
    count = 1
    if not exact_start:
        err = err + state.g(1) * _dot(lam.abs(), state.mag_w(start)).double()
    pending: dict[str, Tensor] = {start: lam}

    def push(key: str, contribution: Tensor) -> None:
        nonlocal err
        if key in pending:
            summed = pending[key] + contribution
            err = err + state.g(1) * _dot(summed.abs(), state.mag_w(key)).double()
            pending[key] = summed
        else:
            pending[key] = contribution

    for name in plan.cone(start):
        if name in splits:  # beta-CROWN: add the split constraints' Lagrangian terms
            multipliers, sc = splits[name]
            delta = sc.project(multipliers)
            push(name, delta)
            value, error = _split_constant(delta, sc)
            total = total + value
            abs_terms = abs_terms + value.abs()
            err = err + error
            count += 1
        lam_v = pending.pop(name, None)
        if lam_v is None:
            continue
        node = graph.node(name)
        kind = state.kind(name)
        if kind in ("input", "leaf"):
            if capture is not None and kind == "input":
                capture[name] = lam_v.detach()
            lo, hi = state.work(name)
            mag = state.mag_w(name)
            p_lo, p_mag = _dots(lam_v.clamp(min=0), lo, mag)
            n_hi, n_mag = _dots(lam_v.clamp(max=0), hi, mag)
            term = p_lo + n_hi
            err = err + state.g(node.size + 3) * (p_mag - n_mag).double()
        elif kind == "linear":
            rule = plan.rules[name]
            term = _dot(lam_v, rule.bias) if rule.bias is not None else None
            err = err + _dot(lam_v.abs(), state.q[name]).double()
            for pos, contribution in zip(rule.var_pos, rule.backward(lam_v)):
                push(node.inputs[pos], contribution)
        elif kind in ("unary", "binary"):
            relaxed = overrides.get(name) or state.relaxed[name]
            positive, negative = lam_v.clamp(min=0), lam_v.clamp(max=0)
            p_bias, p_err = _dots(positive, relaxed.bias_lower, relaxed.q)
            n_bias, n_err = _dots(negative, relaxed.bias_upper, relaxed.q)
            term = p_bias + n_bias
            err = err + (p_err - n_err).double()
            for pos, (lower, upper) in relaxed.coefs.items():
                src = node.inputs[pos]
                contribution = positive * lower + negative * upper
                push(src, unbroadcast(contribution, graph.node(src).shape))
        else:
            raise UnsupportedBoundError(plan.unsupported.get(name, f"no rule for '{name}'"))
        if term is not None:
            term = term.double()
            total = total + term
            abs_terms = abs_terms + term.abs()
            count += 1
    return total - 2.0 * err - gamma(count + 2, U64) * abs_terms


# ============================================================================ forward setup
def build_state(plan: GraphPlan, config: BoundConfig, lower: Tensor, upper: Tensor,
                restrictions: Mapping[str, tuple[Tensor, Tensor]] | None,
                linear_bounds: bool) -> BoundState:
    """Intervals of every node (IBP, tightened by CROWN at every pre-activation when
    ``linear_bounds`` and ``config.intermediate`` is CROWN, intersected with
    ``restrictions``), and the relaxations and error weights of the backward pass.

    ``lower, upper``: float64 ``(N, *input.shape)``.  Raises UnsupportedBoundError when a
    node has no interval rule, or (``linear_bounds``) no linear rule and no relaxation.
    """
    graph = plan.graph
    state = BoundState(plan, config, lower.shape[0])
    restrictions = restrictions or {}
    tighten = linear_bounds and config.intermediate is IntermediateMethod.CROWN
    for name in plan.order:
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
        if name in restrictions:
            rl, ru = restrictions[name]
            if linear_bounds:
                _record_split(state, name, itv, rl, ru)
            itv = Interval(torch.maximum(itv.lower, rl), torch.minimum(itv.upper, ru))
        state.set_interval(name, itv)
        if linear_bounds:
            kind = plan.kind[name]
            if kind == "linear":
                state.prepare_linear(name)
            elif kind in ("unary", "binary"):
                state.relaxed[name] = state.relax(name)
            elif kind == "unsupported":
                if not config.interval_fallback:
                    raise UnsupportedBoundError(f"'{name}': {plan.unsupported[name]}")
                state.leaves.add(name)
        if tighten and name in plan.pre_activations and state.kind(name) != "leaf":
            _tighten(state, name, restrictions.get(name))
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


def _breakpoints(plan: GraphPlan, name: str) -> tuple[float, ...] | None:
    """Breakpoints if every consumer of ``name`` is piecewise linear with breakpoints
    (then only neurons whose interval contains one need tighter bounds), else None."""
    points: set[float] = set()
    for consumer in plan.graph.successors(name):
        if plan.kind.get(consumer) != "unary":
            return None
        traits = plan.relaxations[consumer].traits
        if not (traits.piecewise_linear and traits.breakpoints):
            return None
        points.update(float(p) for p in traits.breakpoints)
    return tuple(sorted(points))


def intermediate_row_chunk(state: BoundState, name: str) -> int:
    """Rows per backward pass from ``name`` that fit the memory limit."""
    plan = state.plan
    item = torch.finfo(state.dtype).bits // 8
    per_row = state.n * item * 6 * plan.max_node_size(name)
    return max(1, int(state.config.memory_limit_bytes // max(1, per_row)))


def _tighten(state: BoundState, name: str,
             restriction: tuple[Tensor, Tensor] | None) -> None:
    """Intersect the interval of pre-activation ``name`` with CROWN bounds of its neurons.

    Only neurons whose interval crosses a breakpoint of their (piecewise-linear)
    consumers are recomputed; a subdomain takes the CROWN value of a neuron only where that
    neuron is unstable in it, so that results do not depend on the rest of the batch.
    """
    plan = state.plan
    node = plan.graph.node(name)
    itv = state.intervals[name]
    lower, upper = itv.lower.reshape(state.n, -1), itv.upper.reshape(state.n, -1)
    points = _breakpoints(plan, name)
    if points is None:
        use = torch.ones_like(lower, dtype=torch.bool)
    else:
        use = torch.zeros_like(lower, dtype=torch.bool)
        for p in points:
            use |= (lower < p) & (p < upper)
    use &= ~state.infeasible[:, None]
    rows = torch.nonzero(use.any(0)).reshape(-1)
    if rows.numel() == 0:
        return
    chunk = max(1, intermediate_row_chunk(state, name) // 2)
    new_lower, new_upper = lower.clone(), upper.clone()
    for start in range(0, rows.numel(), chunk):
        idx = rows[start:start + chunk]
        k = idx.numel()
        lam = torch.zeros((2 * k, state.n, node.size), dtype=state.dtype, device=state.device)
        ar = torch.arange(k, device=state.device)
        lam[ar, :, idx] = 1.0
        lam[ar + k, :, idx] = -1.0
        result = backward(state, name, lam.reshape(2 * k, state.n, *node.shape),
                          exact_start=True)
        lo_c, hi_c = result[:k].T, -result[k:].T
        sel = use[:, idx]
        new_lower[:, idx] = torch.where(sel, torch.maximum(lower[:, idx], lo_c), lower[:, idx])
        new_upper[:, idx] = torch.where(sel, torch.minimum(upper[:, idx], hi_c), upper[:, idx])
    if bool(torch.isnan(new_lower).any() or torch.isnan(new_upper).any()):
        raise UnsupportedBoundError(f"CROWN bounds of '{name}' are undefined (NaN)")
    itv = Interval(new_lower.reshape(itv.lower.shape), new_upper.reshape(itv.upper.shape))
    if restriction is not None:
        itv = Interval(torch.maximum(itv.lower, restriction[0]),
                       torch.minimum(itv.upper, restriction[1]))
    state.set_interval(name, itv)
