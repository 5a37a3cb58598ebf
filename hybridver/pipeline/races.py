"""What runs beside a case's branch-and-bound, at the times of the run's
:class:`~hybridver.config.Schedule`: face sampling, region splitting racing input
splitting, and an exact back end racing activation splitting.

Each is polled by the search's ``stop`` callback after every batch.  A race's
counterexample is confirmed on the real model before it counts; a race's proof is the
exact back end's (its soundness argument is the back end's, ``docs/soundness.md``).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from hybridver.bab.attack import face_candidates
from hybridver.bab.case_race import CaseRace
from hybridver.bab.input_split import per_disjunct_margins
from hybridver.bab_core import SearchStatus
from hybridver.backends.lp import lp_tightened_bounds
from hybridver.bounds.engine import compute_bounds
from hybridver.bounds.intervals import UnsupportedBoundError
from hybridver.bounds.options import BoundConfig
from hybridver.config import Event
from hybridver.encode.milp import NotEncodableError
from hybridver.pipeline.context import RunContext
from hybridver.problem import Subproblem
from hybridver.result import ConfirmedCounterexample
from hybridver.specs import InputBox


class FaceAttack:
    """Random points on the faces of a low-dimensional case's box, tried once when the
    schedule's FACE_ATTACK time has come."""

    def __init__(self, ctx: RunContext, case, found: list[ConfirmedCounterexample]):
        self.ctx, self.case, self.found = ctx, case, found
        after = ctx.config.schedule.after(Event.FACE_ATTACK)
        attack = ctx.config.attack
        self.start_at = time.monotonic() + (after or 0.0)
        self.pending = (after is not None and attack.face_samples > 0
                        and case.region.lower.size <= attack.low_dim)
        self.found_one = False

    def decided(self) -> bool:
        """True once a face point was confirmed on the real model (put in ``found``)."""
        if not self.pending or time.monotonic() < self.start_at:
            return self.found_one
        self.pending = False
        attack = self.ctx.config.attack
        with self.ctx.phase("attack_faces", show=False):
            for candidate in face_candidates(self.ctx.model.graph, self.case,
                                             attack.face_samples, attack.seed,
                                             self.ctx.config.device, deadline=self.ctx.deadline):
                cex = self.ctx.confirm(candidate)
                if cex is not None:
                    self.found.append(cex)
                    self.found_one = True
                    break
        return self.found_one


class RegionRace:
    """Region splitting (the ``regions`` back end) racing input splitting on one case of
    a ReLU-chain network.

    Started at the schedule's REGION_RACE time (most cases end sooner): the case's box
    is cut into ``region_race_parts`` sub-boxes and every sub-box and disjunct is one job
    on ``region_race_workers`` worker processes.  At REGION_TAKEOVER after its start,
    input splitting stops and the case waits for the race alone, which then has every
    core."""

    def __init__(self, ctx: RunContext, case, found: list[ConfirmedCounterexample]):
        self.ctx, self.case, self.found = ctx, case, found
        self.start_at = time.monotonic() + (ctx.config.schedule.after(Event.REGION_RACE) or 0.0)
        self.race: CaseRace | None = None
        self.started_at: float | None = None
        self.tried = False

    def decided(self) -> bool:
        """True once the race has proven the case or found a confirmed counterexample."""
        schedule = self.ctx.config.schedule
        if not self.tried and time.monotonic() >= self.start_at:
            self.tried = True
            graph = self.ctx.model.graph
            problems = [Subproblem(graph, box, disjunct, disjunct=k,
                                   label=f"case disjunct {k} part {p} (regions)")
                        for k, disjunct in enumerate(self.case.disjuncts)
                        for p, box in enumerate(sub_boxes(self.case.region,
                                                          schedule.region_race_parts))]
            race = CaseRace(self.ctx.scheduler(workers=schedule.region_race_workers), problems,
                            [0.0] * len(problems),
                            self.ctx.solver_confirm(self.found, "regions"), backend="regions")
            self.race = race if race.start(self.ctx.deadline) else None
            self.started_at = time.monotonic()
        return self.race is not None and self.race.poll() in ("proven", "counterexample")

    def takes_over(self) -> bool:
        """True once the race has run its REGION_TAKEOVER time (input splitting stops)."""
        after = self.ctx.config.schedule.after(Event.REGION_TAKEOVER)
        return self.race is not None and self.started_at is not None and after is not None \
            and time.monotonic() >= self.started_at + after

    def finish(self, status: SearchStatus, races: dict[str, int]) -> tuple[SearchStatus, bool]:
        """The case's status once input splitting returned ``status`` (the race's answer
        when it has one, waited for if input splitting stopped or ran out of domains),
        and whether the race's proof disagreed with a confirmed counterexample.  The
        race's end is counted in ``races``."""
        if self.race is None:
            return status, False
        if status in (SearchStatus.EXHAUSTED, SearchStatus.STOPPED):
            while self.race.poll() is None and not self.ctx.timed_out():
                time.sleep(0.05)
        state = self.race.poll()
        races[state or "unfinished"] = races.get(state or "unfinished", 0) + 1
        self.race.cancel()
        if self.found:   # a confirmed counterexample outranks any proof
            return SearchStatus.COUNTEREXAMPLE, state == "proven"
        if state == "proven":
            return SearchStatus.PROVEN, False
        return (SearchStatus.TIMEOUT if status is SearchStatus.STOPPED else status), False


def sub_boxes(box: InputBox, parts: int) -> list[InputBox]:
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


def start_case_race(ctx: RunContext, case, stacked, found: list[ConfirmedCounterexample]
                    ) -> CaseRace | None:
    """Submit the case's disjuncts (CROWN bounds tightened by LPs as node bounds) to the
    scheduler if its policy runs them; None otherwise."""
    graph = ctx.model.graph
    with ctx.phase("race_setup", show=False):
        try:
            config = BoundConfig(method="crown", deadline=ctx.deadline)
            result = compute_bounds(graph, case.region.lower[None], case.region.upper[None],
                                    stacked.C, stacked.d, config=config, bound_upper=False,
                                    device=ctx.config.device)
        except UnsupportedBoundError:
            return None
        margins = per_disjunct_margins(result.lower, stacked.groups)[0].tolist()
        bounds = {name: (itv.lower[0].reshape(-1).cpu().numpy(),
                         itv.upper[0].reshape(-1).cpu().numpy())
                  for name, itv in result.intervals.items() if name in graph}
        problems = [Subproblem(graph, case.region, disjunct, bounds, disjunct=k,
                               label=f"case disjunct {k}")
                    for k, disjunct in enumerate(case.disjuncts)]
        budget = min(5.0, 0.1 * ctx.remaining())
        try:
            tight, _ = lp_tightened_bounds(problems[0], budget)
            problems = [dataclasses.replace(p, node_bounds=tight) for p in problems]
        except (ImportError, NotEncodableError, UnsupportedBoundError):
            pass   # the race runs on the CROWN bounds (or not at all, by the policy)
    race = CaseRace(ctx.scheduler(), problems, margins, ctx.solver_confirm(found, "race"))
    return race if race.start(ctx.deadline) else None
