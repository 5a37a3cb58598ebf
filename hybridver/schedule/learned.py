"""A scheduler policy that learns from the timings of the jobs it ran.

:class:`TimingModel` keeps, per back end, two small estimates built from every finished job
``(features, back end, decisive or not, seconds)``:

* the chance of a decisive outcome (INFEASIBLE, or an exact encoding's CANDIDATE): a
  success rate per bucket of unstable ReLUs (piecewise-linear and smooth apart, likely
  counterexamples apart: :func:`bucket`), smoothed
  by ``prior_count`` pseudo-observations at one half;
* the time of a decisive outcome: ridge least squares of ``log(seconds)`` on a few features
  (:func:`regressors`), kept as its sufficient statistics ``A = ridge I + sum x x^T`` and
  ``b = sum x log t``.

Every update first multiplies a back end's regression statistics, and the counts of the
bucket it falls in, by ``decay``, so old runs fade and counts are effective counts.  The
model is a few numbers per back end, saved as JSON (:meth:`TimingModel.save`, atomic) and
read back at the next run (:func:`load_model`; a corrupt or foreign-version file is ignored
with a warning).  Concurrent runs sharing one file: the last to finish wins.

:class:`LearnedPolicy` starts from :class:`~hybridver.schedule.policy.Policy`'s decision
and changes only which single back end runs: among the back ends that accept the
subproblem, it takes the one with the least predicted expected time to a decisive answer,
``(p t + (1 - p) budget) / p``, counting only back ends with at least ``min_observations``
observations in the subproblem's bucket.  While the fixed choice has fewer, the decision is
the fixed policy's (so with no data it is exactly :class:`Policy`); when the best known back
end rarely decides (``p < explore_below``), the least-observed other eligible back end is
tried.  Keeping branching, budgets, portfolio races and exact-arithmetic choices stay the
fixed policy's.  It never decides what counts as a proof: outcomes are the back ends'.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import math
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from hybridver.backends.base import Capabilities
from hybridver.schedule.features import SubproblemFeatures
from hybridver.schedule.policy import Action, Decision, Policy, PolicyConfig, accepts

MODEL_VERSION = 1
#: upper edges of the unstable-ReLU buckets of the success rates
BUCKET_EDGES = (4, 16, 48, 160)
#: names of the regressors of the log-time model, in order
REGRESSORS = ("one", "log_unstable", "cex_likelihood", "no_likelihood", "stagnated",
              "smooth", "log_depth", "log_nodes")
AUTO_PATH = "auto"
#: a cex likelihood from which success rates are kept apart
CEX_LIKELY = 0.99


@dataclasses.dataclass(frozen=True)
class LearningConfig:
    """``min_observations``: effective observations of a back end in a bucket before its
    prediction is used; ``explore_below``: try an unobserved back end when the best known
    one decides less often than this; ``decay``: of old statistics per update; ``ridge``:
    of the log-time regression; ``prior_count``: pseudo-observations of the success rate."""

    min_observations: float = 5.0
    explore_below: float = 0.5
    decay: float = 0.995
    ridge: float = 1.0
    prior_count: float = 1.0

    def __post_init__(self) -> None:
        if not (self.min_observations >= 0 and 0 < self.decay <= 1 and self.ridge > 0
                and self.prior_count > 0 and 0 <= self.explore_below <= 1):
            raise ValueError("need min_observations >= 0, 0 < decay <= 1, ridge > 0, "
                             "prior_count > 0 and 0 <= explore_below <= 1")


def default_model_path() -> Path:
    """``$XDG_CACHE_HOME/hybridver/scheduler-model.json`` (``~/.cache`` without it)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hybridver" / "scheduler-model.json"


def resolve_model_path(setting: str | None) -> Path | None:
    """``SchedulerConfig.model_path`` as a path: ``"auto"`` the default cache file, None or
    ``""`` no persistence, anything else that path."""
    if not setting:
        return None
    return default_model_path() if setting == AUTO_PATH else Path(setting).expanduser()


def bucket(features: SubproblemFeatures) -> str:
    """``"pl<k>"`` or ``"smooth<k>"``, k the index of the unstable-ReLU range, with
    ``"-cex"`` when a counterexample is likely (``cex_likelihood >= CEX_LIKELY``: there a
    back end that finds points fast decides, one that proves fast times out)."""
    form, lik = features.form, features.cex_likelihood
    k = bisect.bisect_left(BUCKET_EDGES, form.unstable_relus)
    cex = "-cex" if lik is not None and lik >= CEX_LIKELY else ""
    return f"{'pl' if form.piecewise_linear else 'smooth'}{k}{cex}"


def regressors(features: SubproblemFeatures) -> np.ndarray:
    """The features of the log-time model, shape ``(len(REGRESSORS),)``, all O(1)."""
    form, lik = features.form, features.cex_likelihood
    return np.array([1.0, math.log1p(form.unstable_relus) / 4,
                     0.5 if lik is None else lik, float(lik is None),
                     float(features.stagnated), float(not form.piecewise_linear),
                     math.log1p(max(features.depth, 0)) / 4, math.log1p(form.n_nodes) / 8])


@dataclasses.dataclass(frozen=True)
class Prediction:
    """``observations``: effective count in the bucket; ``p_decisive``; ``time_s``: of a
    decisive outcome (the budget when none was seen); ``cost_s``: expected seconds per
    decisive answer."""

    observations: float
    p_decisive: float
    time_s: float
    cost_s: float


class _BackendModel:
    def __init__(self, ridge: float) -> None:
        d = len(REGRESSORS)
        self.a = ridge * np.eye(d)
        self.b = np.zeros(d)
        self.timed = 0.0                      # effective count of decisive, timed outcomes
        self.buckets: dict[str, list[float]] = {}   # key -> [decisive, total]

    def update(self, key: str, x: np.ndarray, decisive: bool, seconds: float,
               cfg: LearningConfig) -> None:
        d = len(REGRESSORS)
        self.a = cfg.decay * self.a + (1 - cfg.decay) * cfg.ridge * np.eye(d)
        self.b *= cfg.decay
        self.timed *= cfg.decay
        counts = self.buckets.setdefault(key, [0.0, 0.0])   # a rare bucket keeps its counts
        counts[0] = cfg.decay * counts[0] + float(decisive)
        counts[1] = cfg.decay * counts[1] + 1.0
        if decisive:
            self.a += np.outer(x, x)
            self.b += x * math.log(max(seconds, 1e-3))
            self.timed += 1.0

    def to_dict(self) -> dict:
        return {"a": self.a.tolist(), "b": self.b.tolist(), "timed": self.timed,
                "buckets": self.buckets}

    @classmethod
    def from_dict(cls, data: dict, ridge: float) -> "_BackendModel":
        d = len(REGRESSORS)
        out = cls(ridge)
        a, b = np.asarray(data["a"], dtype=float), np.asarray(data["b"], dtype=float)
        if a.shape != (d, d) or b.shape != (d,) or not (np.all(np.isfinite(a)) and
                                                        np.all(np.isfinite(b))):
            raise ValueError("statistics of the wrong shape")
        if not np.allclose(a, a.T):
            raise ValueError("statistics not symmetric")
        np.linalg.cholesky(a)          # LinAlgError (a ValueError) unless positive definite
        out.a, out.b, out.timed = a, b, float(data["timed"])
        out.buckets = {str(k): [float(v[0]), float(v[1])] for k, v in data["buckets"].items()}
        if any(not 0 <= c[0] <= c[1] < math.inf for c in out.buckets.values()) or \
                not 0 <= out.timed < math.inf:
            raise ValueError("counts out of range")
        return out


class TimingModel:
    """Per back end: success rate by bucket and log-time regression (module docstring)."""

    def __init__(self, config: LearningConfig = LearningConfig()) -> None:
        self.config = config
        self._models: dict[str, _BackendModel] = {}
        self.updates = 0                   # observations since made or loaded

    @property
    def backends(self) -> list[str]:
        return sorted(self._models)

    def observe(self, features: SubproblemFeatures, backend: str, decisive: bool,
                seconds: float) -> None:
        """One finished (not cancelled) job of ``backend`` on a subproblem with
        ``features``: decisive or not, after ``seconds``."""
        if not math.isfinite(seconds) or seconds < 0:
            return
        model = self._models.setdefault(backend, _BackendModel(self.config.ridge))
        model.update(bucket(features), regressors(features), decisive, seconds, self.config)
        self.updates += 1

    def predict(self, features: SubproblemFeatures, backend: str, budget_s: float
                ) -> Prediction:
        """What ``backend`` is expected to do on ``features`` within ``budget_s``."""
        budget_s = max(budget_s, 1e-3)
        model = self._models.get(backend)
        decisive, total = (0.0, 0.0) if model is None else \
            model.buckets.get(bucket(features), (0.0, 0.0))
        k = self.config.prior_count
        p = (decisive + k / 2) / (total + k)
        if model is None or model.timed <= 0:
            t = budget_s
        else:
            beta = np.linalg.solve(model.a, model.b)
            t = min(budget_s, math.exp(min(float(regressors(features) @ beta), 50.0)))
        cost = (p * t + (1 - p) * budget_s) / max(p, 1e-3)
        return Prediction(total, p, t, cost)

    # -------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        return {"version": MODEL_VERSION, "regressors": list(REGRESSORS),
                "bucket_edges": list(BUCKET_EDGES), "cex_likely": CEX_LIKELY,
                "backends": {n: m.to_dict() for n, m in sorted(self._models.items())}}

    @classmethod
    def from_dict(cls, data: dict, config: LearningConfig = LearningConfig()) -> "TimingModel":
        """Raises ValueError (or KeyError/TypeError) on anything but this version's layout."""
        if not isinstance(data, dict) or data.get("version") != MODEL_VERSION or \
                data.get("cex_likely") != CEX_LIKELY or \
                data.get("regressors") != list(REGRESSORS) or \
                data.get("bucket_edges") != list(BUCKET_EDGES):
            raise ValueError("not a version-%d scheduler model" % MODEL_VERSION)
        model = cls(config)
        model._models = {str(name): _BackendModel.from_dict(m, config.ridge)
                         for name, m in data["backends"].items()}
        return model

    def save(self, path: str | Path) -> bool:
        """Write atomically (a temporary file in the same folder, then ``os.replace``);
        False with a warning when the folder cannot be written."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(self.to_dict(), f)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            warnings.warn(f"scheduler model not saved to {path}: {exc}", stacklevel=2)
            return False
        return True


def load_model(path: str | Path | None, config: LearningConfig = LearningConfig()
               ) -> TimingModel:
    """The model saved at ``path``; an empty one when there is none, and (with a warning)
    when the file is unreadable, corrupt or of another version."""
    if path is None or not Path(path).exists():
        return TimingModel(config)
    try:
        with open(path) as f:
            return TimingModel.from_dict(json.load(f), config)
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        warnings.warn(f"scheduler model {path} ignored ({type(exc).__name__}: {exc}); "
                      "starting from the fixed policy", stacklevel=2)
        return TimingModel(config)


class LearnedPolicy(Policy):
    """:class:`Policy` whose single-back-end choice follows a :class:`TimingModel`; the
    scheduler calls :meth:`observe` for every finished job."""

    def __init__(self, config: PolicyConfig = PolicyConfig(),
                 model: TimingModel | None = None) -> None:
        super().__init__(config)
        self.model = model if model is not None else TimingModel()

    def observe(self, features: SubproblemFeatures, backend: str, decisive: bool,
                seconds: float) -> None:
        self.model.observe(features, backend, decisive, seconds)

    def save(self, path: str | Path) -> None:
        """Persist the model when it learned something since it was loaded."""
        if self.model.updates and self.model.save(path):
            self.model.updates = 0

    def decide(self, features: SubproblemFeatures,
               capabilities: Mapping[str, Capabilities]) -> Decision:
        fixed = super().decide(features, capabilities)
        form = features.form
        if fixed.action is not Action.RUN or len(fixed.backends) != 1 or \
                (form.piecewise_linear and form.unstable_relus <= self.config.exact_max_unstable):
            return fixed
        first = fixed.backends[0]
        others = sorted((n for n, c in capabilities.items() if n != first and accepts(c, form)),
                        key=lambda n: (capabilities[n].exact_arithmetic, n))
        ranked = [first] + others
        preds = {n: self.model.predict(features, n, fixed.budget_s) for n in ranked}
        need = self.model.config.min_observations
        known = [n for n in ranked if preds[n].observations >= need]
        if first not in known:
            return fixed
        best = min(known, key=lambda n: (preds[n].cost_s, ranked.index(n)))
        unknown = [n for n in ranked if n not in known]
        if preds[best].p_decisive < self.model.config.explore_below and unknown:
            pick = min(unknown, key=lambda n: (preds[n].observations, ranked.index(n)))
            why = (f"learned: {best} decisive {preds[best].p_decisive:.2f} of the time; "
                   f"trying {pick}")
        elif best == first:
            return fixed
        else:
            pick = best
            why = (f"learned: {pick} expected {preds[pick].cost_s:.3g} s per decisive answer "
                   f"against {preds[first].cost_s:.3g} s for {first}")
        return Decision(Action.RUN, (pick,), fixed.budget_s,
                        f"{why}, {form.unstable_relus} unstable ReLUs")
