"""Verdicts, counterexamples and reports.

A counterexample is *candidate* until the original model (onnxruntime for ONNX files, the
module for torch) has been run on it and the spec confirms the violation.  Only
:func:`confirm_counterexample` creates a :class:`ConfirmedCounterexample`, and a ``sat``
:class:`VerificationResult` cannot be built without one.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hybridver.errors import HybridverInputError
from hybridver.numerics import exactly_satisfied  # noqa: F401  (re-exported)


class Verdict(str, enum.Enum):
    UNSAT = "unsat"      # property holds on the whole region (verified)
    SAT = "sat"          # confirmed counterexample
    UNKNOWN = "unknown"  # nothing could be established
    TIMEOUT = "timeout"  # the time limit ran out first
    ERROR = "error"      # the run failed


@dataclasses.dataclass(frozen=True)
class CandidateCounterexample:
    """A point some component believes violates the property; not yet checked.

    ``x``: flattened input ``(n_in,)``; ``predicted_y``: that component's output
    ``(n_out,)``; ``source``: which component produced it (e.g. ``"pgd"``).
    """

    x: np.ndarray
    predicted_y: np.ndarray
    source: str


_CONFIRM_TOKEN = object()


@dataclasses.dataclass(frozen=True)
class ConfirmedCounterexample:
    """A counterexample the real model confirmed.  Build it with :func:`confirm_counterexample`.

    ``x``: flattened input exactly as fed to the real model (its dtype's values, stored as
    float64); ``y``: the real model's flattened output; ``case``/``disjunct``: which part of
    the spec it violates; ``margin``: ``max(C y + d)`` of that disjunct (<= 0).
    """

    x: np.ndarray
    y: np.ndarray
    case: int
    disjunct: int
    margin: float
    checked_by: str
    source: str
    _token: object = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._token is not _CONFIRM_TOKEN:
            raise TypeError("ConfirmedCounterexample is created only by confirm_counterexample()")


RealModel = Callable[[np.ndarray], np.ndarray]


def _round_into_box(x: np.ndarray, box: Any, dtype: np.dtype) -> np.ndarray:
    """Round ``x`` to ``dtype`` so that every coordinate stays inside the EXACT box.

    Rounding to float32 can step outside a box whose bounds are not float32 numbers, and a
    point on a float bound that stands for an exact bound not a float64 number (rounded
    outward, :class:`InputBox`) is outside; we then move one ulp of ``dtype`` inwards.  A
    box thinner than one ulp may admit no such point: the result is then outside and the
    containment check rejects it.
    """
    lower, upper = box.lower, box.upper
    xc = np.asarray(x, dtype=dtype)
    lo = xc.astype(np.float64) < lower
    for i, _ in box.exact_lower:  # the bound itself is outside the exact box
        lo[i] |= float(xc[i]) <= lower[i]
    xc[lo] = np.nextafter(xc[lo], np.asarray(np.inf, dtype=dtype))
    hi = xc.astype(np.float64) > upper
    for i, _ in box.exact_upper:
        hi[i] |= float(xc[i]) >= upper[i]
    xc[hi] = np.nextafter(xc[hi], np.asarray(-np.inf, dtype=dtype))
    return xc


def confirm_counterexample(candidate: CandidateCounterexample, spec: Any, real_model: RealModel,
                           input_shape: tuple[int, ...], checked_by: str,
                           input_dtype: np.dtype = np.float32) -> ConfirmedCounterexample | None:
    """Run the real model on the candidate and return a confirmed counterexample or None.

    ``spec``: a :class:`hybridver.specs.Spec`; ``real_model``: maps ``(batch, *input_shape)``
    to ``(batch, *output_shape)``.  The input is first rounded to the model's input dtype
    (kept inside the region), so the point confirmed is exactly the one the model ran on.
    Region membership is checked with zero tolerance against the EXACT bounds (the spec's
    constants, not their outward float64 roundings) and the output property with zero
    tolerance: ``C y + d <= 0`` on every row of some disjunct, in exact arithmetic with the
    exact offsets (:func:`~hybridver.numerics.exactly_satisfied`) wherever float64 says so.
    """
    x = np.asarray(candidate.x, dtype=np.float64).reshape(-1)
    for case_index, case in enumerate(spec.cases):
        box = case.region
        if np.any(x < box.lower - 1e-6) or np.any(x > box.upper + 1e-6):
            continue
        xm = _round_into_box(np.clip(x, box.lower, box.upper), box, np.dtype(input_dtype))
        x64 = xm.astype(np.float64)
        if not box.contains(x64):  # exact: the outward-rounded sliver is outside
            continue
        y = np.asarray(real_model(xm.reshape(1, *input_shape)), dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(y)):
            continue
        if not case.disjuncts:  # output condition is 'true'
            return ConfirmedCounterexample(x64, y, case_index, -1, -math.inf, checked_by,
                                           candidate.source, _CONFIRM_TOKEN)
        for d_index, disjunct in enumerate(case.disjuncts):
            margin = float(np.max(disjunct.C @ y + disjunct.d)) if len(disjunct.d) else -math.inf
            if margin <= 0.0 and exactly_satisfied(disjunct.C, disjunct.d, y,
                                                   disjunct.exact_d):
                return ConfirmedCounterexample(x64, y, case_index, d_index, margin, checked_by,
                                               candidate.source, _CONFIRM_TOKEN)
    return None


@dataclasses.dataclass(frozen=True)
class VerificationResult:
    """Outcome of one verification run.

    ``phase_times``: seconds per phase (``load``, ``attack``, ``bounds``...); ``stats``:
    counters per component.  ``candidate`` keeps an unconfirmed counterexample for the report;
    it never makes the verdict ``sat``.
    """

    verdict: Verdict
    time_s: float
    counterexample: ConfirmedCounterexample | None = None
    candidate: CandidateCounterexample | None = None
    phase_times: dict[str, float] = dataclasses.field(default_factory=dict)
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)
    message: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", Verdict(self.verdict))
        if self.verdict is Verdict.SAT and not isinstance(self.counterexample,
                                                           ConfirmedCounterexample):
            raise ValueError("a sat result requires a confirmed counterexample")
        if self.verdict is not Verdict.SAT and self.counterexample is not None:
            raise ValueError("only a sat result carries a confirmed counterexample")

    def to_json(self) -> dict[str, Any]:
        """A JSON-serializable report (see :data:`REPORT_FIELDS`).

        ``phases``: seconds per phase; ``stats``: counters per component, always with
        ``stats["backends"]`` (``{name: {"calls", "time_s", "outcomes": {status: count}}}``,
        filled by :func:`record_backend_call`; empty when no back end ran).  Numpy values
        become plain numbers and lists; infinite or NaN floats become None (strict JSON).
        """
        def arr(a: np.ndarray | None) -> list[float] | None:
            return None if a is None else [float(v) for v in np.asarray(a).reshape(-1)]

        cex = self.counterexample
        cand = self.candidate
        stats = dict(self.stats)
        stats.setdefault("backends", {})
        return _jsonable({
            "verdict": self.verdict.value,
            "time_s": self.time_s,
            "phases": dict(self.phase_times),
            "stats": stats,
            "message": self.message,
            "counterexample": None if cex is None else {
                "x": arr(cex.x), "y": arr(cex.y), "case": cex.case, "disjunct": cex.disjunct,
                "margin": cex.margin, "checked_by": cex.checked_by, "source": cex.source},
            "unconfirmed_candidate": None if cand is None else {
                "x": arr(cand.x), "predicted_y": arr(cand.predicted_y), "source": cand.source},
        })


#: Top-level keys of :meth:`VerificationResult.to_json`, a stable structure: new keys may
#: be added, these keep their meaning.
REPORT_FIELDS = ("verdict", "time_s", "phases", "stats", "message", "counterexample",
                 "unconfirmed_candidate")


def record_backend_call(stats: dict[str, Any], backend: str, status: str,
                        time_s: float) -> None:
    """Count one call of ``backend`` that ended in ``status`` after ``time_s`` seconds in
    ``stats["backends"]``: ``{backend: {"calls": n, "time_s": total, "outcomes":
    {status: count}}}``, the per-back-end block of the JSON report."""
    entry = stats.setdefault("backends", {}).setdefault(
        backend, {"calls": 0, "time_s": 0.0, "outcomes": {}})
    entry["calls"] += 1
    entry["time_s"] += float(time_s)
    entry["outcomes"][status] = entry["outcomes"].get(status, 0) + 1


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays, tuples, enums and non-finite floats made
    into what strict JSON can hold."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------------- VNN-COMP results files
def format_results_file(result: VerificationResult) -> str:
    """VNN-COMP results text: the verdict line, and for sat the assignment of X_i and Y_j."""
    lines = [result.verdict.value]
    if result.verdict is Verdict.SAT:
        cex = result.counterexample
        assert cex is not None
        values = [f"(X_{i} {float(v)!r})" for i, v in enumerate(cex.x)]
        values += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(cex.y)]
        lines.append("(" + "\n ".join(values) + ")")
    return "\n".join(lines) + "\n"


def write_results_file(result: VerificationResult, path: str | Path) -> None:
    Path(path).write_text(format_results_file(result))


@dataclasses.dataclass(frozen=True)
class ResultsFile:
    """A parsed VNN-COMP results file: verdict word and, for sat, the X and Y values."""

    verdict: Verdict
    x: np.ndarray | None = None
    y: np.ndarray | None = None


_ASSIGN = re.compile(r"\(\s*([XY])_(\d+)\s+([^\s()]+)\s*\)")
_VERDICT_ALIASES = {"holds": "unsat", "violated": "sat", "unsafe": "sat", "safe": "unsat"}


def read_results_file(path: str | Path) -> ResultsFile:
    """Parse a results file written by us or another VNN-COMP tool."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise HybridverInputError(f"cannot read results file {path}: {exc.strerror}") from exc
    stripped = text.strip()
    if not stripped:
        raise HybridverInputError(f"results file {path} is empty")
    word = stripped.split()[0].lower()
    word = _VERDICT_ALIASES.get(word, word)
    try:
        verdict = Verdict(word)
    except ValueError:
        raise HybridverInputError(f"results file {path}: unknown verdict '{word}'") from None
    if verdict is not Verdict.SAT:
        return ResultsFile(verdict)
    xs: dict[int, float] = {}
    ys: dict[int, float] = {}
    for var, index, value in _ASSIGN.findall(stripped):
        try:
            (xs if var == "X" else ys)[int(index)] = float(value)
        except ValueError:
            raise HybridverInputError(
                f"results file {path}: bad number '{value}' for {var}_{index}") from None

    def dense(values: dict[int, float]) -> np.ndarray | None:
        if not values:
            return None
        if sorted(values) != list(range(len(values))):
            raise HybridverInputError(f"results file {path}: variable indices are not 0..n-1")
        return np.array([values[i] for i in range(len(values))])

    return ResultsFile(verdict, dense(xs), dense(ys))
