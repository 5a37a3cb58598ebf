"""CROWN: backward linear bound propagation over any IR graph, with a rigorous rounding bound.

:func:`backward` is CROWN's rule table over the generic backward walk
(:mod:`hybridver.bounds.backward`), which visits the ancestors of a start node in reverse
topological order.  Each visited node ``v`` holds ``lam_v: (m, N, *v.shape)``, the
coefficients of ``v`` in ``m`` linear lower bounds (one per spec row) for ``N`` subdomains;
contributions of several consumers are summed (fan-out, residual adds).  Linear nodes push
``lam_v`` through their transposed rule (:mod:`hybridver.bounds.linear_ops`); nonlinear
nodes use the relaxations of the bound state for linear bounds on their input intervals and push
``lam+ * lower_slope + lam- * upper_slope``; the graph input (and, with
``interval_fallback``, nodes without a rule: LEAF) are concretized over their box:
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
  ``gamma(n + 3) <|lam|, M>``; where that weight is over 1% of the box's width
  (:meth:`BoundState.exact_box`: magnitudes far above the widths, e.g. dist_shift's inputs
  reach 130 on a box of width 0.26) in float64 instead, from the float64 interval (a
  working dtype coefficient times a float64 bound is one rounding of ``U64``):
  ``gamma_64(n + 3) <|lam|, M>``.
* Centred products: for a LINEAR node ``v = J x + b`` with ``x`` in ``[l, u]``, let
  ``c = (l + u) / 2``, ``w >= |x - c|`` and ``d = fl(lam J) - lam J`` (the computed
  coefficients minus the exact ones).  Then ``<lam J, x> = <fl(lam J), x> - <d, c> -
  <d, x - c>`` where ``<d, c> = <fl(lam J), c> - <lam, J c>`` is computed (float64, from
  ``J c`` computed once in float64) and added as a constant, and only
  ``|<d, x - c>| <= gamma(K) <|lam|, |J| w>`` goes to ``err``: the product's error then
  scales with the operand's width, not its magnitude (inputs and neurons far from 0 on
  small boxes: dist_shift's inputs reach 130 where ``w`` is 0.13).  The float64 parts
  add ``<|lam|, s>``, ``s = (gamma_64(n_x + 2) + gamma_64(n_x + 3)(1 + gamma(K))) |J| |c|
  + gamma_64(n + 3) |J c|``: the rounding of ``J c``, of ``<fl(lam J), c>`` (with
  ``|fl(lam J)| <= (1 + gamma(K)) |lam| |J|``) and of ``<lam, J c>``.  Used only where
  the centred weights are below half the usual ones in total (elsewhere the float64
  correction costs more than it saves).
* Sparse rows at the start: a linear start node's product ``lam J`` has at most ``k``
  non-zero products per entry where each row of ``lam`` has ``k`` non-zero entries (the
  one-hot rows of an intermediate bound, the few entries of a spec row); zero products
  and additions of zero are exact, so ``gamma(min(k, K) + 2)`` replaces ``gamma(K)`` (for
  the bias's dot product too, since ``K <= n + 3`` for LINEAR).
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
* ``beta`` and ``err`` are accumulated in float64 from the working-dtype terms.  Each
  term of ``err`` is a dot product of ``n`` non-negative products (``n`` at most the
  largest node of the pass) whose factors went through at most
  :data:`~hybridver.numerics.ERR_OWN_ROUNDINGS` roundings (casts to the working dtype,
  the products inside the relaxations' weights), so the computed term is at least
  ``(1 - gamma(n + ERR_OWN_ROUNDINGS))`` times the exact one: ``err`` is multiplied by
  ``1 + 2 gamma(n + ERR_OWN_ROUNDINGS)`` (``>= 1 / (1 - gamma)`` while ``gamma <= 1/2``;
  ``gamma <= 1/4`` is checked), which also covers its float64 accumulation.  The float64
  accumulation of ``beta`` is covered by ``gamma_64(count) * sum |terms|``.

The float64 magnitudes ``M`` come from interval bounds with outward rounding
(:mod:`hybridver.bounds.intervals`), and ``|J_i| M_i`` is evaluated in float64 (relative
error far below the factor 2).  Constant subexpressions are taken at their float64 value,
as the IR's reference evaluation does (``simplify`` folds them anyway).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from hybridver.bounds.backward import RuleTable, Walk, linear_backward, walk
from hybridver.bounds.linear_transposes import unbroadcast
from hybridver.bounds.plan import NodeKind
from hybridver.bounds.state import BoundState, Relaxed, SplitConstraints
from hybridver.ir.ops import OpKind
from hybridver.numerics import ERR_OWN_ROUNDINGS, U64, gamma

Tensor = torch.Tensor


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




class _CrownRules(RuleTable):
    """CROWN's rules: the running sums of the module docstring's invariant (``total`` and
    ``abs_terms`` of the constant terms, ``err`` of the rounding errors, ``count`` terms)."""

    def __init__(self, state: BoundState, total: Tensor, zeros: Tensor, overrides: Mapping[str, Relaxed],
                 splits: Mapping[str, tuple[Tensor, SplitConstraints]],
                 capture: dict[str, Tensor] | None):
        super().__init__(state.plan, {NodeKind.INPUT: self.concretize,
                                      NodeKind.LEAF: self.concretize,
                                      NodeKind.LINEAR: self.linear,
                                      NodeKind.UNARY: self.relaxed,
                                      NodeKind.BINARY: self.relaxed},
                         state.config.deadline)
        self.state, self.overrides, self.splits, self.capture = state, overrides, splits, capture
        self.start: str | None = None
        self.total = total
        self.abs_terms = total.abs()
        self.err = zeros
        self.count = 1

    def kind(self, name: str) -> NodeKind:
        return self.state.kind(name)

    def add_term(self, term: Tensor | None) -> None:
        if term is not None:
            term = term.double()
            self.total = self.total + term
            self.abs_terms = self.abs_terms + term.abs()
            self.count += 1

    def summed(self, name: str, total: Tensor) -> None:
        self.err = self.err + self.state.g(1) * _dot(total.abs(), self.state.mag_w(name)).double()

    def enter(self, name: str, pending: Walk) -> None:
        if name in self.splits:  # beta-CROWN: add the split constraints' Lagrangian terms
            multipliers, sc = self.splits[name]
            delta = sc.project(multipliers)
            pending.push(name, delta)
            value, error = _split_constant(delta, sc)
            self.total = self.total + value
            self.abs_terms = self.abs_terms + value.abs()
            self.err = self.err + error
            self.count += 1

    def concretize(self, name: str, lam_v: Tensor) -> list[tuple[str, Tensor]]:
        """The input or a LEAF over its box: ``<lam+, l> + <lam-, u>``."""
        state = self.state
        if self.capture is not None and name == self.plan.input:
            self.capture[name] = lam_v.detach()
        size = self.plan.graph.node(name).size
        if not state.exact_box(name):
            lo, hi = state.work(name)
            mag = state.mag_w(name)
            p_lo, p_mag = _dots(lam_v.clamp(min=0), lo, mag)
            n_hi, n_mag = _dots(lam_v.clamp(max=0), hi, mag)
            self.err = self.err + state.g(size + 3) * (p_mag - n_mag).double()
            self.add_term(p_lo + n_hi)
            return []
        itv = state.intervals[name]
        lam64 = lam_v.double()
        mag = state.mag(name)
        p_lo, p_mag = _dots(lam64.clamp(min=0), itv.lower, mag)
        n_hi, n_mag = _dots(lam64.clamp(max=0), itv.upper, mag)
        self.err = self.err + gamma(size + 3, U64) * (p_mag - n_mag)
        self.add_term(p_lo + n_hi)
        return []

    def _sparse_start(self, lam_v: Tensor, fan: int) -> Tensor:
        """``gamma(min(k, fan - 2) + 3) / gamma(fan)`` (at most 1) per row ``(m, N)``, ``k``
        the row's non-zero coefficients (module docstring, "sparse rows")."""
        m, n = lam_v.shape[:2]
        k = torch.count_nonzero(lam_v.detach().reshape(m, n, -1), dim=-1).clamp(max=fan - 2) + 3
        ku = k.double() * self.state.unit
        return (ku / (1.0 - ku) / self.state.g(fan)).clamp(max=1.0)

    def linear(self, name: str, lam_v: Tensor) -> list[tuple[str, Tensor]]:
        rule = self.plan.rules[name]
        node = self.plan.graph.node(name)
        out = [(node.inputs[pos], contribution)
               for pos, contribution in zip(rule.var_pos,
                                            linear_backward(rule, lam_v, self.deadline))]
        self.add_term(_dot(lam_v, rule.bias) if rule.bias is not None else None)
        centred = self.state.centred(name) if self.state.config.centred_products else None
        err = _dot(lam_v.abs(), self.state.q[name] if centred is None else centred[3]).double()
        if name == self.start and node.op is OpKind.LINEAR:
            err = err * self._sparse_start(lam_v, rule.fan)
        if centred is not None:  # module docstring, "centred products"
            c, jc, s, _ = centred
            lam64 = lam_v.double()
            self.add_term(_dot(lam64, jc) - _dot(out[0][1].double(), c))
            err = err + _dot(lam64.abs(), s)
        self.err = self.err + err
        return out

    def relaxed(self, name: str, lam_v: Tensor) -> list[tuple[str, Tensor]]:
        """``lam+ * lower_slope + lam- * upper_slope`` to the operands, the biases to
        ``total``."""
        graph = self.plan.graph
        node = graph.node(name)
        relaxed = self.overrides.get(name) or self.state.relaxed[name]
        positive, negative = lam_v.clamp(min=0), lam_v.clamp(max=0)
        p_bias, p_err = _dots(positive, relaxed.bias_lower, relaxed.q)
        n_bias, n_err = _dots(negative, relaxed.bias_upper, relaxed.q)
        self.err = self.err + (p_err - n_err).double()
        self.add_term(p_bias + n_bias)
        out = []
        for pos, (lower, upper) in relaxed.coefs.items():
            src = node.inputs[pos]
            contribution = positive * lower + negative * upper
            out.append((src, unbroadcast(contribution, graph.node(src).shape)))
        return out


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
    Returns float64 ``(m, N)``, rounding accounted for (module docstring).  Raises
    :class:`~hybridver.errors.DeadlineExceeded` past ``state.config.deadline``.
    """
    m, n = lam.shape[:2]
    zeros = torch.zeros((m, n), dtype=torch.float64, device=state.device)
    total = zeros if beta is None else beta.to(torch.float64)
    rules = _CrownRules(state, total, zeros, overrides or {}, splits or {}, capture)
    rules.start = start
    if not exact_start:
        rules.err = rules.err + state.g(1) * _dot(lam.abs(), state.mag_w(start)).double()
    walk(rules, start, lam)
    own = 1.0 + 2.0 * state.g(state.plan.max_node_size(start) + ERR_OWN_ROUNDINGS)
    return rules.total - own * rules.err - gamma(rules.count + 2, U64) * rules.abs_terms
