"""The learned policy: the fixed policy's decisions without data, the faster back end after
timings, persistence (round trip, corrupt files ignored, atomic writes), and right
verdicts with learning on."""

from __future__ import annotations

import itertools
import json
import time
import warnings

import numpy as np
import pytest

from hybridver.backends import Status
from hybridver.problem import SubproblemForm
from hybridver.schedule import (Action, InlineExecutor, LearnedPolicy, Policy, PolicyConfig,
                                Scheduler, SchedulerConfig, SubproblemFeatures, TimingModel,
                                load_model)
from hybridver.schedule.learned import LearningConfig, resolve_model_path
from tests.schedule.conftest import violates
from tests.schedule.test_policy import ALL, MILP, Z3


def feats(unstable=40, smooth=(), **runtime) -> SubproblemFeatures:
    form = SubproblemForm(n_inputs=5, unstable_relus=unstable,
                          other_nonlinear_ops=frozenset(smooth), n_nodes=13, n_rows=4)
    runtime.setdefault("time_left_s", 100.0)
    return SubproblemFeatures(form, **runtime)


def grid():
    for u, gap, upper, smooth, stag, depth, left in itertools.product(
            (0, 2, 10, 40, 150, 400), (None, -2.0, -0.01, 0.3), (None, 0.5, 1e-4, -0.1),
            ((), ("sigmoid",)), (False, True), (0, 5), (100.0, 0.6)):
        yield feats(u, smooth, gap=gap, upper=upper, stagnated=stag, depth=depth,
                    time_left_s=left)


CONFIGS = [PolicyConfig(), PolicyConfig(portfolio=True), PolicyConfig(exact_max_unstable=4),
           PolicyConfig(proof_order=("ortools", "highs"), min_depth=3)]
CAPS = [ALL, {"highs": MILP, "ortools": MILP}, {"z3": Z3}, {}]


def teach(model: TimingModel, fast: str, slow: str, n: int = 12) -> None:
    """``fast`` decides in 0.1 s, ``slow`` in 3 s, ``4 n`` times on every bucket."""
    for u in (2, 10, 40, 150, 400):
        for lik_upper in (None, 0.5, 1e-4, -0.1):
            for smooth in ((), ("sigmoid",)):
                f = feats(u, smooth, gap=-1.0, upper=lik_upper)
                for _ in range(n):
                    model.observe(f, fast, True, 0.1)
                    model.observe(f, slow, True, 3.0)


@pytest.mark.parametrize("config", CONFIGS)
def test_without_data_the_decisions_are_the_fixed_policys(config):
    fixed, learned = Policy(config), LearnedPolicy(config)
    few = TimingModel()
    teach(few, "ortools", "highs", n=1)   # 4 per bucket, below min_observations = 5
    below = LearnedPolicy(config, few)
    for f, caps in itertools.product(grid(), CAPS):
        want = fixed.decide(f, caps)
        assert learned.decide(f, caps) == want, f
        assert below.decide(f, caps) == want, f


def test_after_timings_where_b_is_faster_the_learned_policy_picks_b():
    proof_likely = feats(40, gap=-1.0, upper=0.5)     # fixed: highs
    cex_likely = feats(40, gap=-1.0, upper=-0.1)      # fixed: ortools
    assert Policy().decide(proof_likely, ALL).backends == ("highs",)
    assert Policy().decide(cex_likely, ALL).backends == ("ortools",)
    model = TimingModel()
    teach(model, "ortools", "highs")
    d = LearnedPolicy(model=model).decide(proof_likely, ALL)
    assert d.backends == ("ortools",) and d.reason.startswith("learned")
    assert d.budget_s == Policy().decide(proof_likely, ALL).budget_s
    model = TimingModel()
    teach(model, "highs", "ortools")
    assert LearnedPolicy(model=model).decide(cex_likely, ALL).backends == ("highs",)
    # the safety rules stay: nothing runs on a back end that cannot accept it, a proven
    # subdomain keeps branching
    assert LearnedPolicy(model=model).decide(cex_likely, {"ortools": MILP}).backends == \
        ("ortools",)
    assert LearnedPolicy(model=model).decide(feats(40, gap=0.2), ALL).action is \
        Action.KEEP_BRANCHING


def test_a_back_end_that_rarely_decides_makes_it_try_another():
    model = TimingModel()
    f = feats(40, gap=-1.0, upper=0.5)
    for _ in range(8):
        model.observe(f, "highs", False, 2.0)
    d = LearnedPolicy(model=model).decide(f, {"highs": MILP, "ortools": MILP})
    assert d.backends == ("ortools",) and "trying ortools" in d.reason
    pred = model.predict(f, "highs", 6.0)
    assert pred.p_decisive < 0.2 and pred.time_s == 6.0


def test_the_model_round_trips_through_its_file(tmp_path):
    model = TimingModel()
    teach(model, "ortools", "highs", n=3)
    model.observe(feats(7, stagnated=True, depth=4), "z3", False, 1.5)
    path = tmp_path / "sub" / "model.json"
    assert model.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["model.json"]   # no temp file left
    again = load_model(path)
    assert again.backends == ["highs", "ortools", "z3"]
    for f in itertools.islice(grid(), 0, None, 37):
        for b in ("highs", "ortools", "z3", "other"):
            assert again.predict(f, b, 4.0) == pytest.approx(model.predict(f, b, 4.0))
    assert json.loads(path.read_text())["version"] == 1


@pytest.mark.parametrize("text", ["{not json", "[]", '{"version": 99, "backends": {}}',
                                  '{"version": 1}', "\x00\x01"])
def test_a_corrupt_or_foreign_file_is_ignored_with_a_warning(tmp_path, text):
    path = tmp_path / "model.json"
    path.write_text(text)
    with pytest.warns(UserWarning, match="ignored"):
        model = load_model(path)
    assert model.backends == []
    with pytest.warns(UserWarning, match="ignored"):
        sched = Scheduler(InlineExecutor(), config=SchedulerConfig(model_path=str(path)),
                          capabilities={"highs": MILP})
    assert isinstance(sched.policy, LearnedPolicy)


@pytest.mark.parametrize("change, words", [
    ({"a": [[1.0]], "b": [0.0]}, "wrong shape"),
    ({"a": np.zeros((8, 8)).tolist()}, "positive definite"),
    ({"a": np.triu(np.ones((8, 8))).tolist()}, "symmetric"),
    ({"timed": float("nan")}, "out of range"),
    ({"buckets": {"pl0": [3.0, 1.0]}}, "out of range"),
])
def test_statistics_that_make_no_model_are_ignored(tmp_path, change, words):
    model = TimingModel()
    model.observe(feats(), "highs", True, 1.0)
    data = model.to_dict()
    data["backends"]["highs"].update(change)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match=words):
        assert load_model(path).backends == []


def test_an_unwritable_path_warns_and_does_not_raise(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    model = TimingModel()
    model.observe(feats(), "highs", True, 1.0)
    with pytest.warns(UserWarning, match="not saved"):
        assert not model.save(blocker / "model.json")


def test_model_path_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert resolve_model_path("auto") == tmp_path / "hybridver" / "scheduler-model.json"
    assert resolve_model_path(None) is None and resolve_model_path("") is None
    assert resolve_model_path(str(tmp_path / "m.json")) == tmp_path / "m.json"
    with pytest.raises(ValueError):
        LearningConfig(decay=0.0)


def test_learning_off_is_the_fixed_policy_and_writes_nothing(tmp_path, tiny):
    path = tmp_path / "model.json"
    sched = Scheduler(InlineExecutor(), config=SchedulerConfig(learning=False,
                                                               model_path=str(path)))
    assert type(sched.policy) is Policy
    problem = tiny.problems[0]
    decision = sched.consider(problem, SubproblemFeatures.of(problem, gap=-0.5))
    sched.submit(problem, decision)
    _run_all(sched)
    sched.shutdown()
    assert not path.exists()


def _run_all(sched: Scheduler, timeout: float = 60.0):
    done, end = [], time.monotonic() + timeout
    while sched.in_flight and time.monotonic() < end:
        done += sched.wait(timeout=1.0)
    return done


def test_jobs_are_recorded_and_persisted_and_verdicts_stay_right(tmp_path, tiny, digits_sat,
                                                                 hidden_cex):
    """A scheduler with learning on, its model taught that ortools is fast (so ortools runs
    where the fixed policy would run HiGHS): the unsat subproblems are INFEASIBLE, the one
    with a hidden counterexample gives a candidate the real model confirms; every job is
    recorded and the model saved at shutdown; the next scheduler reads it."""
    pytest.importorskip("highspy")
    pytest.importorskip("ortools")
    path = tmp_path / "model.json"
    seed = TimingModel()
    teach(seed, "ortools", "highs")
    seed.save(path)
    config = SchedulerConfig(model_path=str(path))
    sched = Scheduler(InlineExecutor(), config=config)
    sub, x = hidden_cex
    items = [(p, SubproblemFeatures.of(p, gap=-0.5, upper=0.5), i)
             for i, p in enumerate(tiny.problems)]
    items.append((sub, SubproblemFeatures.of(sub, gap=-0.5, upper=0.5), "cex"))
    before = {b: sched.policy.model.predict(items[0][1], b, 5.0).observations
              for b in ("highs", "ortools")}
    for problem, f, tag in items:
        decision = sched.consider(problem, f)
        assert decision.backends == ("ortools",) and decision.reason.startswith("learned")
        assert sched.submit(problem, decision, tag) is not None
    done = {d.tag: d for d in _run_all(sched)}
    assert len(done) == len(items)
    for i in range(len(tiny.problems)):
        assert done[i].outcome.status is Status.INFEASIBLE
    cex = done["cex"].outcome
    assert cex.status is Status.CANDIDATE and violates(digits_sat, sub, cex.candidate.x)
    assert sched.policy.model.updates == len(items)
    sched.shutdown()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = Scheduler(InlineExecutor(), config=config)
    after = {b: again.policy.model.predict(items[0][1], b, 5.0).observations
             for b in ("highs", "ortools")}
    # ortools' bucket count grew by the new jobs (older ones decayed); HiGHS ran none
    assert after["ortools"] > before["ortools"] * again.config.learned.decay ** len(items)
    assert after["highs"] == pytest.approx(before["highs"])



@pytest.mark.slow   # two hybrid runs with worker processes, 10-20 s each
def test_hybrid_verdicts_with_learning_on(tmp_path):
    """The hybrid pipeline with the domain hand-off, its scheduler's model taught that
    OR-Tools is fast: unsat stays unsat, a violated threshold gives a confirmed sat, and
    the hand-off's jobs end up in the saved model."""
    pytest.importorskip("highspy")
    pytest.importorskip("ortools")
    import dataclasses

    import hybridver
    from hybridver.result import Verdict
    from tests.bab.test_activation_split import outputs
    from tests.bab.test_subdomain_handoff import C
    from tests.pipeline.test_domain_handoff import _config, _spec, instance  # noqa: F401

    graph, model, lower, upper, holds = instance.__wrapped__()
    path = tmp_path / "model.json"
    seed = TimingModel()
    teach(seed, "ortools", "highs")
    seed.save(path)

    def run(t, **kw):
        config = _config(True, **kw)
        config = dataclasses.replace(config, scheduler=SchedulerConfig(model_path=str(path)))
        return hybridver.verify(model, _spec(lower, upper, t), config)

    unsat = run(holds)
    assert unsat.verdict is Verdict.UNSAT
    assert "ortools" in unsat.to_json()["stats"]["scheduler"]["choices"]
    sat = run(holds + 0.05, probe_every=0)
    assert sat.verdict is Verdict.SAT
    x = np.asarray(sat.counterexample.x, dtype=np.float64).reshape(1, -1)
    assert float((outputs(graph, x) @ C.T)[0, 0]) <= holds + 0.05
    saved = load_model(path).to_dict()["backends"]
    assert saved["ortools"] != seed.to_dict()["backends"]["ortools"]
