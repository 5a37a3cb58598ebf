"""Back ends against each other on planted instances.

:func:`planted_instance` builds a spec whose answer is known:

* ``sat``: a point ``x*`` of the box (interior, a corner or a face), ``y* = f(x*)`` by
  onnxruntime, and one or two rows ``c . y + d <= 0`` that ``y*`` meets with margin ``m``
  (``m`` from 1e-1 down to 1e-6 of the output scale);
* ``unsat``: ``v* = min c . y`` over the box by the independent MILP of
  :mod:`tests.fuzz.milp`, and the row ``c . y <= v* - m`` with ``m`` >= 1e-3 of the
  scale (far above MILP tolerances and float32 execution error); only for networks of
  ReLU / LeakyReLU / Abs.

:func:`check_backends` runs ``verify`` in exact mode with every available back end and in
hybrid mode, and checks: no ``unsat`` on a planted ``sat``; every ``sat`` carries a
counterexample that is in the box and violates the property when onnxruntime runs it
(checked again here); no ``sat`` on a planted ``unsat``; decided verdicts agree.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from tests.fuzz.milp import box_minimum
from tests.fuzz.networks import Network, random_box
from tests.fuzz.oracles import Finding, _crash, _short, ort_session


@dataclasses.dataclass
class Instance:
    lo: np.ndarray
    hi: np.ndarray
    C: np.ndarray
    d: np.ndarray
    expected: str
    spec: dict


def _run(session, x: np.ndarray) -> np.ndarray:
    return np.stack([session.run(None, {"x": xi[None].astype(np.float32)})[0][0]
                     for xi in np.atleast_2d(x)]).astype(np.float64)


def planted_instance(rng: np.random.Generator, net: Network, want: str | None = None
                     ) -> Instance | None:
    """A planted ``sat`` or ``unsat`` instance (``want``, default drawn); None when an
    ``unsat`` one cannot be planted on this network."""
    session = ort_session(net.model)
    lo, hi = random_box(rng, net.n_in)
    want = want or ("sat" if rng.random() < 0.5 else "unsat")
    if want == "unsat" and any(layer[0] == "act" and layer[1] == "maxpool"
                               for layer in net.layers):
        want = "sat"                               # the planting MILP has no max-pool
    if want == "sat":
        where = str(rng.choice(["interior", "corner", "face"]))
        x = rng.uniform(lo, hi)
        if where == "corner":
            x = np.where(rng.random(net.n_in) < 0.5, lo, hi)
        elif where == "face":
            j = int(rng.integers(net.n_in))
            x[j] = lo[j] if rng.random() < 0.5 else hi[j]
        x = np.clip(x.astype(np.float32), lo.astype(np.float32), hi.astype(np.float32))
        y = _run(session, x)[0]
        rows = int(rng.integers(1, 3))
        C = rng.standard_normal((rows, net.n_out))
        scale = max(1.0, float(np.abs(C @ y).max()))
        margin = float(rng.choice([1e-1, 1e-3, 1e-6])) * scale
        d = -(C @ y) - margin                      # C y* + d = -margin <= 0
        return Instance(lo, hi, C, d, "sat", {"witness": x.tolist(), "where": where,
                                               "margin": margin})
    c = rng.standard_normal(net.n_out)
    found = box_minimum(net.layers, c, lo, hi)
    if found is None:
        return None
    v, x_min = found
    scale = max(1.0, abs(v))
    margin = float(rng.choice([1e-1, 1e-2, 1e-3])) * scale
    # unsafe: c . y <= v - margin, i.e. c . y + (margin - v) <= 0
    inst = Instance(lo, hi, c[None], np.asarray([margin - v]), "unsat",
                    {"minimum": v, "minimizer": x_min.tolist(), "margin": margin})
    probe = _run(session, np.concatenate([x_min[None], rng.uniform(lo, hi, (200, lo.size))]))
    if float((probe @ c).min()) < v - margin / 2:      # the planting MILP itself is wrong
        return None
    return inst


def _spec(inst: Instance, n_in: int, n_out: int):
    from hybridver.specs import InputBox, OutputConstraints, Spec, SpecCase
    return Spec((SpecCase(InputBox(inst.lo, inst.hi), (OutputConstraints(inst.C, inst.d),)),),
                n_in, n_out, name="fuzz")


def _configs(timeout: float):
    from hybridver.backends.base import backend_names, get_backend
    from hybridver.config import ExactConfig, Mode, VerifyConfig
    from hybridver.errors import SolverUnavailableError

    configs = {}
    for name in backend_names():
        try:
            get_backend(name)
        except SolverUnavailableError:
            continue
        configs[name] = VerifyConfig(timeout_s=timeout, mode=Mode.EXACT,
                                     exact=ExactConfig(backend=name))
    configs["hybrid"] = VerifyConfig(timeout_s=timeout)
    return configs


def _confirmed(result, inst: Instance, session) -> str:
    """'' when the counterexample really is one, else why not."""
    cex = result.counterexample
    if cex is None:
        return "sat without a confirmed counterexample"
    x = np.asarray(cex.x, dtype=np.float64).reshape(-1)
    if np.any(x < inst.lo) or np.any(x > inst.hi):
        return f"counterexample outside the box: {x.tolist()}"
    y = _run(session, x.astype(np.float32))[0]
    value = inst.C @ y + inst.d
    if np.any(value > 0):
        return f"counterexample not confirmed by onnxruntime: C y + d = {value.tolist()}"
    return ""


def check_backends(net: Network, inst: Instance, timeout: float = 10.0,
                   names: tuple[str, ...] | None = None) -> Finding:
    """Every back end (exact mode) and hybrid mode on ``inst``; see the module docstring."""
    import hybridver
    from hybridver.errors import HybridverInputError
    from hybridver.result import Verdict

    session = ort_session(net.model)
    verdicts, problems = {}, []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "net.onnx"
        path.write_bytes(net.model)
        try:
            model = hybridver.load_model(path)
        except HybridverInputError as exc:
            return Finding("refused", _short(exc))
        except Exception as exc:  # noqa: BLE001
            return _crash(exc)
        spec = _spec(inst, net.n_in, net.n_out)
        for name, config in _configs(timeout).items():
            if names is not None and name not in names:
                continue
            try:
                result = hybridver.verify(model, spec, config)
            except HybridverInputError as exc:
                verdicts[name] = "refused"
                problems.append(("refused", f"{name}: {_short(exc)}"))
                continue
            except Exception as exc:  # noqa: BLE001 - the finding
                verdicts[name] = "crash"
                problems.append(("crash", f"{name}: {_crash(exc).detail}"))
                continue
            verdicts[name] = result.verdict.value
            exact = result.stats.get("exact") or {}
            if exact and exact.get("refuted_by_intervals") == exact.get("subproblems"):
                verdicts[name] += "(intervals)"     # decided before the solver ran
            if result.verdict is Verdict.SAT:
                why = _confirmed(result, inst, session)
                if why:
                    problems.append(("disagree", f"{name}: {why}"))
                elif inst.expected == "unsat":
                    problems.append(("disagree", f"{name}: confirmed sat on a planted unsat "
                                                 "(the planting MILP is wrong?)"))
            elif result.verdict is Verdict.UNSAT and inst.expected == "sat":
                problems.append(("disagree", f"{name}: unsat on a planted sat"))
    summary = " ".join(f"{k}:{v}" for k, v in verdicts.items())
    for kind in ("crash", "disagree"):
        bad = [text for k, text in problems if k == kind]
        if bad:
            return Finding(kind, f"expected {inst.expected}; {summary}; " + "; ".join(bad))
    decided = [v.split("(")[0] for v in verdicts.values()
               if v.split("(")[0] in ("sat", "unsat")]
    if len(set(decided)) > 1:
        return Finding("disagree", f"expected {inst.expected}; {summary}")
    if not decided:
        kind = "refused" if "refused" in verdicts.values() else "undecided"
        return Finding(kind, f"expected {inst.expected}; {summary}")
    return Finding("agree", f"expected {inst.expected}; {summary}")
