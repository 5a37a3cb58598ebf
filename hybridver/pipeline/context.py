"""The state of one verification run, shared by its stages.

A :class:`RunContext` holds the run's one absolute deadline (a ``time.monotonic()``
value fixed when the run starts; every stage, search, bound pass and back-end budget is
measured against it), the confirmation of candidates on the real model, the scheduler
(made on first use), the progress sink, the typed statistics and the phase times.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator

import numpy as np

from hybridver.config import VerifyConfig
from hybridver.pipeline.stats import RunStats
from hybridver.progress import NullProgress, Progress
from hybridver.result import (CandidateCounterexample, ConfirmedCounterexample,
                              VerificationResult, Verdict, confirm_counterexample)
from hybridver.schedule import LocalProcessExecutor, Scheduler


class RunContext:
    """One run: ``model`` (a :class:`hybridver.api.LoadedModel`), ``spec``, ``config``,
    ``deadline`` (absolute; defaults to now + ``config.timeout_s``)."""

    def __init__(self, model, spec, config: VerifyConfig, progress: Progress | None = None,
                 deadline: float | None = None, start: float | None = None):
        self.model, self.spec, self.config = model, spec, config
        self.progress = progress or NullProgress()
        self.start = time.monotonic() if start is None else start
        self.deadline = self.start + config.timeout_s if deadline is None else deadline
        self.stats = RunStats()
        self.phases: dict[str, float] = {}
        self.unconfirmed: CandidateCounterexample | None = None
        self._scheduler: Scheduler | None = None
        self._boxes: tuple[np.ndarray, np.ndarray] | None = None

    # -- which branching a case gets ---------------------------------------------------------
    def split_dims(self, index: int) -> int:
        """The inputs input splitting would branch on in case ``index``: those of positive
        width in its box (``config.input_split_varying_only``; a fixed input is never
        split), or all of them."""
        if not self.config.input_split_varying_only:
            return self.model.graph.input_node.size
        region = self.spec.cases[index].region
        return int(np.count_nonzero(region.upper > region.lower))

    def input_split_applies(self, index: int) -> bool:
        """Whether case ``index`` is branched on by input splitting (at most
        ``config.input_split_max_dim`` inputs to split) rather than activation splitting."""
        return self.split_dims(index) <= self.config.input_split_max_dim

    # -- time ---------------------------------------------------------------------------
    def timed_out(self) -> bool:
        return time.monotonic() > self.deadline

    def remaining(self) -> float:
        """Seconds left before the deadline (0 once passed)."""
        return max(0.0, self.deadline - time.monotonic())

    @contextlib.contextmanager
    def phase(self, name: str, show: bool = True) -> Iterator[None]:
        """Time a phase (added to ``phases[name]``) and announce it to the progress sink."""
        if show:
            self.progress.phase(name)
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.monotonic() - t0

    # -- confirmation ---------------------------------------------------------------------
    def confirm(self, candidate: CandidateCounterexample) -> ConfirmedCounterexample | None:
        """The candidate confirmed on the real model, or None (kept for the report when
        the IR says violated and the real model disagrees).  Only the cases whose box
        holds the candidate (within the ``1e-6`` that confirmation allows before rounding
        into the box) are tried, in order: the same answer as trying every case, without
        a loop over thousands of cases per candidate."""
        near = self._cases_near(candidate.x)
        cex = confirm_counterexample(candidate, _Cases([self.spec.cases[i] for i in near]),
                                     self.model.real_model, self.model.graph.input_node.shape,
                                     self.model.checked_by, self.model.input_dtype)
        if cex is not None:
            cex = dataclasses.replace(cex, case=near[cex.case])
        predicted = cex is None and _predicts_violation(self.spec, candidate.predicted_y)
        self.stats.confirmation.count(cex is not None, predicted)
        if predicted and self.unconfirmed is None and np.all(np.isfinite(candidate.predicted_y)):
            self.unconfirmed = candidate
        return cex

    def _cases_near(self, x) -> list[int]:
        """Indices of the cases whose box widened by 1e-6 holds ``x`` (as
        :func:`confirm_counterexample` tests it: a NaN entry passes), in order."""
        if self._boxes is None:
            self._boxes = (np.stack([c.region.lower for c in self.spec.cases]) - 1e-6,
                           np.stack([c.region.upper for c in self.spec.cases]) + 1e-6) \
                if self.spec.cases else (np.zeros((0, 1)), np.zeros((0, 1)))
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        lower, upper = self._boxes
        if lower.shape[1] != x.size:
            return list(range(len(self.spec.cases)))
        outside = np.any(x < lower, axis=1) | np.any(x > upper, axis=1)
        return np.flatnonzero(~outside).tolist()

    def solver_confirm(self, found: list[ConfirmedCounterexample], source: str):
        """``confirm(x, predicted_y) -> bool`` for a back end's candidate: checked on the
        real model; a confirmed one is appended to ``found``."""
        def confirm(x: np.ndarray, predicted_y) -> bool:
            y = np.full(self.model.graph.output_node.size, np.nan) if predicted_y is None \
                else np.asarray(predicted_y)
            cex = self.confirm(CandidateCounterexample(np.asarray(x), y, source))
            if cex is not None:
                found.append(cex)
            return cex is not None
        return confirm

    # -- scheduler ------------------------------------------------------------------------
    def scheduler(self, workers: int | None = None) -> Scheduler:
        """The run's scheduler (one for all cases), made on first call with
        ``max(schedule.handoff_workers, workers)`` worker processes."""
        if self._scheduler is None:
            count = max(self.config.schedule.handoff_workers, workers or 0)
            executor = self._cluster_executor()
            if executor is not None:
                count = executor.capacity
            # one queued job per worker keeps the workers busy between batches
            settings = self.config.scheduler
            if settings.max_queued < count:
                settings = dataclasses.replace(settings, max_queued=count)
            self._scheduler = Scheduler(executor or LocalProcessExecutor(count),
                                        config=settings, deadline=self.deadline)
        return self._scheduler

    def _cluster_executor(self):
        """A :class:`~hybridver.cluster.executor.RayExecutor` on the cluster of
        ``config.cluster`` when it names one and ``executor`` is on, else None (Ray is
        imported only then)."""
        cluster = self.config.cluster
        if not (cluster.address and cluster.executor):
            return None
        from hybridver.cluster.connect import connect
        from hybridver.cluster.executor import RayExecutor
        from hybridver.cluster.farm import workers_line

        info = connect(cluster.address, cluster.ship_code)
        self.progress.update(cluster=workers_line(info.nodes, info.cpus))
        return RayExecutor()

    @property
    def jobs_in_flight(self) -> int:
        return self._scheduler.in_flight if self._scheduler is not None else 0

    def close(self) -> None:
        """Stop the scheduler's workers and copy its statistics into ``stats``."""
        if self._scheduler is None:
            return
        self._scheduler.shutdown()
        report = self._scheduler.report()
        self.stats.add_backend_rows(report["backends"])
        self.stats.scheduler = dict(report)
        if self.config.decision_log:  # on request only: it is long
            self.stats.scheduler["decision_log"] = self._scheduler.decision_log[:200]
        self._scheduler = None

    def result(self, verdict: Verdict, cex: ConfirmedCounterexample | None = None,
               message: str = "") -> VerificationResult:
        return VerificationResult(verdict, time.monotonic() - self.start, cex, self.unconfirmed,
                                  dict(self.phases), self.stats.to_report(), message)


@dataclasses.dataclass(frozen=True)
class _Cases:
    """Some cases of a spec, for :func:`confirm_counterexample` (it reads ``cases``)."""

    cases: list


def _predicts_violation(spec, predicted_y) -> bool:
    """Whether a candidate's predicted output violates the property, or there is no
    prediction (a back end's solution is proposed as a violation)."""
    y = np.asarray(predicted_y, dtype=np.float64)
    if not np.all(np.isfinite(y)):
        return True
    return any(case.violation_margin(y) <= 0 for case in spec.cases)
