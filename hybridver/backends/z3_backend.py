"""The z3 back end: the subproblem as a QF_LRA formula with exact rational coefficients
(:mod:`hybridver.encode.smt`), decided by z3.

* ``unsat`` -> INFEASIBLE: a proof in exact arithmetic for piecewise-linear networks (with
  the IR's float64 weights and sound node bounds), and for smooth ones because their
  envelopes over-approximate;
* ``sat`` -> CANDIDATE: the model's input values, rounded to the nearest float64 (inside
  the box, whose bounds are float64), and z3's output values; the caller confirms the point
  on the real model;
* ``unknown`` -> TIMEOUT when the time limit (z3's ``timeout`` parameter, in ms) ran out
  or z3 was cancelled, else UNKNOWN with z3's ``reason_unknown``.

The formula is parsed into z3 here (:func:`encode_smt`) from the SMT-LIB2 text that
:mod:`hybridver.encode.smt` writes without any solver.  z3 is imported only inside
:meth:`Z3Backend.is_available`, :meth:`Z3Backend.solve` and :func:`encode_smt`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import time
from fractions import Fraction
from typing import Any

import numpy as np

from hybridver.backends.base import Capabilities, Limits, Outcome, Status, register_backend
from hybridver.encode.affine_form import NotEncodableError
from hybridver.encode.smt import SmtScript, smt_script
from hybridver.problem import Subproblem
from hybridver.result import CandidateCounterexample


@dataclasses.dataclass(frozen=True)
class SmtEncoding:
    """The formula in z3: ``assertions`` (a ``z3.AstVector``) in ``context`` (its own
    ``z3.Context``, so encodings in different threads do not share state); ``inputs``
    ``(n_in,)`` and ``outputs`` ``(n_out,)``: z3 Real constants; ``script``: the text it was
    parsed from."""

    script: SmtScript
    context: Any
    assertions: Any
    inputs: tuple[Any, ...]
    outputs: tuple[Any, ...]

    @property
    def exact(self) -> bool:
        return self.script.exact

    @property
    def n_unstable(self) -> int:
        return self.script.n_unstable


def encode_smt(problem: Subproblem, context: Any = None) -> SmtEncoding:
    """The subproblem as z3 constraints (imports z3).  ``context``: a ``z3.Context`` to build
    in (a fresh one by default)."""
    import z3

    script = smt_script(problem)
    ctx = context if context is not None else z3.Context()
    assertions = z3.parse_smt2_string(script.body(), ctx=ctx)
    return SmtEncoding(script, ctx, assertions,
                       tuple(z3.Real(name, ctx) for name in script.inputs),
                       tuple(z3.Real(name, ctx) for name in script.outputs))


def z3_value(model: Any, var: Any) -> Fraction:
    """The exact rational value of a Real constant in a z3 model (0 when unconstrained)."""
    value = model.eval(var, model_completion=True)
    return Fraction(value.as_fraction())


@register_backend
class Z3Backend:
    """Exact SMT back end (z3, real arithmetic).  On random dense nets (4 inputs, interval
    bounds, 10 s limit) it decided one hidden layer of 20 unstable ReLUs in 0.5-2 s and two
    layers of 8 (16 unstable) in 1-6 s; at 20-24 unstable ReLUs in two layers, or 24 in one,
    it mostly hit the limit (exact rational pivots dominate its time).  Beyond
    ``max_binaries_hint`` the MILP back ends are advised."""

    name = "z3"
    capabilities = Capabilities(exact_piecewise_linear=True, smooth_envelopes=True,
                                exact_arithmetic=True, max_binaries_hint=20)

    def is_available(self) -> bool:
        if importlib.util.find_spec("z3") is None:
            return False
        try:
            import z3
            z3.get_version_string()
        except Exception:  # a broken install (missing libz3) is "not available"
            return False
        return True

    def solve(self, problem: Subproblem, limits: Limits) -> Outcome:
        import z3

        start = time.perf_counter()
        try:
            encoding = encode_smt(problem)
        except NotEncodableError as exc:
            return Outcome(Status.ERROR, time.perf_counter() - start,
                           solver_status="not_encodable", message=str(exc))
        except (ValueError, z3.Z3Exception) as exc:   # a graph the encoder mishandles
            return Outcome(Status.ERROR, time.perf_counter() - start,
                           solver_status="encoding_failed",
                           message=f"encoding failed: {type(exc).__name__}: {exc}")
        encode_s = time.perf_counter() - start
        stats = {"encode_s": encode_s, "unstable": encoding.n_unstable,
                 "exact_encoding": encoding.exact,
                 "assertions": len(encoding.script.assertions)}
        remaining = limits.time_s - encode_s
        if remaining <= 0:
            return Outcome(Status.TIMEOUT, encode_s, solver_status="timeout",
                           message="time limit spent while encoding", stats=stats)
        solver = z3.SolverFor("QF_LRA", ctx=encoding.context)
        solver.set("timeout", max(1, int(remaining * 1000)))
        if limits.threads > 1:
            solver.set("threads", int(limits.threads))
        solver.add(encoding.assertions)
        try:
            answer = solver.check()
        except z3.Z3Exception as exc:
            return Outcome(Status.ERROR, time.perf_counter() - start, solver_status="error",
                           message=f"z3 failed: {exc}", stats=stats)
        elapsed = time.perf_counter() - start
        stats["solve_s"] = elapsed - encode_s
        stats.update(_z3_statistics(solver))
        if answer == z3.unsat:
            return Outcome(Status.INFEASIBLE, elapsed, solver_status="unsat", stats=stats)
        if answer == z3.sat:
            model = solver.model()
            x = np.array([float(z3_value(model, v)) for v in encoding.inputs])
            y = np.array([float(z3_value(model, v)) for v in encoding.outputs])
            x = np.clip(x, problem.box.lower, problem.box.upper)   # no-op: float64 bounds
            note = "" if encoding.exact else "model of a sound over-approximation (envelopes)"
            return Outcome(Status.CANDIDATE, elapsed, CandidateCounterexample(x, y, self.name),
                           solver_status="sat", message=note, stats=stats)
        reason = solver.reason_unknown()
        timed_out = ("timeout" in reason or "canceled" in reason or "cancelled" in reason
                     or elapsed >= limits.time_s)
        return Outcome(Status.TIMEOUT if timed_out else Status.UNKNOWN, elapsed,
                       solver_status=f"unknown: {reason}", message=reason, stats=stats)


def _z3_statistics(solver) -> dict:
    """A few numeric counters from z3's statistics (conflicts, decisions, ...)."""
    wanted = {"conflicts", "decisions", "arith-make-feasible", "rlimit count", "max memory"}
    out = {}
    try:
        stats = solver.statistics()
        for key in stats.keys():
            if key in wanted:
                out[f"z3_{key.replace(' ', '_').replace('-', '_')}"] = stats.get_key_value(key)
    except Exception:  # statistics are informational only
        pass
    return out
