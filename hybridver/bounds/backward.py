"""One backward walk over a graph plan; what happens at each node is a rule table.

:func:`walk` visits ``start`` and its variable ancestors in reverse topological order
(:meth:`~hybridver.bounds.plan.GraphPlan.cone`).  Each node ``v`` collects coefficients
``lam_v: (m, N, *v.shape)`` from its consumers (several contributions are summed: fan-out,
residual adds); when ``v`` is visited, the rule of its
:class:`~hybridver.bounds.plan.NodeKind` turns ``lam_v`` into contributions to its
operands.  An analysis is a :class:`RuleTable`: CROWN's sound back-substitution
(:mod:`hybridver.bounds.crown`) and the branching sensitivities
(:mod:`hybridver.bounds.sensitivity`) are two tables over this one walk.

The walk checks its table's deadline at every visited node and raises
:class:`~hybridver.errors.DeadlineExceeded` once it has passed.  One node can be slow (a
transposed convolution of thousands of rows takes seconds on a CPU), so with a deadline
the rules push through linear nodes with :func:`linear_backward`, which cuts the rows into
pieces of bounded work and checks the deadline between them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import NoReturn

import torch

from hybridver.bounds.intervals import UnsupportedBoundError
from hybridver.bounds.linear_ops import LinearRule
from hybridver.bounds.plan import GraphPlan, NodeKind
from hybridver.errors import DeadlineExceeded

Tensor = torch.Tensor
#: ``rule(name, lam_v) -> [(operand name, contribution), ...]``, pushed in that order
Rule = Callable[[str, Tensor], list[tuple[str, Tensor]]]


def check_deadline(deadline: float | None) -> None:
    """Raise :class:`DeadlineExceeded` when ``time.monotonic()`` is past ``deadline``
    (None: no deadline)."""
    if deadline is not None and time.monotonic() > deadline:
        raise DeadlineExceeded("the bound computation passed its deadline")


#: multiply-adds per piece of :func:`linear_backward` (about 0.1 s on one CPU core)
PIECE_MACS = 1 << 28
#: the same on an accelerator, where small pieces would cost launches, not time
PIECE_MACS_ACCELERATOR = 1 << 36


def linear_backward(rule: LinearRule, lam: Tensor, deadline: float | None) -> list[Tensor]:
    """``rule.backward(lam)``; with a deadline, in pieces of the ``m`` rows of
    ``lam (m, N, *shape)`` of at most :data:`PIECE_MACS` multiply-adds each, with the
    deadline checked before every piece.

    No deadline: exactly ``rule.backward(lam)``.  With one, each row's coefficients are
    computed from that row alone either way (bitwise the same for the convolutions on a
    CPU; a large dense layer's BLAS may sum a row in another order, which the rounding
    analysis of :mod:`hybridver.bounds.crown` covers like any order).
    """
    if deadline is None:
        return rule.backward(lam)
    m, n = lam.shape[:2]
    sizes = sum(math.prod(rule.shapes[p]) for p in rule.var_pos)
    budget = PIECE_MACS if lam.device.type == "cpu" else PIECE_MACS_ACCELERATOR
    rows = max(1, budget // max(1, rule.fan * n * sizes))
    if rows >= m:
        check_deadline(deadline)
        return rule.backward(lam)
    pieces = []
    for start in range(0, m, rows):
        check_deadline(deadline)
        pieces.append(rule.backward(lam[start:start + rows]))
    return [torch.cat([piece[i] for piece in pieces]) for i in range(len(pieces[0]))]


class RuleTable:
    """What a backward walk does at each node; one subclass per analysis.

    ``rules``: node kind -> :data:`Rule`; ``deadline``: a ``time.monotonic()`` value or
    None, checked at every visited node (and by rules that use :func:`linear_backward`).  The hooks: :meth:`kind` (the kind a node is
    treated as), :meth:`enter` (before a node is visited; may :meth:`Walk.push`),
    :meth:`summed` (a node's pending coefficients just became a sum of contributions)
    and :meth:`missing` (a visited node whose kind has no rule).
    """

    def __init__(self, plan: GraphPlan, rules: Mapping[NodeKind, Rule],
                 deadline: float | None = None):
        self.plan = plan
        self.rules = rules
        self.deadline = deadline

    def kind(self, name: str) -> NodeKind:
        return self.plan.kind[name]

    def enter(self, name: str, walk: "Walk") -> None:
        """Called for every node of the cone before it is visited."""

    def summed(self, name: str, total: Tensor) -> None:
        """Called after a contribution was added to the pending coefficients of ``name``."""

    def missing(self, name: str, kind: NodeKind) -> NoReturn:
        raise UnsupportedBoundError(self.plan.unsupported.get(name, f"no rule for '{name}'"))


class Walk:
    """The pending coefficients of one walk: node name -> ``(m, N, *shape)``."""

    def __init__(self, table: RuleTable, start: str, lam: Tensor):
        self.table = table
        self.pending: dict[str, Tensor] = {start: lam}

    def push(self, name: str, contribution: Tensor) -> None:
        """Add ``contribution`` to the coefficients of ``name`` (not yet visited)."""
        if name in self.pending:
            total = self.pending[name] + contribution
            self.table.summed(name, total)
            self.pending[name] = total
        else:
            self.pending[name] = contribution


def walk(table: RuleTable, start: str, lam: Tensor) -> None:
    """Walk backward from ``start`` with coefficients ``lam: (m, N, *start.shape)``,
    applying ``table`` at every node that receives coefficients.

    Raises :class:`DeadlineExceeded` at the first node visited after ``table.deadline`` and
    whatever :meth:`RuleTable.missing` raises at a node without a rule.
    """
    state = Walk(table, start, lam)
    for name in table.plan.cone(start):
        table.enter(name, state)
        lam_v = state.pending.pop(name, None)
        if lam_v is None:
            continue
        check_deadline(table.deadline)
        kind = table.kind(name)
        rule = table.rules.get(kind)
        if rule is None:
            table.missing(name, kind)
        for src, contribution in rule(name, lam_v):
            state.push(src, contribution)
