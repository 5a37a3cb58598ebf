"""Re-checking a tool's counterexample (or a planted witness) on onnxruntime.

Three outcomes (:class:`CexCheck` ``status``):

* ``confirmed``: :func:`hybridver.result.confirm_counterexample` accepts it: rounded to the
  model's input dtype, inside the EXACT input box, violating the property's rows with zero
  tolerance, in rational arithmetic, on onnxruntime's output.  A counterexample exists:
  every ``unsat`` on the instance is false.
* ``tolerance``: VNN-COMP's scoring would accept it (each input coordinate within
  :data:`~hybridver.numerics.VNNCOMP_ATOL` of its box, some disjunct's rows met within
  ``VNNCOMP_ATOL`` on onnxruntime's output of the point as written, in the input dtype),
  but the exact check does not: the ``sat`` is not wrong, and it proves nothing against
  an ``unsat``.
* ``invalid``: neither; a tool that answered ``sat`` with it made a false claim.

``unchecked``: no counterexample to check (a recorded answer) or a model that cannot be
loaded.  The spec is read as ``hybridver verify`` reads it (bounds that admit no value of
the input dtype pinned to the nearest one, docs/soundness.md).
"""

from __future__ import annotations

import dataclasses
import json
import math
import posixpath
import threading
import warnings
from pathlib import Path

import numpy as np

from hybridver.errors import HybridverInputError
from hybridver.numerics import VNNCOMP_ATOL
from hybridver.result import CandidateCounterexample, confirm_counterexample
from hybridver.specs.instances import strip_gz

__all__ = ["CexCheck", "InstanceChecker", "Witness", "read_witnesses", "instance_key",
           "WITNESS_FORMAT", "STATUSES"]

STATUSES = ("confirmed", "tolerance", "invalid", "unchecked")
WITNESS_FORMAT = "hybridver-witnesses/1"


def _number(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


@dataclasses.dataclass(frozen=True)
class CexCheck:
    """``margin``: ``max(C y + d)`` of the best disjunct on onnxruntime's output (<= 0:
    violated; None when not computed); ``input_excess``: how far the point lies outside
    its nearest case's box (0 inside); ``y_rel_error``: the tool's written outputs against
    onnxruntime's, ``|y_ort - y|_inf / |y|_inf`` (VNN-COMP's measure)."""

    status: str
    reason: str = ""
    margin: float | None = None
    input_excess: float | None = None
    y_rel_error: float | None = None

    def to_json(self) -> dict:
        return {"status": self.status, "reason": self.reason, "margin": _number(self.margin),
                "input_excess": _number(self.input_excess),
                "y_rel_error": _number(self.y_rel_error)}


def _rel_error(y_ort: np.ndarray, y: np.ndarray | None) -> float | None:
    if y is None or y.size != y_ort.size:
        return None
    norm = float(np.max(np.abs(y))) if y.size else 0.0
    diff = float(np.max(np.abs(y_ort - y))) if y.size else 0.0
    return 0.0 if norm < 1e-6 else diff / norm  # VNN-COMP: no division by a tiny norm


class InstanceChecker:
    """One instance's model (onnxruntime) and spec, loaded on first use; thread-safe."""

    def __init__(self, onnx: Path, vnnlib: Path):
        self.onnx, self.vnnlib = Path(onnx), Path(vnnlib)
        self._lock = threading.Lock()
        self._loaded = False
        self.model = self.spec = None
        self.error = ""

    def _load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            try:
                from hybridver.frontends.onnx import OnnxRuntimeModel
                from hybridver.specs import load_vnnlib
                from hybridver.specs.pinning import pin_to_dtype

                model = OnnxRuntimeModel(self.onnx)
                spec = load_vnnlib(self.vnnlib, n_inputs=int(np.prod(model.input_shape)),
                                   n_outputs=int(np.prod(model.output_shape)))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    spec = pin_to_dtype(spec, model.input_dtype)
                self.model, self.spec = model, spec
            except HybridverInputError as exc:
                self.error = str(exc)

    def check(self, x: np.ndarray | None, y: np.ndarray | None = None,
              source: str = "tool") -> CexCheck:
        """Judge the point ``x`` (flat) with written outputs ``y`` (flat or None)."""
        if x is None:
            return CexCheck("invalid", "no counterexample (X_i values) given")
        self._load()
        if self.model is None:
            return CexCheck("unchecked", f"cannot load the instance: {self.error}")
        model, spec = self.model, self.spec
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if x.size != spec.n_inputs:
            return CexCheck("invalid", f"{x.size} input values for {spec.n_inputs} inputs")
        if not np.all(np.isfinite(x)):
            return CexCheck("invalid", "non-finite input values")
        y_file = None if y is None else np.asarray(y, dtype=np.float64).reshape(-1)
        y_ort = np.asarray(model(x.astype(model.input_dtype).reshape(1, *model.input_shape)),
                           dtype=np.float64).reshape(-1)
        rel = _rel_error(y_ort, y_file)
        cand = CandidateCounterexample(x, y_ort if y_file is None else y_file, source)
        confirmed = confirm_counterexample(cand, spec, model, model.input_shape,
                                           "onnxruntime", model.input_dtype)
        if confirmed is not None:
            return CexCheck("confirmed", "", confirmed.margin, 0.0, rel)
        return self._tolerance_check(x, y_ort, rel)

    def _tolerance_check(self, x: np.ndarray, y_ort: np.ndarray, rel) -> CexCheck:
        best_excess, best_margin = math.inf, math.inf
        for case in self.spec.cases:
            box = case.region
            excess = float(max(0.0, np.max(box.lower - x), np.max(x - box.upper)))
            best_excess = min(best_excess, excess)
            if excess > VNNCOMP_ATOL:
                continue
            if not case.disjuncts:
                best_margin = -math.inf
            for dj in case.disjuncts:
                m = float(np.max(dj.C @ y_ort + dj.d)) if len(dj.d) else -math.inf
                best_margin = min(best_margin, m)
        if not np.all(np.isfinite(y_ort)):
            return CexCheck("invalid", "onnxruntime's output is not finite", None,
                            best_excess, rel)
        if best_margin <= VNNCOMP_ATOL:
            return CexCheck("tolerance", "violates only within VNN-COMP's tolerance",
                            best_margin, best_excess, rel)
        if best_excess > VNNCOMP_ATOL:
            return CexCheck("invalid", f"outside the input box by {best_excess:.3g}", None,
                            best_excess, rel)
        return CexCheck("invalid", f"property not violated on onnxruntime (margin "
                                   f"{best_margin:.4g} > 0)", best_margin, best_excess, rel)


@dataclasses.dataclass(frozen=True)
class Witness:
    """A planted counterexample from ``hybridver plant``'s sealed witness file."""

    x: np.ndarray
    y: np.ndarray | None
    margin: float | None


def instance_key(onnx: str, vnnlib: str) -> tuple[str, str]:
    """How an instance is named across files: its CSV paths, normalized, without ``.gz``."""
    return (strip_gz(posixpath.normpath(onnx.replace("\\", "/"))),
            strip_gz(posixpath.normpath(vnnlib.replace("\\", "/"))))


def read_witnesses(path: Path) -> dict[tuple[str, str], Witness]:
    """``{instance_key: Witness}`` of a ``hybridver-witnesses/1`` file::

        {"format": "hybridver-witnesses/1", "benchmark": "...",
         "instances": [{"onnx": "onnx/..", "vnnlib": "vnnlib/..", "x": [...], "y": [...],
                        "margin": float}]}
    """
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise HybridverInputError(f"cannot read witness file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise HybridverInputError(f"witness file {path}: not JSON ({exc.msg}, line "
                                  f"{exc.lineno})") from None
    if not isinstance(data, dict) or data.get("format") != WITNESS_FORMAT:
        raise HybridverInputError(f"witness file {path}: format is not '{WITNESS_FORMAT}'")
    found = {}
    for k, item in enumerate(data.get("instances") or []):
        try:
            x = np.asarray(item["x"], dtype=np.float64).reshape(-1)
            y = None if item.get("y") is None else np.asarray(item["y"], dtype=np.float64)
            margin = item.get("margin")
            found[instance_key(str(item["onnx"]), str(item["vnnlib"]))] = Witness(
                x, y, None if margin is None else float(margin))
        except (KeyError, TypeError, ValueError) as exc:
            raise HybridverInputError(f"witness file {path}: instance {k}: bad entry "
                                      f"({exc!r})") from None
    return found
