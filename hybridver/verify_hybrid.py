"""The hybrid pipeline behind ``hybridver verify --mode hybrid``.

Phases, cheapest first, all bounded by one deadline:

1. uniform sampling of every case's box (cheap falsification);
2. bounds on each case's whole box: IBP, CROWN, then alpha-CROWN; a case is proven when
   every disjunct has a row whose lower bound is positive;
3. PGD on the cases the bounds left open;
4. for cases still open: branch-and-bound by input splitting with CROWN bounds, probing
   the centres of the hardest sub-boxes (low-dimensional inputs), or by splitting the
   pre-activation intervals of the nonlinear nodes (``bab/activation_split.py``).

Every candidate counterexample is confirmed on the real model before anything is claimed.

``unsat`` needs every case proven by phase 2 or 3 (sound bounds only); ``sat`` needs a
confirmed counterexample; anything else is ``unknown`` or ``timeout``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import torch

from hybridver.bab.activation_split import ActivationSplitConfig, activation_split_bab
from hybridver.bab.attack import face_candidates, pgd_attack, sample_candidates
from hybridver.bab.case_race import CaseRace
from hybridver.ir.relu_chain import ReluChain
from hybridver.bab.handoff import SchedulerDelegate
from hybridver.bab.input_split import (Bounded, InputSplitConfig, disjunct_margins,
                                       input_split_bab, per_disjunct_margins)
from hybridver.bounds.engine import compute_bounds
from hybridver.bounds.intervals import UnsupportedBoundError
from hybridver.bounds.options import AlphaConfig, BoundConfig, BoundMethod
from hybridver.bounds.plan import NodeKind, get_plan
from hybridver.config import VerifyConfig
from hybridver.ir.evaluate import evaluate
from hybridver.problem import Subproblem
from hybridver.relaxations.base import piecewise_linear_ops
from hybridver.specs import InputBox
from hybridver.progress import NullProgress, Progress
from hybridver.schedule import LocalProcessExecutor, Scheduler, SchedulerConfig
from hybridver.result import (CandidateCounterexample, ConfirmedCounterexample,
                              VerificationResult, Verdict, confirm_counterexample)


_RELU_LIKE = piecewise_linear_ops()


@dataclasses.dataclass(frozen=True)
class StackedCase:
    """A case's disjuncts stacked: ``C (m, n_out)``, ``d (m,)``, rows of disjunct k in
    ``groups[k]``."""

    C: np.ndarray
    d: np.ndarray
    groups: tuple[slice, ...]

    @classmethod
    def of(cls, case) -> "StackedCase":
        groups, offset = [], 0
        for disjunct in case.disjuncts:
            groups.append(slice(offset, offset + disjunct.C.shape[0]))
            offset += disjunct.C.shape[0]
        return cls(np.concatenate([dj.C for dj in case.disjuncts]),
                   np.concatenate([dj.d for dj in case.disjuncts]), tuple(groups))


class _Run:
    """State of one verification: timing, statistics and the confirmation step."""

    def __init__(self, model, spec, config: VerifyConfig, progress: Progress):
        self.model, self.spec, self.config = model, spec, config
        self.progress = progress
        self._scheduler: Scheduler | None = None
        self.start = time.monotonic()
        self.deadline = self.start + config.timeout_s
        self.phases: dict[str, float] = {}
        self.stats: dict[str, Any] = {
            "attack": {"candidates": 0, "confirmed": 0, "rejected": 0},
            "bounds": {"disjuncts": 0, "refuted": 0, "cases_proven": 0, "methods": {}},
            "input_split": {"cases": 0, "domains_bounded": 0, "probes": 0}}
        self.unconfirmed: CandidateCounterexample | None = None

    def confirm(self, candidate: CandidateCounterexample) -> ConfirmedCounterexample | None:
        self.stats["attack"]["candidates"] += 1
        cex = confirm_counterexample(candidate, self.spec, self.model.real_model,
                                     self.model.graph.input_node.shape, self.model.checked_by,
                                     self.model.input_dtype)
        if cex is not None:
            self.stats["attack"]["confirmed"] += 1
        else:
            self.stats["attack"]["rejected"] += 1
            if self.unconfirmed is None and any(
                    case.violation_margin(candidate.predicted_y) <= 0 for case in self.spec.cases):
                self.unconfirmed = candidate  # the IR says violated, the real model disagrees
        return cex

    def scheduler(self, workers: int | None = None) -> Scheduler:
        """The run's scheduler (one for all cases), made on first call with
        ``max(handoff_workers, workers)`` worker processes."""
        if self._scheduler is None:
            count = max(self.config.handoff_workers, workers or 0)
            # one queued job per worker keeps the workers busy between batches
            self._scheduler = Scheduler(LocalProcessExecutor(count),
                                        config=SchedulerConfig(max_queued=count),
                                        deadline=self.deadline)
        return self._scheduler

    def close(self) -> None:
        """Stop the scheduler's workers and copy its statistics into ``stats``."""
        if self._scheduler is None:
            return
        self._scheduler.shutdown()
        report = self._scheduler.report()
        for name, row in report["backends"].items():
            entry = self.stats.setdefault("backends", {}).setdefault(
                name, {"calls": 0, "time_s": 0.0, "outcomes": {}})
            entry["calls"] += row["calls"]
            entry["time_s"] += row["time_s"]
            for status, count in row["outcomes"].items():
                entry["outcomes"][status] = entry["outcomes"].get(status, 0) + count
        self.stats["scheduler"] = {**report, "decision_log": self._scheduler.decision_log[:200]}
        self._scheduler = None

    def timed_out(self) -> bool:
        return time.monotonic() > self.deadline

    def result(self, verdict: Verdict, cex: ConfirmedCounterexample | None = None,
               message: str = "") -> VerificationResult:
        return VerificationResult(verdict, time.monotonic() - self.start, cex, self.unconfirmed,
                                  dict(self.phases), self.stats, message)


def verify_hybrid(model, spec, config: VerifyConfig,
                  progress: Progress | None = None) -> VerificationResult:
    """Decide ``spec`` on ``model`` (a :class:`hybridver.api.LoadedModel`) in hybrid mode;
    ``progress`` receives phase changes and branch-and-bound counters."""
    run = _Run(model, spec, config, progress or NullProgress())
    all_cases = list(range(len(spec.cases)))
    cex = _falsify(run, all_cases, use_pgd=False)
    if cex is not None:
        return run.result(Verdict.SAT, cex)
    try:
        open_cases = _bound_cases(run)
    except UnsupportedBoundError as exc:
        open_cases, bound_message = all_cases, f"bounds unavailable: {exc}"
    else:
        bound_message = ""
    if open_cases is None:
        return run.result(Verdict.TIMEOUT, message="time limit reached during bounding")
    cex = _falsify(run, open_cases, use_pgd=True)
    if cex is not None:
        return run.result(Verdict.SAT, cex)
    if run.timed_out():
        return run.result(Verdict.TIMEOUT, message="time limit reached during the attack")
    if bound_message:
        return run.result(Verdict.UNKNOWN, message=bound_message)
    if any(not spec.cases[i].disjuncts for i in open_cases):
        return run.result(Verdict.UNKNOWN,
                          message="a case with output condition 'true' has no counterexample "
                                  "found yet")
    if not open_cases:
        return run.result(Verdict.UNSAT)
    if model.graph.input_node.size > config.input_split_max_dim and not config.activation_split:
        return run.result(Verdict.UNKNOWN, message="bounds on the whole box do not prove it "
                          "and activation splitting is off")
    try:
        if model.graph.input_node.size > config.input_split_max_dim:
            verdict, cex, message = _activation_split_cases(run, open_cases)
        else:
            verdict, cex, message = _split_cases(run, open_cases)
    except UnsupportedBoundError as exc:
        return run.result(Verdict.UNKNOWN, message=f"bounds unavailable: {exc}")
    finally:
        run.close()
    return run.result(verdict, cex, message)


def _falsify(run: _Run, cases: list[int], use_pgd: bool) -> ConfirmedCounterexample | None:
    """Sampling (``use_pgd=False``) or PGD on the given cases; the first confirmed
    counterexample, or None."""
    t0 = time.monotonic()
    phase = "attack_pgd" if use_pgd else "attack_sampling"
    run.progress.phase(phase)
    try:
        for index in cases:
            case = run.spec.cases[index]
            if use_pgd:
                if run.config.attack.rounds <= 0:
                    return None
                candidates = pgd_attack(run.model.graph, case, run.config.attack, run.deadline,
                                        run.config.device)
            else:
                candidates = sample_candidates(run.model.graph, case, run.config.attack.samples,
                                               run.config.attack.seed, run.config.device)
            for candidate in candidates:
                cex = run.confirm(candidate)
                if cex is not None:
                    return cex
            if run.timed_out():
                return None
        return None
    finally:
        run.phases[phase] = run.phases.get(phase, 0.0) + time.monotonic() - t0


def _bound_cases(run: _Run) -> list[int] | None:
    """Indices of the cases the whole-box bounds do not prove (None on timeout)."""
    t0 = time.monotonic()
    run.progress.phase("bounds")
    open_cases = []
    methods = run.stats["bounds"]["methods"]
    try:
        for index, case in enumerate(run.spec.cases):
            if not case.disjuncts:
                open_cases.append(index)
                continue
            stacked = StackedCase.of(case)
            run.stats["bounds"]["disjuncts"] += len(stacked.groups)
            proven = False
            for method in run.config.bound_methods:
                if run.timed_out():
                    return None
                result = compute_bounds(run.model.graph, case.region.lower[None],
                                        case.region.upper[None], stacked.C, stacked.d,
                                        config=BoundConfig(
                                            method=BoundMethod(method),
                                            alpha=AlphaConfig(deadline=run.deadline)),
                                        bound_upper=False, device=run.config.device)
                methods[method] = methods.get(method, 0) + 1
                margin = disjunct_margins(result.lower, stacked.groups)
                if bool(margin[0] > 0):
                    proven = True
                    break
            if proven:
                run.stats["bounds"]["cases_proven"] += 1
                run.stats["bounds"]["refuted"] += len(stacked.groups)
            else:
                open_cases.append(index)
        return open_cases
    finally:
        run.phases["bounds"] = time.monotonic() - t0


def _split_cases(run: _Run, open_cases: list[int]):
    t0 = time.monotonic()
    graph = run.model.graph
    config = BoundConfig(method=BoundMethod.CROWN)
    plan = get_plan(graph, config.torch_dtype, torch.device(run.config.device))
    reused = sorted(plan.pre_activations)
    relu_inputs = sorted({graph.node(name).inputs[0] for name, kind in plan.kind.items()
                          if kind is NodeKind.UNARY and graph.node(name).op in _RELU_LIKE})
    chain_ok = run.config.handoff and run.config.region_race and \
        ReluChain.of(graph) is not None
    run.progress.phase("input_split")
    try:
        for done, index in enumerate(open_cases):
            case = run.spec.cases[index]
            stacked = StackedCase.of(case)
            found: list[ConfirmedCounterexample] = []  # filled by probe()

            def bound_fn(lo: torch.Tensor, hi: torch.Tensor, restrictions) -> Bounded:
                result = compute_bounds(graph, lo, hi, stacked.C, stacked.d, config=config,
                                        restrictions=restrictions, bound_upper=False,
                                        device=run.config.device, input_coefficients=True)
                nodes = {name: (result.intervals[name].lower, result.intervals[name].upper)
                         for name in reused}
                return Bounded(result.lower, result.input_coef, nodes)

            probe = _probe(run, case, found)

            confirm = _solver_confirm(run, found, "handoff")

            run.stats["input_split"]["cases"] += 1
            delegate = None
            if run.config.handoff:
                delegate = SchedulerDelegate(run.scheduler, graph, case.disjuncts, relu_inputs,
                                             confirm, label=f"case {index}",
                                             start_at=time.monotonic()
                                             + run.config.handoff_after_s)
            race = _RegionRace(run, case, found) if chain_ok else None
            faces = _FaceAttack(run, case, found)

            def stop() -> bool:
                return faces.decided() or (race is not None and (race.decided()
                                                                  or race.takes_over()))

            outcome = input_split_bab(bound_fn, case.region.lower, case.region.upper,
                                      stacked.groups, run.deadline, probe,
                                      InputSplitConfig(batch_size=run.config.split_batch),
                                      run.config.device, delegate=delegate,
                                      progress=_bab_progress(run, done, len(open_cases)),
                                      stop=stop)
            if delegate is not None and delegate.disabled:
                run.stats["input_split"]["handoff_error"] = delegate.disabled
            for key in ("delegated", "delegated_proven", "delegated_returned"):
                run.stats["input_split"][key] = (run.stats["input_split"].get(key, 0)
                                                 + outcome.stats.get(key, 0))
            for key in ("domains_bounded", "probes"):
                run.stats["input_split"][key] += outcome.stats.get(key, 0)
            status = outcome.status
            if faces.found_one:
                status = "counterexample"
            if race is not None:
                status = race.finish(status, run.stats["input_split"])
            if status == "counterexample" and found:
                return Verdict.SAT, found[0], ""
            if status != "proven":
                return _unfinished(status)
        return Verdict.UNSAT, None, ""
    finally:
        run.phases["input_split"] = time.monotonic() - t0


class _FaceAttack:
    """Random points on the faces of a low-dimensional case's box (``AttackConfig``),
    tried once when input splitting has run ``face_after_s`` on the case."""

    def __init__(self, run: _Run, case, found: list[ConfirmedCounterexample]):
        self.run, self.case, self.found = run, case, found
        attack = run.config.attack
        self.start_at = time.monotonic() + attack.face_after_s
        self.pending = attack.face_samples > 0 and case.region.lower.size <= attack.low_dim
        self.found_one = False

    def decided(self) -> bool:
        """True once a face point was confirmed on the real model (put in ``found``)."""
        if not self.pending or time.monotonic() < self.start_at:
            return self.found_one
        self.pending = False
        t0 = time.monotonic()
        attack = self.run.config.attack
        for candidate in face_candidates(self.run.model.graph, self.case, attack.face_samples,
                                         attack.seed, self.run.config.device):
            cex = self.run.confirm(candidate)
            if cex is not None:
                self.found.append(cex)
                self.found_one = True
                break
        self.run.phases["attack_faces"] = time.monotonic() - t0
        return self.found_one


class _RegionRace:
    """Region splitting (the ``regions`` back end) racing input splitting on one case of
    a ReLU-chain network, polled after every batch.

    Started once input splitting has run ``region_race_after_s`` on the case (most cases
    end sooner): the case's box is cut into ``region_race_parts`` sub-boxes (halving the
    widest dimension of the widest one; halves share their midpoint face, so they cover
    the box) and every sub-box and disjunct is one job on ``region_race_workers`` worker
    processes.  Once the race has run ``region_takeover_s``, input splitting stops and
    the case waits for the race alone, which then has every core."""

    def __init__(self, run: _Run, case, found: list[ConfirmedCounterexample]):
        self.run, self.case, self.found = run, case, found
        self.start_at = time.monotonic() + run.config.region_race_after_s
        self.race: CaseRace | None = None
        self.started_at: float | None = None
        self.tried = False

    def decided(self) -> bool:
        """True once the race has proven the case or found a confirmed counterexample."""
        config = self.run.config
        if not self.tried and time.monotonic() >= self.start_at:
            self.tried = True
            graph = self.run.model.graph
            problems = [Subproblem(graph, box, disjunct, disjunct=k,
                                   label=f"case disjunct {k} part {p} (regions)")
                        for k, disjunct in enumerate(self.case.disjuncts)
                        for p, box in enumerate(_sub_boxes(self.case.region,
                                                           config.region_race_parts))]
            race = CaseRace(self.run.scheduler(workers=config.region_race_workers), problems,
                            [0.0] * len(problems),
                            _solver_confirm(self.run, self.found, "regions"), backend="regions")
            self.race = race if race.start(self.run.deadline) else None
            self.started_at = time.monotonic()
        return self.race is not None and self.race.poll() in ("proven", "counterexample")

    def takes_over(self) -> bool:
        """True once the race has run ``region_takeover_s`` (input splitting should stop)."""
        return self.race is not None and self.started_at is not None and \
            time.monotonic() >= self.started_at + self.run.config.region_takeover_s

    def finish(self, status: str, stats: dict) -> str:
        """The case's status once input splitting returned ``status``: the race's answer
        when it has one (waited for if input splitting stopped or ran out of domains)."""
        if self.race is None:
            return status
        if status in ("exhausted", "stopped"):
            while self.race.poll() is None and not self.run.timed_out():
                time.sleep(0.05)
        state = self.race.poll()
        races = stats.setdefault("region_races", {})
        races[state or "unfinished"] = races.get(state or "unfinished", 0) + 1
        self.race.cancel()
        if self.found:   # a confirmed counterexample outranks any proof
            if state == "proven":
                stats["region_race_disagreement"] = True
            return "counterexample"
        if state == "proven":
            return "proven"
        return "timeout" if status == "stopped" else status


def _sub_boxes(box: InputBox, parts: int) -> list[InputBox]:
    """``box`` cut into ``parts`` boxes by halving, each time, the widest dimension of
    the widest box; the halves share the midpoint, so together they cover ``box``."""
    boxes = [(box.lower.copy(), box.upper.copy())]
    while len(boxes) < parts:
        widest = max(range(len(boxes)), key=lambda i: float(np.max(boxes[i][1] - boxes[i][0])))
        lo, hi = boxes.pop(widest)
        j = int(np.argmax(hi - lo))
        mid = lo[j] + (hi[j] - lo[j]) / 2
        upper_half_lo, lower_half_hi = lo.copy(), hi.copy()
        upper_half_lo[j], lower_half_hi[j] = mid, mid
        boxes += [(lo, lower_half_hi), (upper_half_lo, hi)]
    return [InputBox(lo, hi) for lo, hi in boxes]


def _probe(run: _Run, case, found: list[ConfirmedCounterexample]):
    """A branch-and-bound probe: evaluates candidate points ``(K, n_in)`` on the IR and
    confirms the two most violating (IR margin <= 1e-6) on the real model; a confirmed one
    is appended to ``found`` and its index returned."""
    graph = run.model.graph
    input_shape = graph.input_node.shape

    def probe(points: np.ndarray) -> int | None:
        with torch.no_grad():
            y = evaluate(graph, points.reshape(-1, *input_shape)).reshape(len(points), -1)
        margins = case.violation_margin(y.cpu().numpy())
        for k in np.argsort(margins)[:2]:
            if margins[k] <= 1e-6:
                cex = run.confirm(CandidateCounterexample(points[k], y[k].cpu().numpy(), "bab"))
                if cex is not None:
                    found.append(cex)
                    return int(k)
        return None
    return probe


def _solver_confirm(run: _Run, found: list[ConfirmedCounterexample], source: str):
    """``confirm(x, predicted_y) -> bool`` for a back end's candidate: checked on the real
    model; a confirmed one is appended to ``found``."""
    def confirm(x: np.ndarray, predicted_y) -> bool:
        y = np.full(run.model.graph.output_node.size, np.nan) if predicted_y is None \
            else np.asarray(predicted_y)
        cex = run.confirm(CandidateCounterexample(np.asarray(x), y, source))
        if cex is not None:
            found.append(cex)
        return cex is not None
    return confirm


def _bab_progress(run: _Run, done: int, total: int):
    """A branch-and-bound progress callback feeding ``run.progress``."""
    def report(stats) -> None:
        jobs = run._scheduler.in_flight if run._scheduler is not None else 0
        run.progress.update(domains_left=stats["open"], domains_bounded=stats["domains_bounded"],
                            best_bound=stats["best_margin"], cases_done=done, cases_total=total,
                            backend_jobs=jobs)
    return report


def _unfinished(status: str) -> tuple[Verdict, None, str]:
    """The verdict of a branch-and-bound that neither proved the case nor found a
    confirmed counterexample."""
    if status == "timeout":
        return Verdict.TIMEOUT, None, "time limit reached in branch-and-bound"
    return Verdict.UNKNOWN, None, f"branch-and-bound stopped: {status}"


def _activation_split_cases(run: _Run, open_cases: list[int]):
    """Activation-splitting BaB per open case (alpha-beta-CROWN for ReLU networks, with a
    counterexample search inside the domains whose points ``_probe`` confirms), raced by
    an exact back end on the whole case in a worker process (``bab/case_race.py``)."""
    t0 = time.monotonic()
    run.progress.phase("activation_split")
    run.stats.setdefault("activation_split", {"cases": 0, "domains_bounded": 0,
                                              "infeasible": 0, "attacks": 0, "races": {}})
    stats = run.stats["activation_split"]
    try:
        for done, index in enumerate(open_cases):
            case = run.spec.cases[index]
            stacked = StackedCase.of(case)
            stats["cases"] += 1
            found: list[ConfirmedCounterexample] = []
            race = None
            if run.config.handoff:
                try:
                    race = _start_race(run, case, stacked, found)
                except Exception as exc:  # noqa: BLE001 - the race is optional
                    stats["race_error"] = f"{type(exc).__name__}: {exc}"
            outcome = activation_split_bab(run.model.graph, case.region.lower,
                                           case.region.upper, stacked.C, stacked.d,
                                           stacked.groups, run.deadline,
                                           probe=_probe(run, case, found),
                                           config=ActivationSplitConfig(
                                               batch_size=run.config.split_batch),
                                           device=run.config.device,
                                           progress=_bab_progress(run, done, len(open_cases)),
                                           stop=None if race is None else
                                           lambda: race.poll() in ("proven", "counterexample"))
            for key in ("domains_bounded", "infeasible", "attacks"):
                stats[key] += outcome.stats.get(key, 0)
            stats["method"] = outcome.stats.get("method")
            status = outcome.status
            if race is not None:
                if status == "exhausted":   # nothing left to split: the race may still end
                    while race.poll() is None and not run.timed_out():
                        time.sleep(0.05)
                state = race.poll()
                stats["races"][state or "unfinished"] = \
                    stats["races"].get(state or "unfinished", 0) + 1
                if state == "proven":
                    status = "proven"
                elif state == "counterexample" and found:
                    status = "counterexample"
                race.cancel()
            if status == "counterexample" and found:
                return Verdict.SAT, found[0], ""
            if status != "proven":
                return _unfinished(status)
        return Verdict.UNSAT, None, ""
    finally:
        run.phases["activation_split"] = time.monotonic() - t0


def _start_race(run: _Run, case, stacked: StackedCase,
                found: list[ConfirmedCounterexample]) -> CaseRace | None:
    """Submit the case's disjuncts (CROWN bounds tightened by LPs as node bounds) to the
    scheduler if its policy runs them; None otherwise."""
    graph = run.model.graph
    t0 = time.monotonic()
    try:
        result = compute_bounds(graph, case.region.lower[None], case.region.upper[None],
                                stacked.C, stacked.d, config=BoundConfig(method="crown"),
                                bound_upper=False, device=run.config.device)
    except UnsupportedBoundError:
        return None
    margins = per_disjunct_margins(result.lower, stacked.groups)[0].tolist()
    bounds = {name: (itv.lower[0].reshape(-1).cpu().numpy(),
                     itv.upper[0].reshape(-1).cpu().numpy())
              for name, itv in result.intervals.items() if name in graph}
    problems = [Subproblem(graph, case.region, disjunct, bounds, disjunct=k,
                           label=f"case disjunct {k}")
                for k, disjunct in enumerate(case.disjuncts)]
    budget = min(5.0, 0.1 * max(0.0, run.deadline - time.monotonic()))
    try:
        from hybridver.backends.highs import lp_tightened_bounds
        from hybridver.encode.milp import NotEncodableError

        tight, _ = lp_tightened_bounds(problems[0], budget)
        problems = [dataclasses.replace(p, node_bounds=tight) for p in problems]
    except (ImportError, NotEncodableError, UnsupportedBoundError):
        pass   # the race runs on the CROWN bounds (or not at all, by the policy)
    run.phases["race_setup"] = run.phases.get("race_setup", 0.0) + time.monotonic() - t0

    race = CaseRace(run.scheduler(), problems, margins, _solver_confirm(run, found, "race"))
    return race if race.start(run.deadline) else None
