"""Branching sensitivities: how much a linear bound of a spec row depends on each node.

A second rule table over the backward walk (:mod:`hybridver.bounds.backward`), next to
CROWN's: the critical row ``rows_C (N, n_out)`` of each subdomain is pushed back through
the transposed linear rules and the relaxations' slopes on the subdomains' intervals
(``lambda+ * lower_slope + lambda- * upper_slope``), with no biases and no rounding
analysis.  The answer, ``|lambda|`` at chosen nodes and the signed coefficients at the
input, steers branching (BaBSR's ``|lambda| * intercept``, input splits, attack starts);
it has no soundness role.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import NoReturn

import torch

from hybridver.bounds.backward import RuleTable, linear_backward, walk
from hybridver.bounds.intervals import Interval
from hybridver.bounds.linear_transposes import unbroadcast
from hybridver.bounds.plan import GraphPlan, NodeKind

Tensor = torch.Tensor


@dataclasses.dataclass(frozen=True)
class Sensitivities:
    """``magnitudes``: node name -> ``|lambda|`` ``(N, node.size)``, for each asked node
    (and the input) that the walk reached; ``signed_input``: ``lambda`` ``(N, n_in)`` at
    the input (the slopes of the row's linear bound over the box), None if not reached."""

    magnitudes: dict[str, Tensor]
    signed_input: Tensor | None


class _NoRule(Exception):
    """The walk reached a node kind without a rule here."""


class _SensitivityRules(RuleTable):
    def __init__(self, plan: GraphPlan, intervals: Mapping[str, Interval], n: int,
                 wanted: set[str], deadline: float | None):
        super().__init__(plan, {NodeKind.INPUT: self.input,
                                NodeKind.LINEAR: self.linear,
                                NodeKind.UNARY: self.unary,
                                NodeKind.BINARY: self.binary}, deadline)
        self.intervals, self.n, self.wanted = intervals, n, wanted
        self.magnitudes: dict[str, Tensor] = {}
        self.signed_input: Tensor | None = None

    def missing(self, name: str, kind: NodeKind) -> NoReturn:
        raise _NoRule(name)

    def record(self, name: str, lam: Tensor) -> None:
        if name in self.wanted:
            self.magnitudes[name] = lam.abs().reshape(self.n, -1)

    def input(self, name: str, lam: Tensor) -> list[tuple[str, Tensor]]:
        self.record(name, lam)
        self.signed_input = lam.reshape(self.n, -1)
        return []

    def linear(self, name: str, lam: Tensor) -> list[tuple[str, Tensor]]:
        self.record(name, lam)
        rule = self.plan.rules[name]
        node = self.plan.graph.node(name)
        return [(node.inputs[pos], contrib)
                for pos, contrib in zip(rule.var_pos,
                                        linear_backward(rule, lam, self.deadline))]

    def unary(self, name: str, lam: Tensor) -> list[tuple[str, Tensor]]:
        self.record(name, lam)
        src = self.plan.graph.node(name).inputs[0]
        itv = self.intervals[src]
        lb = self.plan.relaxations[name].bounds(itv.lower, itv.upper, self.plan.attrs[name])
        c = lam.clamp(min=0) * lb.lower_slope + lam.clamp(max=0) * lb.upper_slope
        return [(src, torch.nan_to_num(c, nan=0.0, posinf=0.0, neginf=0.0))]

    def binary(self, name: str, lam: Tensor) -> list[tuple[str, Tensor]]:
        self.record(name, lam)
        plan, n = self.plan, self.n
        node = plan.graph.node(name)
        ops = []
        for s in node.inputs:
            itv = self.intervals[s]
            ops.append((torch.broadcast_to(itv.lower, (n, *node.shape)),
                        torch.broadcast_to(itv.upper, (n, *node.shape))))
        bb = plan.relaxations[name].bounds(ops[0][0], ops[0][1], ops[1][0], ops[1][1],
                                           plan.attrs[name])
        pos_l, neg_l = lam.clamp(min=0), lam.clamp(max=0)
        contribs: dict[str, Tensor] = {}   # x * x: both operands' terms summed first
        for s, lo_s, up_s in ((node.inputs[0], bb.lower_x, bb.upper_x),
                              (node.inputs[1], bb.lower_y, bb.upper_y)):
            if s in plan.variable:
                c = unbroadcast(pos_l * lo_s + neg_l * up_s, plan.graph.node(s).shape)
                contribs[s] = contribs[s] + c if s in contribs else c
        return [(s, torch.nan_to_num(c, nan=0.0, posinf=0.0, neginf=0.0))
                for s, c in contribs.items()]


def branching_sensitivities(plan: GraphPlan, intervals: Mapping[str, Interval],
                            rows_C: Tensor, nodes: Iterable[str],
                            deadline: float | None = None) -> Sensitivities | None:
    """One backward walk of ``rows_C (N, n_out)`` (one spec row per subdomain) from the
    output, with the relaxations' slopes on ``intervals`` (node -> ``(N or 1, *shape)``).

    ``nodes``: where to report ``|lambda|`` (the input always is).  Returns None when the
    walk meets a node kind without a rule here (an unsupported node).  Raises
    :class:`~hybridver.errors.DeadlineExceeded` past ``deadline``.
    """
    graph = plan.graph
    n = rows_C.shape[0]
    rules = _SensitivityRules(plan, intervals, n, set(nodes) | {plan.input}, deadline)
    lam = rows_C.reshape(1, n, *graph.output_node.shape).to(plan.dtype)
    try:
        walk(rules, plan.output, lam)
    except _NoRule:
        return None
    return Sensitivities(rules.magnitudes, rules.signed_input)
