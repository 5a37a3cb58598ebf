"""An exact back end racing activation-splitting branch-and-bound on a whole case.

For high-dimensional inputs the sub-domains of activation splitting are not boxes, so they
are not handed off one by one; instead, when branch-and-bound starts on a case, each of
its disjuncts goes to the scheduler as one :class:`~hybridver.problem.Subproblem` over the
case's box, with CROWN bounds tightened by LPs (HiGHS) as node bounds, and runs in a worker
process while branch-and-bound goes on in this one.  Whichever side decides first wins
(on mnist_fc 256x2, exact mode decides instances that activation splitting leaves open,
and the other way round).

:meth:`CaseRace.poll` says "proven" once every disjunct came back INFEASIBLE (each a
back end's proof over the whole box: the case holds), "counterexample" once a CANDIDATE
was confirmed by ``confirm`` on the real model, "failed" when some disjunct ended any other
way (the race is over, branch-and-bound goes on alone), or None while jobs run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from hybridver.backends.base import Status
from hybridver.problem import Subproblem
from hybridver.schedule import Action, Decision, Scheduler, SubproblemFeatures

#: ``confirm(point (n_in,), predicted_y or None) -> True when the real model confirms it``
ConfirmFn = Callable[[np.ndarray, np.ndarray | None], bool]


class CaseRace:
    """One case's disjuncts on exact back ends (see the module docstring)."""

    def __init__(self, scheduler: Scheduler, problems: Sequence[Subproblem],
                 margins: Sequence[float], confirm: ConfirmFn, backend: str | None = None):
        self.backend = backend
        self.scheduler, self.problems = scheduler, tuple(problems)
        self.margins, self.confirm = tuple(margins), confirm
        self.tickets: list = []
        self.state: str | None = None
        self._waiting = 0
        self.decisions: list[str] = []

    def start(self, deadline: float) -> bool:
        """Ask the policy about every disjunct not already refuted (``margins[k] > 0``);
        submit them all if it runs each of them, else nothing.  True when started.  With
        ``backend`` set, the policy is not asked: each job runs on that back end with the
        time left as its budget."""
        plans = []
        for problem, margin in zip(self.problems, self.margins):
            if margin > 0:
                continue
            if self.backend is not None:
                decision = Decision(Action.RUN, (self.backend,),
                                    max(0.0, deadline - time.monotonic()),
                                    f"{self.backend} races branch-and-bound on the case")
                self.decisions.append(decision.choice)
                plans.append((problem, decision))
                continue
            features = SubproblemFeatures.of(problem, gap=margin, stagnated=True,
                                             time_left_s=deadline - time.monotonic())
            decision = self.scheduler.consider(problem, features)
            self.decisions.append(decision.choice)
            if decision.action is not Action.RUN:
                return False
            plans.append((problem, decision))
        if not plans:
            return False
        for problem, decision in plans:
            ticket = self.scheduler.submit(problem, decision, tag=id(self))
            if ticket is None:
                self.cancel()
                return False
            self.tickets.append(ticket)
        self._waiting = len(self.tickets)
        return True

    def poll(self) -> str | None:
        """"proven", "counterexample", "failed" or None (still running)."""
        if self.state is not None or not self.tickets:
            return self.state
        # only this race's own tickets (a tag such as id(self) can be reused by a later
        # race once this one is freed, and other users share the scheduler)
        for done in self.scheduler.collect(t.ticket_id for t in self.tickets):
            self._waiting -= 1
            outcome = done.outcome
            if outcome.status is Status.CANDIDATE and outcome.candidate is not None and \
                    self.confirm(outcome.candidate.x, outcome.candidate.predicted_y):
                self.state = "counterexample"
                break
            if outcome.status is not Status.INFEASIBLE:
                self.state = "failed"
                break
        if self.state is None and self._waiting == 0:
            self.state = "proven"
        if self.state in ("counterexample", "failed"):
            self.cancel()
        return self.state

    def cancel(self) -> None:
        for ticket in self.tickets:
            self.scheduler.cancel(ticket)
