"""From the verdict over parameters to the verdict about the manipulation family.

:func:`finish` takes the engine's :class:`~hybridver.result.VerificationResult` over the
parameters and decides what it means for the family as the user asked it:

* ``unsat`` stands (the parameter box contains every norm ball and every grid image);
* ``sat`` stands only with parameters in every norm ball (else the ball is searched,
  :mod:`hybridver.manipulations.ball`) and, under ``--grid``, a grid image
  (:mod:`hybridver.manipulations.grid`); the image finally reported is run on the real
  model (:class:`~hybridver.manipulations.graph.ParameterModel`) and must be misclassified
  there;
* under ``--grid``, a one-parameter family whose verdict is still open is decided by
  enumerating the grid.

Whatever cannot be settled this way is ``unknown``, with the reason in ``message``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from hybridver.config import RobustConfig  # the switches live in the settings tree
from hybridver.manipulations.affine import ManipulationSpec
from hybridver.manipulations.ball import ball_attack, in_balls, project
from hybridver.manipulations.graph import ParameterModel
from hybridver.manipulations.grid import enumerable, enumerate_grid, grid_images, snap
from hybridver.result import Verdict, VerificationResult

__all__ = ["RobustConfig", "RobustResult", "finish"]


@dataclasses.dataclass(frozen=True)
class RobustResult:
    """The verdict about the family.

    ``image``: the manipulated image ``(*input_shape)`` the real model misclassified (as
    fed to it, in its input dtype, stored as float64), for ``sat`` only; ``params``: its
    parameters ``(k,)``; ``logits``: the real model's output on it; ``method``: what
    settled the verdict (``"engine"``, ``"ball search"``, ``"grid snap"``,
    ``"grid enumeration"``); ``engine``: the run over parameters.
    """

    verdict: Verdict
    spec: ManipulationSpec
    method: str
    message: str = ""
    image: np.ndarray | None = None
    params: np.ndarray | None = None
    logits: np.ndarray | None = None
    engine: VerificationResult | None = None
    grid_images_checked: int = 0

    @property
    def predicted(self) -> int | None:
        return None if self.logits is None else int(np.argmax(self.logits))

    def to_json(self) -> dict[str, Any]:
        s = self.spec

        def arr(v):
            return None if v is None else [float(t) for t in np.asarray(v).reshape(-1)]

        out = {"verdict": self.verdict.value, "method": self.method, "message": self.message,
               "label": s.label, "families": list(s.families), "n_params": s.n_params,
               "param_labels": list(s.amap.labels) if s.n_params <= 32 else None,
               "clip": None if s.clip is None else list(s.clip), "grid": s.grid,
               "grid_images_checked": self.grid_images_checked,
               "counterexample": None if self.image is None else {
                   "image": arr(self.image), "params": arr(self.params),
                   "logits": arr(self.logits), "predicted": self.predicted}}
        if self.engine is not None:
            eng = self.engine.to_json()
            out["engine"] = {"verdict": eng["verdict"], "time_s": eng["time_s"],
                             "phases": eng["phases"], "message": eng["message"]}
        return out


def _confirm(spec: ManipulationSpec, real: ParameterModel, p_rows: np.ndarray,
             images: np.ndarray | None = None):
    """The first row misclassified by the real model: ``(p, image fed, logits)`` or None."""
    images = spec.images(p_rows) if images is None else images
    for start in range(0, images.shape[0], 256):
        y = real.run_images(images[start:start + 256])
        bad = np.nonzero(spec.misclassified(y))[0]
        if bad.size:
            i = int(bad[0])
            fed = real.images_fed[i].astype(np.float64)
            return p_rows[start + i], fed.reshape(spec.input_shape), y[i]
    return None


def _sat(spec, method, found, engine, message="", checked=0) -> RobustResult:
    p, image, logits = found
    return RobustResult(Verdict.SAT, spec, method, message, image, np.asarray(p, float),
                        logits, engine, checked)


def finish(spec: ManipulationSpec, engine: VerificationResult, pgraph, real: ParameterModel,
           config: RobustConfig = RobustConfig()) -> RobustResult:
    """The verdict about the family from the engine's verdict over parameters (module
    docstring)."""
    verdict = engine.verdict
    if verdict is Verdict.ERROR:
        return RobustResult(Verdict.ERROR, spec, "engine", engine.message, engine=engine)
    if verdict is Verdict.UNSAT:
        return RobustResult(Verdict.UNSAT, spec, "engine", engine.message, engine=engine)
    why = engine.message
    if verdict is Verdict.SAT:
        p = np.asarray(engine.counterexample.x, dtype=np.float64).reshape(1, -1)
        method = "engine"
        if not in_balls(spec, p[0]):
            method, p = "ball search", None
            if config.ball_search:
                cands = ball_attack(spec, pgraph, project(spec, engine.counterexample.x))
                found = _confirm(spec, real, cands)
                p = None if found is None else found[0].reshape(1, -1)
            why = ("a counterexample exists in the box [-eps, eps]^n around the norm ball, "
                   "but none was found inside the ball")
        if p is not None and spec.grid is None:
            found = _confirm(spec, real, p)
            if found is not None:
                return _sat(spec, method, found, engine)
            why = "the counterexample over parameters was not confirmed again"
        elif p is not None:
            snapped = snap(spec, p[0]) if config.grid_snap else []
            if snapped:
                q = np.stack([s for s, _ in snapped])
                units = np.stack([u for _, u in snapped])
                found = _confirm(spec, real, q, grid_images(spec, units))
                if found is not None:
                    return _sat(spec, "grid snap", found, engine)
            why = "the continuous counterexample does not survive snapping to the grid"
    if spec.grid is not None and config.grid_enumeration and enumerable(spec):
        units, params = enumerate_grid(spec, config.max_grid_images)
        q = np.array([[float(t)] for t in params]).reshape(-1, 1)
        found = _confirm(spec, real, q, grid_images(spec, units)) if len(params) else None
        if found is not None:
            return _sat(spec, "grid enumeration", found, engine, checked=len(params))
        return RobustResult(Verdict.UNSAT, spec, "grid enumeration",
                            f"all {len(params)} grid images are classified {spec.label}",
                            engine=engine, grid_images_checked=len(params))
    if verdict is Verdict.TIMEOUT:
        return RobustResult(Verdict.TIMEOUT, spec, "engine", why, engine=engine)
    return RobustResult(Verdict.UNKNOWN, spec, "engine", why, engine=engine)
