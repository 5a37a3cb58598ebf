"""What a branch-and-bound stage hands to a search: probes that confirm points on the
real model, and a progress callback."""

from __future__ import annotations

import numpy as np
import torch

from hybridver.bab_core import PROBE_MARGIN
from hybridver.ir.evaluate import evaluate
from hybridver.pipeline.context import RunContext
from hybridver.result import CandidateCounterexample, ConfirmedCounterexample


def make_probe(ctx: RunContext, case, found: list[ConfirmedCounterexample]):
    """``probe(points (K, n_in)) -> index | None``: evaluates the points on the IR and
    confirms the two most violating (IR margin <= ``PROBE_MARGIN``) on the real model; a
    confirmed one is appended to ``found`` and its index returned."""
    graph = ctx.model.graph
    input_shape = graph.input_node.shape

    def probe(points: np.ndarray) -> int | None:
        with torch.no_grad():
            y = evaluate(graph, points.reshape(-1, *input_shape)).reshape(len(points), -1)
        margins = case.violation_margin(y.cpu().numpy())
        for k in np.argsort(margins)[:2]:
            if margins[k] <= PROBE_MARGIN:
                cex = ctx.confirm(CandidateCounterexample(points[k], y[k].cpu().numpy(), "bab"))
                if cex is not None:
                    found.append(cex)
                    return int(k)
        return None
    return probe


def make_progress(ctx: RunContext, done: int, total: int):
    """A branch-and-bound progress callback feeding ``ctx.progress``."""
    def report(stats) -> None:
        ctx.progress.update(domains_left=stats.open, domains_bounded=stats.domains_bounded,
                            best_bound=stats.best_margin, cases_done=done, cases_total=total,
                            backend_jobs=ctx.jobs_in_flight)
    return report
