"""Interval bound propagation (IBP) over a NetworkGraph, in float64 with outward rounding.

Every tensor is a pair ``lower, upper`` of shape ``(batch, *node.shape)`` with
``lower <= f(x) <= upper`` for every input in the input box.  Each rule is sound in real
arithmetic; floating-point rounding is covered by widening every result outward by an
error bound of the float64 computation (see ``docs/soundness.md``):

* dot products of length ``k``: ``|fl(s) - s| <= k * u * sum |terms|`` (``u``:
  ``numerics.U64``), so the radius grows by ``(k + 2) * u * (|W| |c| + |W| r + |b|)``;
* elementwise library functions (exp, tanh, sin...): a few ulp, covered by a relative
  widening of ``8 u`` plus an absolute ``numerics.TINY``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from hybridver.ir.evaluate import EVALUATORS, _align, _const
from hybridver.ir.graph import NetworkGraph, Node
from hybridver.ir.ops import OpKind
from hybridver.numerics import TINY, U64

Tensor = torch.Tensor
_ELEMENTWISE_SLACK = 8 * U64


class UnsupportedBoundError(Exception):
    """No interval rule for this node (or its operands' ranges), so no bound is claimed."""


@dataclasses.dataclass(frozen=True)
class Interval:
    """Elementwise bounds, each ``(batch, *shape)``."""

    lower: Tensor
    upper: Tensor

    @property
    def center(self) -> Tensor:
        return (self.lower + self.upper) / 2

    @property
    def radius(self) -> Tensor:
        return (self.upper - self.lower) / 2


def _widen(lower: Tensor, upper: Tensor, rel: float = _ELEMENTWISE_SLACK) -> Interval:
    return Interval(lower - rel * lower.abs() - TINY, upper + rel * upper.abs() + TINY)


def _monotone(fn: Callable[[Node, list[Tensor]], Tensor], exact: bool = True):
    """Rule for ops non-decreasing in their single operand (data movement, max-pool, relu...).

    ``exact``: the op only moves or selects values (no rounding), so no widening.
    """
    def rule(node: Node, args: list[Interval]) -> Interval:
        lo, hi = fn(node, [args[0].lower]), fn(node, [args[0].upper])
        return Interval(lo, hi) if exact else _widen(lo, hi)
    return rule


def _affine_error(abs_w_terms: Tensor, fan_in: int) -> Tensor:
    return (fan_in + 2) * U64 * abs_w_terms


def _linear(node: Node, args: list[Interval]) -> Interval:
    x = args[0]
    w = _const(node, "weight", x.lower)
    c, r = x.center, x.radius
    center = c @ w.T
    bias_abs = 0.0
    if "bias" in node.consts:
        b = _const(node, "bias", c)
        center = center + b
        bias_abs = b.abs()
    radius = r @ w.abs().T
    radius = radius + _affine_error(c.abs() @ w.abs().T + radius + bias_abs, w.shape[1])
    return Interval(center - radius, center + radius)


def _conv_like(node: Node, args: list[Interval]) -> Interval:
    """Convolutions: centre through the op, radius through ``|W|`` without bias."""
    x = args[0]
    fn = EVALUATORS[node.op]
    weight = np.asarray(node.consts["weight"])
    center = fn(node, [x.center])
    radius = fn(node.replace(consts={"weight": np.abs(weight)}), [x.radius])
    abs_consts = {"weight": np.abs(weight)}
    if "bias" in node.consts:
        abs_consts["bias"] = np.abs(np.asarray(node.consts["bias"]))
    magnitude = fn(node.replace(consts=abs_consts), [x.center.abs()])  # |W||c| + |b|
    err = _affine_error(magnitude + radius, int(weight.size))  # fan-in <= all weights
    return Interval(center - radius - err, center + radius + err)


def _batch_norm(node: Node, args: list[Interval]) -> Interval:
    x = args[0]
    c, r = x.center, x.radius
    center = EVALUATORS[OpKind.BATCH_NORM](node, [c])
    shape = [1] * c.dim()
    shape[2] = -1
    factor = (_const(node, "scale", c) / torch.sqrt(_const(node, "var", c)
                                                    + float(node.attrs["epsilon"])))
    radius = r * factor.abs().reshape(shape)
    err = 16 * U64 * (center.abs() + radius + (_const(node, "mean", c).abs().reshape(shape)
                                                + c.abs()) * factor.abs().reshape(shape))
    return Interval(center - radius - err, center + radius + err)


def _matmul(node: Node, args: list[Interval]) -> Interval:
    a, b = args
    fn = EVALUATORS[OpKind.MATMUL]
    ac, ar, bc, br = a.center, a.radius, b.center, b.radius
    center = fn(node, [ac, bc])
    radius = fn(node, [ac.abs(), br]) + fn(node, [ar, bc.abs()]) + fn(node, [ar, br])
    k = a.lower.shape[-1] if a.lower.dim() > 1 else 1
    err = _affine_error(fn(node, [ac.abs(), bc.abs()]) + radius, k)
    return Interval(center - radius - err, center + radius + err)


def _add(node: Node, args: list[Interval]) -> Interval:
    rank = len(node.shape)
    a, b = args
    return _widen(_align(a.lower, rank) + _align(b.lower, rank),
                  _align(a.upper, rank) + _align(b.upper, rank), U64)


def _sub(node: Node, args: list[Interval]) -> Interval:
    rank = len(node.shape)
    a, b = args
    return _widen(_align(a.lower, rank) - _align(b.upper, rank),
                  _align(a.upper, rank) - _align(b.lower, rank), U64)


def _mul_intervals(a: Interval, b: Interval, rank: int) -> Interval:
    al, au = _align(a.lower, rank), _align(a.upper, rank)
    bl, bu = _align(b.lower, rank), _align(b.upper, rank)
    products = torch.stack(torch.broadcast_tensors(al * bl, al * bu, au * bl, au * bu))
    return _widen(products.min(0).values, products.max(0).values, U64)


def _mul(node: Node, args: list[Interval]) -> Interval:
    return _mul_intervals(args[0], args[1], len(node.shape))


def _reciprocal_interval(x: Interval) -> Interval:
    if bool(((x.lower <= 0) & (x.upper >= 0)).any()):
        raise UnsupportedBoundError("reciprocal/division of an interval containing 0")
    return _widen(1.0 / x.upper, 1.0 / x.lower, 2 * U64)


def _div(node: Node, args: list[Interval]) -> Interval:
    return _mul_intervals(args[0], _reciprocal_interval(args[1]), len(node.shape))


def _abs(node: Node, args: list[Interval]) -> Interval:
    lo, hi = args[0].lower, args[0].upper
    lower = torch.where(lo >= 0, lo, torch.where(hi <= 0, -hi, torch.zeros_like(lo)))
    upper = torch.maximum(lo.abs(), hi.abs())
    return Interval(lower, upper)


def _leaky_relu(node: Node, args: list[Interval]) -> Interval:
    alpha = float(node.attrs["alpha"])
    if alpha < 0:
        raise UnsupportedBoundError("LeakyRelu with negative slope")
    return _monotone(EVALUATORS[OpKind.LEAKY_RELU], exact=False)(node, args)


def _gelu(node: Node, args: list[Interval]) -> Interval:
    # GELU decreases on (-inf, x*) and increases on (x*, inf); x* ~ -0.75179, and
    # min GELU = -0.169971207479904 (float64 grid search); the constant is taken 1e-8 lower
    x_star, f_star = -0.7517915246935397, -0.16997120747195425 - 1e-8
    lo, hi = args[0].lower, args[0].upper
    flo, fhi = F.gelu(lo), F.gelu(hi)
    lower = torch.where((lo <= x_star) & (hi >= x_star),
                        torch.full_like(lo, f_star - 1e-12), torch.minimum(flo, fhi))
    return _widen(lower, torch.maximum(flo, fhi))


def _periodic(shift: float) -> Callable[[Node, list[Interval]], Interval]:
    """sin(x + shift): max where x + shift = pi/2 + 2k pi, min where = 3pi/2 + 2k pi."""
    def rule(node: Node, args: list[Interval]) -> Interval:
        lo, hi = args[0].lower + shift, args[0].upper + shift
        slo, shi = torch.sin(lo), torch.sin(hi)
        lower, upper = torch.minimum(slo, shi), torch.maximum(slo, shi)

        def contains(point: float) -> Tensor:  # some point + 2k pi in [lo, hi]
            k = torch.ceil((lo - point) / (2 * math.pi))
            return point + 2 * math.pi * k <= hi

        upper = torch.where(contains(math.pi / 2), torch.ones_like(upper), upper)
        lower = torch.where(contains(-math.pi / 2), -torch.ones_like(lower), lower)
        wide = (hi - lo) >= 2 * math.pi
        upper = torch.where(wide, torch.ones_like(upper), upper)
        lower = torch.where(wide, -torch.ones_like(lower), lower)
        # the shift itself is rounded: widen by its error times the slope bound 1
        w = _widen(lower, upper)
        eps = 4 * U64 * (args[0].lower.abs() + args[0].upper.abs() + abs(shift))
        return Interval((w.lower - eps).clamp(min=-1.0), (w.upper + eps).clamp(max=1.0))
    return rule


def _pow(node: Node, args: list[Interval]) -> Interval:
    base, exponent = args
    if not torch.equal(exponent.lower, exponent.upper) or exponent.lower.numel() != 1:
        raise UnsupportedBoundError(f"Pow '{node.name}' with a non-scalar or variable exponent")
    p = float(exponent.lower.reshape(-1)[0])
    lo, hi = base.lower, base.upper
    if p == 1.0:
        return Interval(lo, hi)
    if p.is_integer() and p > 0:
        plo, phi = lo ** p, hi ** p
        if int(p) % 2 == 1:
            return _widen(plo, phi, 4 * U64 * p)
        contains_zero = (lo <= 0) & (hi >= 0)
        lower = torch.where(contains_zero, torch.zeros_like(lo), torch.minimum(plo, phi))
        return _widen(lower, torch.maximum(plo, phi), 4 * U64 * p)
    if bool((lo < 0).any()):
        raise UnsupportedBoundError(f"Pow '{node.name}' with exponent {p} of a negative base")
    plo, phi = lo ** p, hi ** p
    slack = 4 * U64 * (1 + abs(p))
    return _widen(plo, phi, slack) if p > 0 else _widen(phi, plo, slack)


def _sqrt(node: Node, args: list[Interval]) -> Interval:
    if bool((args[0].lower < 0).any()):
        raise UnsupportedBoundError(f"Sqrt '{node.name}' of a possibly negative operand")
    return _widen(torch.sqrt(args[0].lower), torch.sqrt(args[0].upper))


def _log(node: Node, args: list[Interval]) -> Interval:
    lo = torch.log(args[0].lower.clamp(min=0))  # log(0) = -inf is a valid lower bound
    if bool((args[0].upper <= 0).any()):
        raise UnsupportedBoundError(f"Log '{node.name}' of a non-positive operand")
    return _widen(lo, torch.log(args[0].upper))


def _softmax(node: Node, args: list[Interval]) -> Interval:
    """Softmax_i is increasing in x_i and decreasing in x_j (j != i), so
    ``lower_i = exp(l_i - logsumexp(l_i, u_{j != i}))`` and symmetrically for the upper
    bound; log-sum-exp keeps it finite for any magnitudes (O(n^2) per softmax row)."""
    dim = int(node.attrs["axis"]) + 1
    lo = args[0].lower.movedim(dim, -1)
    hi = args[0].upper.movedim(dim, -1)
    n = lo.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=lo.device)
    # mixed[..., i, j] = l_i if j == i else u_j  (and the mirror image for the upper bound)
    mixed_lower = torch.where(eye, lo.unsqueeze(-1), hi.unsqueeze(-2))
    mixed_upper = torch.where(eye, hi.unsqueeze(-1), lo.unsqueeze(-2))
    lower = torch.exp(lo - torch.logsumexp(mixed_lower, dim=-1))
    upper = torch.exp(hi - torch.logsumexp(mixed_upper, dim=-1))
    w = _widen(lower.movedim(-1, dim), upper.movedim(-1, dim), 64 * U64 * n)
    return Interval(w.lower.clamp(min=0.0), w.upper.clamp(max=1.0))


def _where(node: Node, args: list[Interval]) -> Interval:
    cond, a, b = args
    rank = len(node.shape)
    if not torch.equal(cond.lower, cond.upper):
        raise UnsupportedBoundError(f"Where '{node.name}' with a variable condition")
    c = _align(cond.lower, rank) != 0
    return Interval(torch.where(c, _align(a.lower, rank), _align(b.lower, rank)),
                    torch.where(c, _align(a.upper, rank), _align(b.upper, rank)))


def _concat(node: Node, args: list[Interval]) -> Interval:
    fn = EVALUATORS[OpKind.CONCAT]
    return Interval(fn(node, [a.lower for a in args]), fn(node, [a.upper for a in args]))


def _linear_monotone(op: OpKind) -> Callable[[Node, list[Interval]], Interval]:
    """Reductions and average pools: non-negative weights, so monotone; sums round."""
    def rule(node: Node, args: list[Interval]) -> Interval:
        fn = EVALUATORS[op]
        lo, hi = fn(node, [args[0].lower]), fn(node, [args[0].upper])
        k = max(1, args[0].lower[0].numel() // max(1, lo[0].numel()))
        # each end is its own sum: its error is relative to that end's magnitudes
        err_lo = (k + 2) * U64 * fn(node, [args[0].lower.abs()])
        err_hi = (k + 2) * U64 * fn(node, [args[0].upper.abs()])
        return Interval(lo - err_lo, hi + err_hi)
    return rule


RULES: dict[OpKind, Callable[[Node, list[Interval]], Interval]] = {
    OpKind.LINEAR: _linear,
    OpKind.MATMUL: _matmul,
    OpKind.CONV: _conv_like,
    OpKind.CONV_TRANSPOSE: _conv_like,
    OpKind.BATCH_NORM: _batch_norm,
    OpKind.ADD: _add,
    OpKind.SUB: _sub,
    OpKind.MUL: _mul,
    OpKind.DIV: _div,
    OpKind.NEG: lambda n, a: Interval(-a[0].upper, -a[0].lower),
    OpKind.REDUCE_SUM: _linear_monotone(OpKind.REDUCE_SUM),
    OpKind.REDUCE_MEAN: _linear_monotone(OpKind.REDUCE_MEAN),
    OpKind.AVERAGE_POOL: _linear_monotone(OpKind.AVERAGE_POOL),
    OpKind.GLOBAL_AVERAGE_POOL: _linear_monotone(OpKind.GLOBAL_AVERAGE_POOL),
    OpKind.RELU: _monotone(EVALUATORS[OpKind.RELU]),
    OpKind.LEAKY_RELU: _leaky_relu,
    OpKind.ABS: _abs,
    OpKind.SIGMOID: _monotone(EVALUATORS[OpKind.SIGMOID], exact=False),
    OpKind.TANH: _monotone(EVALUATORS[OpKind.TANH], exact=False),
    OpKind.EXP: _monotone(EVALUATORS[OpKind.EXP], exact=False),
    OpKind.ERF: _monotone(EVALUATORS[OpKind.ERF], exact=False),
    OpKind.SIN: _periodic(0.0),
    OpKind.COS: _periodic(math.pi / 2),
    OpKind.GELU: _gelu,
    OpKind.POW: _pow,
    OpKind.SQRT: _sqrt,
    OpKind.LOG: _log,
    OpKind.RECIPROCAL: lambda n, a: _reciprocal_interval(a[0]),
    OpKind.SOFTMAX: _softmax,
    OpKind.MAX_POOL: _monotone(EVALUATORS[OpKind.MAX_POOL]),
    OpKind.UPSAMPLE: _monotone(EVALUATORS[OpKind.UPSAMPLE]),
    OpKind.RESHAPE: _monotone(EVALUATORS[OpKind.RESHAPE]),
    OpKind.EXPAND: _monotone(EVALUATORS[OpKind.EXPAND]),
    OpKind.TRANSPOSE: _monotone(EVALUATORS[OpKind.TRANSPOSE]),
    OpKind.SLICE: _monotone(EVALUATORS[OpKind.SLICE]),
    OpKind.GATHER: _monotone(EVALUATORS[OpKind.GATHER]),
    OpKind.PAD: _monotone(EVALUATORS[OpKind.PAD]),
    OpKind.IDENTITY: _monotone(EVALUATORS[OpKind.IDENTITY]),
    OpKind.CONCAT: _concat,
    OpKind.WHERE: _where,
}


def interval_bounds(graph: NetworkGraph, lower: np.ndarray | Tensor, upper: np.ndarray | Tensor,
                    device: str | torch.device | None = None) -> dict[str, Interval]:
    """Interval bounds of every node for a batch of input boxes.

    ``lower``/``upper``: ``(batch, *input_shape)`` (or flattened ``(batch, n_in)``).
    Returns ``{node name: Interval}`` with tensors ``(batch or 1, *node.shape)``.
    Raises :class:`UnsupportedBoundError` when a node has no sound rule for its ranges.
    """
    node_in = graph.input_node
    lo = torch.as_tensor(np.array(lower, dtype=np.float64), device=device)
    hi = torch.as_tensor(np.array(upper, dtype=np.float64), device=device)
    lo, hi = lo.reshape(lo.shape[0], *node_in.shape), hi.reshape(hi.shape[0], *node_in.shape)
    values: dict[str, Interval] = {}
    for name in graph.topological_order:
        node = graph.node(name)
        if node.op is OpKind.INPUT:
            values[name] = Interval(lo, hi)
        elif node.op is OpKind.CONSTANT:
            v = torch.as_tensor(np.asarray(node.consts["value"]), device=device)
            v = v.to(torch.float64) if v.is_floating_point() else v
            v = v.reshape(1, *v.shape)
            values[name] = Interval(v, v)
        else:
            rule = RULES.get(node.op)
            if rule is None:
                raise UnsupportedBoundError(f"no interval rule for {node.op.value} ('{name}')")
            result = rule(node, [values[i] for i in node.inputs])
            if bool(torch.isnan(result.lower).any() or torch.isnan(result.upper).any()):
                raise UnsupportedBoundError(f"interval bounds of '{name}' are undefined (NaN)")
            values[name] = result
    return values


def spec_row_lower_bounds(y: Interval, C: np.ndarray, d: np.ndarray) -> Tensor:
    """Lower bounds of ``C y + d`` for ``y`` in the box: ``(batch, m)``; ``C: (m, n_out)``.

    Sound: each row's minimum over a box is attained with ``y_j`` at ``lower`` for positive
    coefficients and ``upper`` for negative ones; the sum's rounding error is subtracted.
    """
    yl = y.lower.reshape(y.lower.shape[0], -1)
    yu = y.upper.reshape(y.upper.shape[0], -1)
    Ct = torch.tensor(C, dtype=torch.float64, device=yl.device)
    dt = torch.tensor(d, dtype=torch.float64, device=yl.device)
    lower = yl @ Ct.clamp(min=0).T + yu @ Ct.clamp(max=0).T + dt
    err = (Ct.shape[1] + 2) * U64 * (yl.abs() @ Ct.abs().T + yu.abs() @ Ct.abs().T + dt.abs())
    return lower - err
