"""``verify --crosscheck``: an ``unsat`` decided a second time by an independent back end.

A verifier's ``unsat`` is the claim nobody can check by running the model, so with
:class:`~hybridver.config.SelfCheckConfig` enabled each ``unsat`` on a network small
enough (at most ``max_neurons`` outputs of elementwise nonlinearities) goes once more,
whole, to an exact back end other than the one that decided it (``auto``: OR-Tools, else
HiGHS, else z3; the back end exact mode used is skipped), with its own time limit:

* the second decision is ``unsat`` too: the verdict stands, ``stats.self_check.agrees``;
* it finds a counterexample the real model confirms: the two decisions disagree, and
  the run's verdict becomes ``error`` (never ``sat``: a disagreement means one of our
  own decisions is wrong, which is a bug to report, not an answer); the counterexample
  is kept in ``stats.self_check.counterexample`` for the bug report;
* it ends otherwise (timeout, unknown): the ``unsat`` stands, reported as inconclusive;
* the network is too large, or no other back end is installed: reported as skipped.

Both decisions share the importer, the IR and the confirmation on the real model; they
share no bound computation, encoding of the branch-and-bound's domains, or solver.
"""

from __future__ import annotations

import dataclasses
import math
import time

from hybridver.backends import backend_names, get_backend
from hybridver.config import Mode, SelfCheckConfig, VerifyConfig
from hybridver.errors import HybridverInputError
from hybridver.ir.ops import ELEMENTWISE_NONLINEAR
from hybridver.pipeline.run import run_pipeline
from hybridver.result import Verdict, VerificationResult

__all__ = ["AUTO_ORDER", "nonlinear_neurons", "second_backend", "self_check"]

#: the back ends ``backend = "auto"`` tries, in this order
AUTO_ORDER = ("ortools", "highs", "z3")


def nonlinear_neurons(graph) -> int:
    """How many scalar outputs the graph's elementwise nonlinearities have (per sample)."""
    return sum(math.prod(node.shape) for node in graph.nodes()
               if node.op in ELEMENTWISE_NONLINEAR)


def _available(name: str) -> bool:
    try:
        return get_backend(name).is_available()
    except HybridverInputError:
        return False


def second_backend(config: VerifyConfig) -> str | None:
    """The back end of the second decision; None when none other is available."""
    wanted = config.self_check.backend
    used = config.exact.backend if config.mode is Mode.EXACT else None
    if wanted != "auto":
        if wanted not in backend_names():
            raise HybridverInputError(f"self_check: unknown back end {wanted!r} (known: "
                                      f"{', '.join(backend_names())}, auto)")
        return wanted if wanted != used and _available(wanted) else None
    return next((name for name in AUTO_ORDER if name != used and _available(name)), None)


def self_check(model, spec, config: VerifyConfig, result: VerificationResult,
               progress=None) -> VerificationResult:
    """``result`` (an ``unsat`` of ``model``/``spec`` under ``config``) with
    ``stats["self_check"]`` added, or turned into ``error`` when the second decision
    found a confirmed counterexample.  Any other verdict is returned unchanged."""
    settings: SelfCheckConfig = config.self_check
    if not settings.enabled or result.verdict is not Verdict.UNSAT:
        return result
    neurons = nonlinear_neurons(model.graph)
    info: dict = {"neurons": neurons, "max_neurons": settings.max_neurons}
    backend = second_backend(config)
    if neurons > settings.max_neurons:
        info["status"] = "skipped"
        info["why"] = f"{neurons} nonlinear neurons > max_neurons {settings.max_neurons}"
        return _with(result, info)
    if backend is None:
        info["status"] = "skipped"
        info["why"] = (f"back end {settings.backend!r} unavailable or the one that decided"
                       if settings.backend != "auto" else "no other exact back end installed")
        return _with(result, info)
    second = dataclasses.replace(
        config, mode=Mode.EXACT, timeout_s=settings.timeout_s,
        exact=dataclasses.replace(config.exact, backend=backend),
        self_check=dataclasses.replace(settings, enabled=False))
    if progress is not None:
        progress.phase(f"self-check ({backend})")
    t0 = time.monotonic()
    again = run_pipeline(model, spec, second, progress,
                         deadline=t0 + settings.timeout_s)
    info.update(backend=backend, verdict=again.verdict.value,
                time_s=time.monotonic() - t0)
    if again.verdict is Verdict.UNSAT:
        info["status"], info["agrees"] = "agrees", True
        return _with(result, info)
    if again.verdict is Verdict.SAT:
        cex = again.counterexample
        info["status"], info["agrees"] = "disagrees", False
        info["counterexample"] = {"x": cex.x, "y": cex.y, "margin": cex.margin,
                                  "checked_by": cex.checked_by}
        message = (f"self-check disagreement: the run answered unsat, but {backend} found a "
                   f"counterexample confirmed by {cex.checked_by} (margin {cex.margin:.3g}); "
                   f"this is a bug in hybridver, please report it with this JSON report")
        return dataclasses.replace(_with(result, info), verdict=Verdict.ERROR,
                                   message=message)
    info["status"], info["agrees"] = "inconclusive", None
    note = f"self-check by {backend} inconclusive ({again.verdict.value})"
    return dataclasses.replace(_with(result, info),
                               message="; ".join(m for m in (result.message, note) if m))


def _with(result: VerificationResult, info: dict) -> VerificationResult:
    return dataclasses.replace(result, stats={**result.stats, "self_check": info})
