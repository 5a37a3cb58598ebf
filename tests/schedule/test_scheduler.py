"""The scheduler: consider/submit/poll, logs and statistics, budgets, portfolio races, and
soundness on a subdomain with a hidden counterexample."""

from __future__ import annotations

import json
import time

import pytest

from hybridver.backends import Status
from hybridver.backends.base import Capabilities
from hybridver.schedule import (Action, Decision, InlineExecutor, Policy, PolicyConfig,
                                Scheduler, SchedulerConfig, SubproblemFeatures)
from tests.schedule.conftest import violates

pytest.importorskip("highspy")


def run_all(sched: Scheduler, timeout: float = 60.0):
    done, end = [], time.monotonic() + timeout
    while sched.in_flight and time.monotonic() < end:
        done += sched.wait(timeout=1.0)
    return done


def test_consider_submit_poll_with_log(tiny):
    sched = Scheduler(InlineExecutor())
    tickets = []
    for i, problem in enumerate(tiny.problems):
        feats = SubproblemFeatures.of(problem, gap=-0.5, depth=i, time_left_s=60.0)
        decision = sched.consider(problem, feats)
        assert decision.action is Action.RUN
        tickets.append(sched.submit(problem, decision, tag=("domain", i)))
    done = run_all(sched)
    assert sorted(f.tag for f in done) == [("domain", i) for i in range(len(tiny.problems))]
    assert all(f.outcome.status is Status.INFEASIBLE for f in done)
    log = json.loads(json.dumps(sched.decision_log, allow_nan=False))
    assert len(log) == len(tiny.problems)
    for rec in log:
        assert rec["submitted"] and rec["outcome"] == "infeasible"
        assert rec["backend"] == rec["choice"] and rec["features"]["gap"] == -0.5
        assert rec["reason"] and rec["time_s"] is not None
    stats = json.loads(json.dumps(sched.report(), allow_nan=False))
    used = {b: s for b, s in stats["backends"].items()}
    assert sum(s["calls"] for s in used.values()) == len(tiny.problems)
    assert all(s["outcomes"] == {"infeasible": s["calls"]} for s in used.values())
    sched.shutdown()


def test_keep_branching_and_budget_are_respected(tiny):
    problem = tiny.problems[0]
    sched = Scheduler(InlineExecutor(), config=SchedulerConfig(total_budget_s=1.0))
    proven = sched.consider(problem, SubproblemFeatures.of(problem, gap=0.1))
    assert proven.action is Action.KEEP_BRANCHING
    assert sched.submit(problem, proven) is None
    # a caller-made decision is logged too; the total budget caps the job's limit
    ticket = sched.submit(problem, Decision(Action.RUN, ("highs",), 30.0, "by hand"))
    assert ticket is not None and sched.decision_log[-1]["budget_s"] == 1.0
    assert sched.submit(problem, Decision(Action.RUN, ("highs",), 30.0, "again")) is None
    assert "budget spent" in sched.decision_log[-1]["skipped"]
    done = run_all(sched)
    assert [f.ticket for f in done] == [ticket]
    assert [r["choice"] for r in sched.decision_log] == ["keep_branching", "highs", "highs"]


def test_offer_fills_free_slots(tiny):
    sched = Scheduler(InlineExecutor(), config=SchedulerConfig(max_queued=0))
    items = [(p, SubproblemFeatures.of(p, gap=-1.0), i) for i, p in enumerate(tiny.problems)]
    tickets = sched.offer(items)
    assert len(tickets) == 1 and sched.free_slots == 0          # inline capacity is 1
    assert len(run_all(sched)) == 1 and sched.free_slots == 1


def test_inline_race_first_decisive_wins(tiny):
    problem = tiny.problems[0]
    sched = Scheduler(InlineExecutor())
    ticket = sched.submit(problem, Decision(Action.RUN, ("ortools", "highs"), 10.0, "race"))
    done = run_all(sched)
    assert len(done) == 1 and done[0].ticket == ticket
    assert done[0].backend == "ortools" and done[0].outcome.status is Status.INFEASIBLE
    stats = sched.backend_stats()
    assert stats["ortools"]["wins"] == 1
    assert stats["highs"]["cancelled"] == 1 and stats["highs"]["wins"] == 0


def test_pool_race_cancels_the_slow_backend(pool, digits_sat, hidden_cex):
    problem, _ = hidden_cex
    sched = Scheduler(pool)
    if "z3" not in sched.capabilities:
        pytest.skip("z3 unavailable")
    start = time.monotonic()
    # z3 cannot finish 55 unstable ReLUs; OR-Tools finds the counterexample in < 1 s
    sched.submit(digits_sat.problems[0], Decision(Action.RUN, ("z3", "ortools"), 60.0, "race"))
    done = run_all(sched, timeout=60.0)
    assert time.monotonic() - start < 30.0
    assert len(done) == 1 and done[0].backend == "ortools"
    assert done[0].outcome.status is Status.CANDIDATE
    time.sleep(0.2)
    sched.poll()
    stats = sched.backend_stats()
    assert stats["z3"]["cancelled"] == 1 and stats["ortools"]["wins"] == 1
    assert pool.in_flight == 0


def test_hidden_counterexample_is_never_infeasible(pool, digits_sat, hidden_cex):
    """Every path through the scheduler on a subdomain that contains a real counterexample:
    the policy's own choices (alone, and racing every back end), and each back end alone;
    none may answer INFEASIBLE, and candidates are confirmed here."""
    problem, x = hidden_cex
    sched = Scheduler(pool, config=SchedulerConfig(max_queued=10))
    policies = [Policy(PolicyConfig(exact_max_unstable=0)),
                Policy(PolicyConfig(portfolio=True, portfolio_size=3, exact_max_unstable=0))]
    for policy in policies:
        sched.policy = policy
        for gap, upper in ((-50.0, 0.1), (-0.1, 5.0), (-1.0, 1.0)):
            feats = SubproblemFeatures.of(problem, gap=gap, upper=upper, time_left_s=20.0)
            decision = sched.consider(problem, feats)
            assert decision.action is Action.RUN
            sched.submit(problem, decision)
    for name in sched.capabilities:
        sched.submit(problem, Decision(Action.RUN, (name,), 5.0, "each back end"))
    done = run_all(sched)
    assert len(done) == 6 + len(sched.capabilities)
    assert any(len(f.decision.backends) == 3 for f in done)   # a race of all three ran
    confirmed = 0
    for f in done:
        assert f.outcome.status is not Status.INFEASIBLE, (f.backend, f.outcome)
        if f.outcome.candidate is not None:
            confirmed += violates(digits_sat, problem, f.outcome.candidate.x)
    assert confirmed >= 1
    assert violates(digits_sat, problem, x)
    assert not sched.disagreements


def test_capabilities_are_used_not_solvers(tiny):
    caps = {"highs": Capabilities(smooth_envelopes=True, max_binaries_hint=2000)}
    sched = Scheduler(InlineExecutor(), capabilities=caps)
    d = sched.consider(tiny.problems[0], SubproblemFeatures.of(tiny.problems[0], gap=-1.0))
    assert d.backends == ("highs",)


def test_collect_gives_each_owner_only_its_own_tickets(tiny):
    """A race and a hand-off share one scheduler: neither may consume (and lose) the
    other's results, and a reused tag never matters."""
    problem = tiny.problems[0]
    sched = Scheduler(InlineExecutor())
    mine = sched.submit(problem, Decision(Action.RUN, ("highs",), 30.0, "owner A"), tag=7)
    theirs = sched.submit(problem, Decision(Action.RUN, ("highs",), 30.0, "owner B"), tag=7)
    got = sched.collect([mine.ticket_id])
    assert [d.ticket.ticket_id for d in got] == [mine.ticket_id]
    assert sched.collect([mine.ticket_id]) == []          # each result is returned once
    got = sched.collect([theirs.ticket_id])
    assert [d.ticket.ticket_id for d in got] == [theirs.ticket_id]
    assert sched.poll() == []
