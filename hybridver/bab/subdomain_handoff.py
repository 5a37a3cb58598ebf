"""Hand-off of hard activation-splitting domains to exact back ends through the scheduler.

A domain of activation splitting is the case's input box (or its own sub-box) intersected
with its split decisions ``z_j <= p`` / ``z_j >= p`` on pre-activation neurons.  When the
scheduler has a free slot, :meth:`SubdomainHandOff.take` looks at the open domains of the
batch just bounded that are at least ``min_depth`` decisions deep, cheapest first (fewest
unstable ReLUs), and turns each into one :class:`~hybridver.problem.Subproblem` per
disjunct its bound has not refuted:

* ``box``: the domain's input box, tightened by its first-layer decisions (a superset of
  the domain's inputs: the tightening is sound);
* ``node_bounds``: the bound engine's intervals on the domain, intersected with the
  domain's restriction intervals (each decision is a restriction end);
* ``relu_splits``: the decisions at 0 on ReLU-like neurons (``+1`` active, ``-1``
  inactive), also expressed by the bounds; the MILP then makes those neurons linear.

It asks the scheduler's policy about each (features: unstable ReLUs left, smooth ops,
depth, the bound gap, its trend over the last split, time left); a domain whose every
disjunct the policy runs is not split (the strategy leaves it out) and counts as open
until :meth:`collect` reports it.  Its jobs go to the scheduler as slots free up, the
disjunct with the lowest bound first (a robustness property has one disjunct per other
label, more than the workers); no new domain is taken while jobs wait.  Then:

* proven: every disjunct came back INFEASIBLE (a back end's proof);
* counterexample: a CANDIDATE that ``confirm`` (the real model) accepted;
* returned: anything else (timeout, unknown, an unconfirmed candidate): the domain goes
  back to branch-and-bound (bounded and split again) and is not handed off again.  A
  subproblem no back end can encode stops the hand-off for the rest of the search.

Soundness: nothing here proves anything by itself.  Every input of the domain lies in the
box, satisfies the decisions, and has node values inside the engine's intervals (they are
sound on the box restricted by the decisions), so each subproblem contains every input of
the domain with its true activations; INFEASIBLE is the back end's (status checked there);
a counterexample is confirmed on the real model.  A point outside the domain that a back
end returns is still confirmed against the whole case before it counts.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from hybridver.bab.handoff import drain_finished
from hybridver.bab.input_split import per_disjunct_margins
from hybridver.bab.neuron_domains import NeuronBatch
from hybridver.ir.ops import OpKind
from hybridver.problem import Subproblem
from hybridver.schedule import Action, Scheduler, SubproblemFeatures
from hybridver.specs import InputBox, OutputConstraints

#: ``confirm(point (n_in,), predicted_y or None) -> True when the real model confirms it``
ConfirmFn = Callable[[np.ndarray, np.ndarray | None], bool]


@dataclasses.dataclass(frozen=True)
class SubdomainHandoffConfig:
    """``min_depth``: domains with fewer decisions stay in BaB; ``candidates``: open
    domains of a batch the policy is asked about per free slot; ``stagnation``: a split
    that closed less than this share of its parent's gap (``-margin``) marks the domain's
    bound as stagnating (a feature of the policy)."""

    min_depth: int = 3
    candidates: int = 2
    stagnation: float = 0.1

    def __post_init__(self) -> None:
        if self.min_depth < 0 or self.candidates < 1 or not self.stagnation >= 0:
            raise ValueError("min_depth >= 0, candidates >= 1 and stagnation >= 0")


@dataclasses.dataclass
class _Delegated:
    batch: NeuronBatch           # one domain, as it was before bounding
    waiting: int                 # disjuncts not yet finished (pending or running)
    pending: list                # (Subproblem, Decision) not yet submitted
    failed: bool = False


class SubdomainHandOff:
    """The :class:`~hybridver.bab_core.HandOff` of activation splitting (module docstring).

    ``scheduler``: makes the scheduler on first use, which is not before ``start_at`` (a
    ``time.monotonic()`` value); ``disjuncts``: the case's :class:`OutputConstraints`, in
    the order of the search's ``groups``; ``deadline``: the search's.
    """

    def __init__(self, scheduler: Callable[[], Scheduler], graph,
                 disjuncts: Sequence[OutputConstraints], confirm: ConfirmFn, deadline: float,
                 config: SubdomainHandoffConfig = SubdomainHandoffConfig(), label: str = "",
                 start_at: float = 0.0):
        self._make_scheduler, self.graph = scheduler, graph
        self.disjuncts, self.confirm, self.deadline = tuple(disjuncts), confirm, deadline
        self.config, self.label, self.start_at = config, label, start_at
        self._scheduler: Scheduler | None = None
        self._open: dict[int, _Delegated] = {}
        self._tickets: dict[int, list] = {}    # domain id -> its tickets
        self._domain_of: dict[int, int] = {}   # ticket id -> domain id
        self._returned: set[bytes] = set()
        self._next_id = 0
        self._taken = 0                        # since the last offer()
        self.disabled = _unencodable(graph)    # why the hand-off stopped, if it did

    @property
    def scheduler(self) -> Scheduler:
        if self._scheduler is None:
            self._scheduler = self._make_scheduler()
        return self._scheduler

    # ------------------------------------------------------------------ the strategy's call
    def take(self, strategy, bounded) -> set[int]:
        """Rows of ``bounded`` (the strategy's bounded batch) handed off: the strategy does
        not split them.  Never raises: a failure stops the hand-off, nothing is taken."""
        if self.disabled or time.monotonic() < self.start_at or not bounded.open_idx.numel():
            return set()
        try:
            return self._take(strategy, bounded)
        except Exception as exc:  # noqa: BLE001 - e.g. a worker that cannot start
            self.disabled = f"hand-off stopped: {type(exc).__name__}: {exc}"
            return set()

    def _take(self, strategy, b) -> set[int]:
        self._pump()
        if self.scheduler.free_slots <= 0 or any(e.pending for e in self._open.values()):
            return set()
        rows = [i for i in b.open_idx.tolist() if len(b.domains[i]) >= self.config.min_depth]
        if not rows:
            return set()
        unstable = _unstable_counts(strategy, b, rows)
        order = [rows[j] for j in np.argsort(unstable, kind="stable")]
        taken: set[int] = set()
        for i in order[: self.config.candidates * self.scheduler.free_slots]:
            if self.scheduler.free_slots <= 0 or any(e.pending for e in self._open.values()):
                break
            if _key(b.domains[i], b.boxes[i]) not in self._returned and \
                    self._submit(strategy, b, i):
                taken.add(i)
        self._taken += len(taken)
        return taken

    def _submit(self, strategy, b, i: int) -> bool:
        """Ask the policy about domain ``i`` (one subproblem per open disjunct); take the
        domain when it runs all of them.  The jobs are submitted as slots free up, the
        disjunct with the lowest bound first (the likeliest to fail, which ends the
        domain's hand-off early)."""
        problems = domain_subproblems(strategy, b, i, self.graph, self.disjuncts,
                                      f"{self.label} domain {self._next_id}")
        if not problems:
            return False
        domain_id = self._next_id
        self._next_id += 1
        parent, margin = float(b.parents[i]), float(b.margin[i])
        trend = margin - parent if np.isfinite(parent) else None
        stagnated = trend is not None and parent < 0 and \
            trend < self.config.stagnation * -parent
        plans = []
        for k, problem in problems:
            gap = float(per_disjunct_margins(b.res.lower[i:i + 1].cpu(), strategy.groups)[0, k])
            features = SubproblemFeatures.of(problem, gap=gap, depth=len(b.domains[i]),
                                             time_left_s=self.deadline - time.monotonic(),
                                             stagnated=stagnated, gap_trend=trend)
            decision = self.scheduler.consider(problem, features)
            if decision.action is not Action.RUN:
                return False
            plans.append((gap, k, problem, decision))
        plans.sort(key=lambda p: (p[0], p[1]))
        self._tickets[domain_id] = []
        self._open[domain_id] = _Delegated(
            NeuronBatch([b.domains[i]], [b.boxes[i]], [parent]), len(plans),
            [(problem, decision) for _, _, problem, decision in plans])
        self._pump()
        return True

    def _pump(self) -> None:
        """Submit pending jobs while the scheduler has free slots; a job it refuses (too
        little time or budget left) fails its domain."""
        for domain_id, entry in self._open.items():
            while entry.pending and not entry.failed and self.scheduler.free_slots > 0:
                problem, decision = entry.pending.pop(0)
                ticket = self.scheduler.submit(problem, decision, tag=domain_id)
                if ticket is None:
                    entry.pending.insert(0, (problem, decision))
                    self._fail(domain_id, entry)
                    break
                self._tickets[domain_id].append(ticket)
                self._domain_of[ticket.ticket_id] = domain_id

    def _on_failure(self, domain_id: int, entry: _Delegated, outcome) -> None:
        """An outcome that is not a proof: the domain goes back (once); a back end that
        cannot encode the graph stops the hand-off."""
        if outcome.solver_status == "not encodable" and not self.disabled:
            self.disabled = f"hand-off stopped: {outcome.message}"
        if not entry.failed:
            self._fail(domain_id, entry)

    def _fail(self, domain_id: int, entry: _Delegated) -> None:
        """The domain goes back: its running jobs are cancelled (each still reports), its
        pending ones dropped."""
        entry.failed = True
        entry.waiting -= len(entry.pending)
        entry.pending.clear()
        for ticket in self._tickets[domain_id]:
            self.scheduler.cancel(ticket)

    # ------------------------------------------------------------------ HandOff protocol
    def offer(self, deadline: float) -> int:
        """Domains taken since the last call (they are taken in the strategy's branch)."""
        taken, self._taken = self._taken, 0
        return taken

    def collect(self) -> tuple[list[NeuronBatch], np.ndarray | None, int]:
        returned: list[NeuronBatch] = []
        proven = 0
        if self._scheduler is None or not self._open:
            return returned, None, proven
        found = drain_finished(self.scheduler, self._domain_of, self._open, self.confirm,
                               self._on_failure)
        if found is not None:
            return [], found, proven
        for domain_id, entry in list(self._open.items()):   # refused submissions included
            if entry.waiting == 0:
                del self._open[domain_id]
                del self._tickets[domain_id]
                if entry.failed:
                    self._returned.add(_key(entry.batch.domains[0], entry.batch.boxes[0]))
                    returned.append(entry.batch)
                else:
                    proven += 1
        self._pump()
        return returned, None, proven

    def outstanding(self) -> int:
        return len(self._open)

    def wait(self, deadline: float) -> None:
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        """Cancel the jobs still running (the search has ended)."""
        if self._scheduler is not None:
            for tickets in self._tickets.values():
                for ticket in tickets:
                    self._scheduler.cancel(ticket)


def domain_subproblems(strategy, b, i: int, graph, disjuncts: Sequence[OutputConstraints],
                       label: str) -> list[tuple[int, Subproblem]]:
    """``(disjunct index, Subproblem)`` of open domain ``i`` of the bounded batch ``b`` for
    every disjunct its bound has not refuted (see the module docstring for what each
    carries); [] when the intersected bounds are empty (the domain has no input)."""
    box = InputBox(np.asarray(b.blo[i], dtype=np.float64), np.asarray(b.bhi[i], dtype=np.float64))
    bounds = {}
    for name, itv in b.res.intervals.items():
        if name in graph:
            bounds[name] = (_row(itv.lower, i), _row(itv.upper, i))
    for name, (rlo, rhi) in b.restr.items():
        if name not in graph:
            continue
        rlo, rhi = _row(rlo, i), _row(rhi, i)
        lo, hi = bounds.get(name, (np.full(rlo.size, -np.inf), np.full(rhi.size, np.inf)))
        bounds[name] = (np.maximum(lo, rlo), np.minimum(hi, rhi))
    if any(np.any(lo > hi) for lo, hi in bounds.values()):
        return []
    splits: dict[str, np.ndarray] = {}
    for ci, flat, upper, point in b.domains[i]:
        cand = strategy.cands[ci]
        if point != 0.0 or cand.act not in graph or \
                not strategy.plan.relaxations[cand.act].traits.piecewise_linear:
            continue
        split = splits.setdefault(cand.act, np.zeros(cand.size, dtype=np.int8))
        split[flat] = -1 if upper else 1
    margins = per_disjunct_margins(b.res.lower[i:i + 1].cpu(), strategy.groups)[0].tolist()
    return [(k, Subproblem(graph, box, disjunct, bounds, splits, disjunct=k,
                           label=f"{label} disjunct {k}"))
            for k, disjunct in enumerate(disjuncts) if not margins[k] > 0]


def _unstable_counts(strategy, b, rows: list[int]) -> np.ndarray:
    """Unstable ReLU-like neurons ``(len(rows),)`` of the domains: ``lo < 0 < hi`` on the
    engine's intervals intersected with the restrictions."""
    idx = torch.as_tensor(rows)
    count = np.zeros(len(rows), dtype=np.int64)
    for cand in strategy.cands:
        if not strategy.plan.relaxations[cand.act].traits.piecewise_linear:
            continue
        itv = b.res.intervals.get(cand.pre)
        if itv is None:
            continue
        lo, hi = _rows(itv.lower, idx), _rows(itv.upper, idx)
        if cand.pre in b.restr:
            rlo, rhi = b.restr[cand.pre]
            lo, hi = torch.maximum(lo, _rows(rlo, idx)), torch.minimum(hi, _rows(rhi, idx))
        count += ((lo < 0) & (hi > 0)).sum(dim=1).numpy()
    return count


def _unencodable(graph) -> str:
    """Why no exact back end can encode a subproblem of ``graph`` ("" when they can):
    the encoders (``encode/affine_form.py``) have no rule for softmax or for a product
    of two variable matrices, so such jobs would only come back UNKNOWN."""
    for node in graph.nodes():
        if node.op is OpKind.SOFTMAX or (node.op is OpKind.MATMUL and all(
                graph.node(i).op is not OpKind.CONSTANT for i in node.inputs)):
            return (f"hand-off off: {node.op.value} node '{node.name}' has no MILP/SMT "
                    "encoding")
    return ""


def _row(t: torch.Tensor, i: int) -> np.ndarray:
    """Domain ``i``'s row of a batched tensor ``(N or 1, ...)``, flat float64."""
    return t[i if t.shape[0] > 1 else 0].reshape(-1).cpu().numpy().astype(np.float64)


def _rows(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` of a batched tensor ``(N or 1, ...)``, flattened ``(len(idx), -1)``."""
    t = t.cpu()
    t = t[idx] if t.shape[0] > 1 else t[[0] * len(idx)]
    return t.reshape(len(idx), -1)


def _key(decisions: tuple, box: tuple | None) -> bytes:
    parts = [repr(decisions).encode()]
    if box is not None:
        parts += [np.asarray(box[0]).tobytes(), np.asarray(box[1]).tobytes()]
    return b"|".join(parts)
