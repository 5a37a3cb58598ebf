"""The scheduler a branch-and-bound loop talks to: ask, submit, poll.

Typical use from a batched BaB loop (after bounding a batch)::

    sched = Scheduler(LocalProcessExecutor(max_workers=2), deadline=deadline)
    ...
    for domain in hardest_open_domains(limit=sched.free_slots):
        problem = domain_subproblem(domain)                 # Subproblem with node bounds
        feats = SubproblemFeatures.of(problem, gap=domain.lower, upper=domain.centre_margin,
                                      depth=domain.depth, time_left_s=deadline - now,
                                      stagnated=domain.stagnated)
        decision = sched.consider(problem, feats)           # logged
        if decision.action is Action.RUN:
            sched.submit(problem, decision, tag=domain.id)  # remove the domain from the queue
    for done in sched.poll():                               # never blocks
        if done.outcome.status is Status.INFEASIBLE:  the domain done.tag is proven
        elif done.outcome.candidate is not None:      confirm it on the real model; a
                                                       confirmed point is sat, else go on
        else:                                          put the domain back (split it)

``offer`` does the middle part for a batch.  Every submitted ticket yields exactly one
:class:`Finished` (cancelled ones too).  Soundness: the scheduler never creates an answer;
INFEASIBLE is exactly a back end's INFEASIBLE (whose solver status the back end checked),
and a CANDIDATE is only a candidate: the caller confirms it on the real model.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hybridver.backends.base import Capabilities, Limits, Outcome, Status
from hybridver.problem import Subproblem
from hybridver.schedule.executor import Executor
from hybridver.schedule.features import SubproblemFeatures
from hybridver.schedule.jobs import Job, JobHandle, JobResult
from hybridver.schedule.learned import (AUTO_PATH, LearnedPolicy, LearningConfig, load_model,
                                        resolve_model_path)
from hybridver.schedule.policy import Action, Decision, Policy
from hybridver.schedule.records import BackendStats, outcome_summary


def available_capabilities() -> dict[str, Capabilities]:
    """Declared capabilities of every registered back end whose solver is installed (this
    checks availability, which may import the solver packages)."""
    from hybridver.backends.base import backend_names, get_backend
    from hybridver.errors import SolverUnavailableError

    out = {}
    for name in backend_names():
        try:
            out[name] = get_backend(name).capabilities
        except SolverUnavailableError:
            continue
    return out


@dataclasses.dataclass(frozen=True)
class SchedulerConfig:
    """``total_budget_s``: solver seconds for all jobs together (a job's budget is reserved
    at submission, the unused part returned when it ends); ``max_queued``: jobs allowed to
    wait beyond the executor's capacity (``free_slots`` counts them); ``options``: passed
    to back ends that take options (e.g. ``MilpOptions``); ``threads``: per job;
    ``min_budget_s``: no job is submitted with less time; ``log_limit``: records kept in
    ``decision_log`` (later decisions are only counted in ``report()``); ``learning``:
    without an explicit policy, use :class:`LearnedPolicy` (else the fixed :class:`Policy`)
    with ``learned`` settings, its model read from and saved to ``model_path`` (``"auto"``:
    the user cache, see :func:`resolve_model_path`; ``""`` or None: not persisted)."""

    total_budget_s: float = math.inf
    max_queued: int = 0
    options: Any = None
    threads: int = 1
    min_budget_s: float = 0.2
    log_limit: int = 100_000
    learning: bool = True
    model_path: str | None = AUTO_PATH
    learned: LearningConfig = dataclasses.field(default_factory=LearningConfig)


@dataclasses.dataclass(frozen=True)
class Ticket:
    """One submitted subdomain (one job, or several racing ones)."""

    ticket_id: int
    label: str
    backends: tuple[str, ...]
    tag: Any = None


@dataclasses.dataclass(frozen=True, eq=False)
class Finished:
    """A ticket's result: ``outcome`` from ``backend`` (the winner of a race); ``wall_s``
    from submission; ``cancelled``: stopped by ``cancel``/``shutdown`` or the hard deadline
    (outcome UNKNOWN/TIMEOUT)."""

    ticket: Ticket
    subproblem: Subproblem
    outcome: Outcome
    backend: str
    decision: Decision
    wall_s: float
    cancelled: bool = False

    @property
    def tag(self) -> Any:
        return self.ticket.tag


@dataclasses.dataclass(eq=False)
class _Open:
    ticket: Ticket
    subproblem: Subproblem
    decision: Decision
    record: dict
    submitted: float
    budget_s: float
    handles: dict[int, JobHandle]
    features: SubproblemFeatures | None = None
    results: list[JobResult] = dataclasses.field(default_factory=list)
    winner: JobResult | None = None
    cancelled: bool = False


def _decisive(outcome: Outcome) -> bool:
    """Ends a race: INFEASIBLE, or a CANDIDATE of an exact encoding (an envelope's candidate
    may be spurious while another back end proves INFEASIBLE)."""
    if outcome.status is Status.INFEASIBLE:
        return True
    return outcome.status is Status.CANDIDATE and outcome.stats.get("exact_encoding", True)


_RANK = {Status.CANDIDATE: 0, Status.INFEASIBLE: 1, Status.UNKNOWN: 2, Status.TIMEOUT: 3,
         Status.ERROR: 4}


class Scheduler:
    """Hands hard subdomains to exact back ends through an :class:`Executor`.

    ``capabilities``: the back ends it may use (default: every available one);
    ``deadline``: a ``clock()`` time after which nothing is submitted (budgets are clipped
    to it).
    """

    def __init__(self, executor: Executor, policy: Policy | None = None,
                 config: SchedulerConfig = SchedulerConfig(),
                 capabilities: Mapping[str, Capabilities] | None = None,
                 deadline: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.executor = executor
        self.config = config
        self.model_path = resolve_model_path(config.model_path) \
            if policy is None and config.learning else None
        if policy is None:
            policy = LearnedPolicy(model=load_model(self.model_path, config.learned)) \
                if config.learning else Policy()
        self.policy = policy
        self.capabilities = dict(available_capabilities() if capabilities is None
                                 else capabilities)
        self.deadline = deadline
        self._clock = clock
        self._start = clock()
        self._tickets = itertools.count(1)
        self._open: dict[int, _Open] = {}
        self._by_job: dict[int, _Open] = {}
        # RUN decisions from consider() awaiting submit(), by identity (the value keeps the
        # decision alive, so its id is not reused); bounded, oldest dropped first
        self._pending_records: collections.OrderedDict[
            int, tuple[Decision, dict, SubproblemFeatures | None]] = collections.OrderedDict()
        self._choices: collections.Counter[str] = collections.Counter()
        self._submitted = 0
        self._stats = BackendStats()
        self._used_s = 0.0
        self._reserved_s = 0.0
        self.decision_log: list[dict[str, Any]] = []
        self.disagreements: list[dict[str, Any]] = []
        self._inbox: dict[int, Finished] = {}   # finished, not yet taken by collect()

    # ------------------------------------------------------------------ asking
    def consider(self, subproblem: Subproblem, features: SubproblemFeatures) -> Decision:
        """The policy's decision for this subdomain, logged."""
        decision = self.policy.decide(features, self.capabilities)
        record = self._record(subproblem, decision, features)
        if decision.action is Action.RUN:
            self._pending_records[id(decision)] = (decision, record, features)
            while len(self._pending_records) > 1000:
                self._pending_records.popitem(last=False)
        return decision

    @property
    def free_slots(self) -> int:
        """How many more tickets can start (or wait, per ``max_queued``) right now."""
        busy = len(self._by_job)   # jobs still running, losers of decided races included
        return max(0, self.executor.capacity + self.config.max_queued - busy)

    @property
    def budget_left_s(self) -> float:
        left = self.config.total_budget_s - self._used_s - self._reserved_s
        if self.deadline is not None:
            left = min(left, self.deadline - self._clock())
        return left

    # ------------------------------------------------------------------ submitting
    def submit(self, subproblem: Subproblem, decision: Decision, tag: Any = None
               ) -> Ticket | None:
        """Run a RUN decision (from :meth:`consider`, or made by the caller); None when
        it is KEEP_BRANCHING or the budget is spent (the record says why)."""
        if decision.action is not Action.RUN or not decision.backends:
            return None
        _, record, features = self._pending_records.pop(id(decision), (None, None, None))
        if record is None:
            record = self._record(subproblem, decision, None)
        budget = min(decision.budget_s, self.budget_left_s / len(decision.backends))
        if budget < self.config.min_budget_s:
            record["skipped"] = f"budget spent ({max(budget, 0.0):.3g} s left per job)"
            return None
        ticket = Ticket(next(self._tickets), subproblem.label, decision.backends, tag)
        limits = Limits(time_s=budget, threads=self.config.threads)
        handles = {}
        for backend in decision.backends:
            handle = self.executor.submit(Job(subproblem, backend, limits, self.config.options,
                                              subproblem.label))
            handles[handle.job_id] = handle
        entry = _Open(ticket, subproblem, decision, record, self._clock(), budget, handles,
                      features)
        self._reserved_s += budget * len(handles)
        self._open[ticket.ticket_id] = entry
        for job_id in handles:
            self._by_job[job_id] = entry
        record.update(submitted=True, ticket=ticket.ticket_id, budget_s=round(budget, 4))
        self._submitted += 1
        return ticket

    def offer(self, items: Iterable[tuple[Subproblem, SubproblemFeatures, Any]],
              max_jobs: int | None = None) -> list[Ticket]:
        """Consider ``(subproblem, features, tag)`` items in the given order (hardest first)
        and submit those the policy runs, while slots are free; returns the tickets (the
        caller removes their tags from its queue)."""
        tickets: list[Ticket] = []
        for problem, features, tag in items:
            if self.free_slots <= 0 or (max_jobs is not None and len(tickets) >= max_jobs):
                break
            decision = self.consider(problem, features)
            if decision.action is Action.RUN:
                ticket = self.submit(problem, decision, tag)
                if ticket is not None:
                    tickets.append(ticket)
        return tickets

    # ------------------------------------------------------------------ results
    def poll(self) -> list[Finished]:
        """Tickets finished since the last call (never blocks for long), including those
        left in the inbox by :meth:`collect`."""
        done = list(self._inbox.values()) + self._absorb(self.executor.poll())
        self._inbox.clear()
        return done

    def collect(self, ticket_ids: Iterable[int]) -> list[Finished]:
        """The finished tickets among ``ticket_ids`` (each returned once); other owners'
        results wait in an inbox for their own ``collect`` (several users share one
        scheduler: a race and a hand-off never consume each other's results)."""
        for done in self._absorb(self.executor.poll()):
            self._inbox[done.ticket.ticket_id] = done
        return [self._inbox.pop(t) for t in list(ticket_ids) if t in self._inbox]

    def wait(self, timeout: float | None = None) -> list[Finished]:
        """Wait up to ``timeout`` s until at least one ticket finished (or none is open)."""
        end = None if timeout is None else self._clock() + timeout
        while self._open:
            left = None if end is None else max(0.0, end - self._clock())
            results = self.executor.wait(left)
            done = self._absorb(results)
            if done or (end is not None and self._clock() >= end) or \
                    (not results and not self.executor.in_flight):
                return done
        return []

    def cancel(self, ticket: Ticket) -> bool:
        """Stop a ticket's jobs (its :class:`Finished` comes with the next poll)."""
        entry = self._open.get(ticket.ticket_id)
        if entry is None:
            return False
        entry.cancelled = True
        done = {r.handle.job_id for r in entry.results}
        for job_id, handle in entry.handles.items():
            if job_id not in done:
                self.executor.cancel(handle)
        return True

    def cancel_all(self) -> None:
        for entry in list(self._open.values()):
            self.cancel(entry.ticket)

    @property
    def in_flight(self) -> int:
        return len(self._open)

    def shutdown(self) -> list[Finished]:
        """Cancel everything, collect the last results and stop the executor."""
        self.cancel_all()
        done = self._absorb(self.executor.poll())
        self.executor.shutdown()
        if self.model_path is not None:   # set only for the LearnedPolicy made here
            self.policy.save(self.model_path)
        return done

    def __enter__(self) -> "Scheduler":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    # ------------------------------------------------------------------ reports
    def backend_stats(self) -> dict[str, dict[str, Any]]:
        """Per back end: calls, solver time, wall time, outcomes, wins, cancellations."""
        return self._stats.to_dict()

    def report(self) -> dict[str, Any]:
        """JSON-serializable summary: decisions by choice, back-end stats, budget."""
        return {"decisions": sum(self._choices.values()), "choices": dict(self._choices),
                "submitted": self._submitted,
                "backends": self.backend_stats(), "solver_time_s": round(self._used_s, 4),
                "disagreements": list(self.disagreements)}

    # ------------------------------------------------------------------ internals
    def _record(self, subproblem: Subproblem, decision: Decision,
                features: SubproblemFeatures | None) -> dict[str, Any]:
        record = {"t": round(self._clock() - self._start, 4), "label": subproblem.label,
                  "features": None if features is None else features.to_dict(),
                  "choice": decision.choice, "reason": decision.reason,
                  "budget_s": round(decision.budget_s, 4), "submitted": False,
                  "ticket": None, "backend": None, "outcome": None, "time_s": None}
        self._choices[decision.choice] += 1
        if len(self.decision_log) < self.config.log_limit:
            self.decision_log.append(record)
        return record

    def _absorb(self, results: list[JobResult]) -> list[Finished]:
        # within one batch, candidates first: a candidate racing an INFEASIBLE is a
        # disagreement the caller must see (it confirms the candidate on the real model)
        finished: list[Finished] = []
        while results:
            results = sorted(results, key=lambda r: _RANK.get(r.outcome.status, 9))
            cancelled_losers = False
            for result in results:
                entry = self._by_job.pop(result.handle.job_id, None)
                if entry is None:
                    continue
                cancelled_losers |= self._take(entry, result, finished)
            # cancelled losers report at once: count them now, not at the next poll
            results = self.executor.poll() if cancelled_losers else []
        return finished

    def _take(self, entry: _Open, result: JobResult, finished: list[Finished]) -> bool:
        """Account one job result; close the ticket when it is decided.  Returns True when
        it cancelled the other jobs of a race."""
        entry.results.append(result)
        self._reserved_s -= entry.budget_s
        self._used_s += min(result.outcome.time_s, result.wall_s)
        closed = entry.ticket.ticket_id not in self._open
        won, cancelled_losers = False, False
        if not closed and not entry.cancelled and _decisive(result.outcome):
            entry.winner, won = result, True
            for job_id, handle in entry.handles.items():
                if job_id != result.handle.job_id and job_id in self._by_job:
                    cancelled_losers |= self.executor.cancel(handle)
        elif entry.winner is not None and _decisive(result.outcome) and \
                result.outcome.status is not entry.winner.outcome.status:
            self.disagreements.append({
                "label": entry.ticket.label, "ticket": entry.ticket.ticket_id,
                entry.winner.handle.backend: entry.winner.outcome.status.value,
                result.handle.backend: result.outcome.status.value})
        self._stats.add(result.handle.backend, result.outcome, result.wall_s,
                        result.cancelled, won)
        observe = getattr(self.policy, "observe", None)
        if observe is not None and entry.features is not None and not result.cancelled:
            observe(entry.features, result.handle.backend, _decisive(result.outcome),
                    min(result.outcome.time_s, result.wall_s))
        if not closed and (won or len(entry.results) == len(entry.handles)):
            finished.append(self._close(entry))
        return cancelled_losers

    def _close(self, entry: _Open) -> Finished:
        del self._open[entry.ticket.ticket_id]
        best = entry.winner or min(entry.results, key=lambda r: (
            r.cancelled, _RANK.get(r.outcome.status, 9), r.outcome.candidate is None))
        cancelled = best.cancelled
        entry.record.update(backend=best.handle.backend,
                            outcome=outcome_summary(best.outcome)["status"],
                            time_s=round(best.outcome.time_s, 4),
                            wall_s=round(self._clock() - entry.submitted, 4),
                            cancelled=cancelled)
        return Finished(entry.ticket, entry.subproblem, best.outcome, best.handle.backend,
                        entry.decision, self._clock() - entry.submitted, cancelled)
