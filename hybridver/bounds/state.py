"""The state of one bound computation: intervals, magnitudes, relaxations, error weights.

A :class:`BoundState` holds, for one batch of ``N`` subdomains, every node's float64
interval (with the working-dtype copies and magnitudes the rounding analysis of
:mod:`hybridver.bounds.crown` needs), the linear bounds of the nonlinear nodes
(:class:`Relaxed`, biases widened for rounding), the error weights of the linear nodes and
the split constraints of beta-CROWN (:class:`SplitConstraints`).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from hybridver.bounds.intervals import Interval, UnsupportedBoundError
from hybridver.bounds.linear_ops import broadcast_operand
from hybridver.bounds.options import BoundConfig
from hybridver.bounds.plan import GraphPlan, NodeKind
from hybridver.ir.ops import OpKind
from hybridver.numerics import U32, U64, U_BF16, U_TF32, gamma

Tensor = torch.Tensor


def unit_roundoff(dtype: torch.dtype, device: torch.device) -> float:
    """Unit roundoff of matmuls/convolutions in ``dtype`` on ``device`` (see
    :mod:`hybridver.bounds.crown`)."""
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
    lo, hi = lower.detach().to(dtype), upper.detach().to(dtype)
    lo = torch.where(lo.double() > lower.detach(),
                     torch.nextafter(lo, torch.full_like(lo, -math.inf)), lo)
    hi = torch.where(hi.double() < upper.detach(),
                     torch.nextafter(hi, torch.full_like(hi, math.inf)), hi)
    if lower.requires_grad or upper.requires_grad:  # same values, gradient of the cast
        lo = lo + (lower.to(dtype) - lower.to(dtype).detach())
        hi = hi + (upper.to(dtype) - upper.to(dtype).detach())
    return lo, hi


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
        #: pre-activation -> (neuron indices tightened by CROWN, (N, k) bool: per subdomain,
        #: where the CROWN value was used); the rows joint alpha-CROWN optimizes again
        self.tightened: dict[str, tuple[Tensor, Tensor]] = {}
        self._work: dict[str, tuple[Tensor, Tensor]] = {}
        self._mag: dict[str, Tensor] = {}
        self._mag_w: dict[str, Tensor] = {}
        self._centred: dict[str, tuple[Tensor, Tensor, Tensor, Tensor] | None] = {}
        self._exact_box: dict[str, bool] = {}

    # ----------------------------------------------------------------- intervals
    def set_interval(self, name: str, itv: Interval) -> None:
        """Store ``itv``; entries with lower > upper make their subdomain infeasible."""
        crossed = itv.lower > itv.upper
        if bool(crossed.any()):
            self.infeasible |= crossed.reshape(crossed.shape[0], -1).any(1)
            itv = Interval(itv.lower, torch.maximum(itv.lower, itv.upper))
        self.intervals[name] = itv
        for cache in (self._work, self._mag, self._mag_w, self._exact_box):
            cache.pop(name, None)
        for consumer in self.plan.graph.successors(name):
            self._centred.pop(consumer, None)

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

    def centred(self, name: str) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
        """For a LINEAR node ``v = J x + b`` whose operand has a finite interval
        ``[l, u]``: ``(c, J c, s, q_c)`` with ``c = (l + u) / 2`` (float64 ``(N, *x.shape)``),
        ``J c`` in float64 and ``s`` the weights of its rounding terms (``(N, *v.shape)``),
        and ``q_c`` the node's error weights with the half-widths ``w >= |x - c|`` in place
        of the magnitudes (working dtype) (:mod:`hybridver.bounds.crown`, "centred
        products").  None otherwise, and where ``q_c`` is not below half the usual weights
        in total (the float64 correction would cost more than it saves)."""
        if name in self._centred:
            return self._centred[name]
        plan, out = self.plan, None
        node = plan.graph.node(name)
        if node.op is OpKind.LINEAR and self.kind(name) is NodeKind.LINEAR:
            itv = self.intervals[node.inputs[0]]
            lo, hi = itv.lower.detach(), itv.upper.detach()
            if bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()):
                rule = plan.rules[name]
                c = (lo + hi) / 2
                half = torch.maximum(hi - c, c - lo) * (1 + 4 * U64)
                q = self.g(rule.fan) * rule.magnitude([half])
                if rule.bias64 is not None:
                    q = q + self.g(node.size + 3) * rule.bias64.abs()
                if float(q.sum()) < 0.15 * float(self.q[name].sum()):
                    jc = rule.apply64(c)
                    n_x = lo.shape[-1]
                    abs_jc = rule.magnitude([c.abs()])
                    # J c's rounding, <fl(lam J), c>'s (|fl(lam J)| <= (1 + g) |lam| |J|)
                    # and <lam, J c>'s
                    s = (gamma(n_x + 2, U64) + gamma(n_x + 3, U64) * (1 + self.g(rule.fan))) \
                        * abs_jc + gamma(node.size + 3, U64) * jc.abs()
                    out = (c, jc, s, q.to(self.dtype))
        self._centred[name] = out
        return out

    def exact_box(self, name: str) -> bool:
        """Whether the concretization over ``name``'s box is done in float64: where the
        working dtype's error weight ``gamma(n + 3) M`` is over 1% of the width ``u - l``
        in total (elsewhere the float64 copy of the coefficients costs more than it saves)."""
        if name not in self._exact_box:
            itv = self.intervals[name]
            width = float((itv.upper - itv.lower).detach().sum())
            weight = self.g(self.plan.graph.node(name).size + 3) * float(self.mag(name).sum())
            self._exact_box[name] = self.dtype != torch.float64 and weight > 0.01 * width
        return self._exact_box[name]

    def kind(self, name: str) -> NodeKind:
        """The plan's kind of ``name``, or LEAF where this computation cut it out."""
        return NodeKind.LEAF if name in self.leaves else self.plan.kind[name]

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
        if plan.kind[name] is NodeKind.UNARY:
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
