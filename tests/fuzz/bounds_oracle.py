"""Bounds against sampled outputs.

:func:`check_bounds` computes bounds of every output over a box with each method of
:func:`hybridver.bounds.engine.compute_bounds` (IBP, CROWN, alpha-CROWN,
alpha-beta-CROWN) in float32 and float64, samples the box (uniform points, its centre and
its corners), and checks every sampled output lies within every bound:

* the IR evaluated in float64 (the network the bounds are about) within
  :data:`~tests.fuzz.oracles.BOUNDS_F64_TOLERANCE` of the scale;
* onnxruntime (float32 execution) within :data:`~tests.fuzz.oracles.BOUNDS_ORT_TOLERANCE`.

Also checked: ``lower <= upper`` and no NaN.  Each method is checked on its own for
soundness; tightness is not compared.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from tests.fuzz.networks import Network, box_samples, random_box
from tests.fuzz.oracles import (BOUNDS_F64_TOLERANCE, BOUNDS_ORT_TOLERANCE, Finding, _crash,
                                _short, ort_session)

METHODS = ("ibp", "crown", "alpha-crown", "alpha-beta-crown")
DTYPES = ("float32", "float64")


def _excess(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Per sample: how far the worst output leaves ``[lower, upper]``, relative to
    ``max(1, max |y|)`` of that sample (0 when inside).  ``y``: (m, n_out)."""
    out = np.maximum(lower[None] - y, y - upper[None]).max(axis=1)
    scale = np.maximum(1.0, np.abs(y).max(axis=1))
    return np.maximum(out, 0.0) / scale


def check_bounds(net: Network, rng: np.random.Generator, n_samples: int = 500,
                 methods=METHODS, dtypes=DTYPES) -> tuple[Finding, dict]:
    """Returns the finding and the box and samples' description (for a reproducer)."""
    import torch

    from hybridver.api import load_model
    from hybridver.bounds.engine import compute_bounds
    from hybridver.bounds.intervals import UnsupportedBoundError
    from hybridver.bounds.options import BoundConfig
    from hybridver.errors import HybridverInputError
    from hybridver.ir.evaluate import evaluate

    lo, hi = random_box(rng, net.n_in)
    info = {"lower": lo.tolist(), "upper": hi.tolist()}
    x = box_samples(rng, lo, hi, n_samples)
    session = ort_session(net.model)
    y_ort = np.concatenate([session.run(None, {"x": xi[None]})[0] for xi in x]).astype(
        np.float64)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "net.onnx"
        path.write_bytes(net.model)
        try:
            model = load_model(path)
        except HybridverInputError as exc:
            return Finding("refused", _short(exc)), info
        except Exception as exc:  # noqa: BLE001
            return _crash(exc), info
    graph = model.graph
    y_ir = evaluate(graph, torch.as_tensor(x.astype(np.float64)).reshape(
        len(x), *graph.input_node.shape)).reshape(len(x), -1).numpy()
    problems, refused, worst = [], [], 0.0
    for method in methods:
        for dtype in dtypes:
            tag = f"{method}/{dtype}"
            try:
                res = compute_bounds(graph, lo[None], hi[None],
                                     config=BoundConfig(method=method, dtype=dtype))
            except (UnsupportedBoundError, HybridverInputError) as exc:
                refused.append(f"{tag}: {_short(exc)}")
                continue
            except Exception as exc:  # noqa: BLE001
                return Finding("crash", f"{tag}: {_crash(exc).detail}"), info
            lower = res.lower.detach().cpu().double().numpy().reshape(-1)
            upper = res.upper.detach().cpu().double().numpy().reshape(-1)
            if np.isnan(lower).any() or np.isnan(upper).any() or np.any(lower > upper):
                problems.append(f"{tag}: NaN or lower > upper: {lower} {upper}")
                continue
            e64 = _excess(y_ir, lower, upper)
            e32 = _excess(y_ort, lower, upper)
            worst = max(worst, float(e32.max()))
            for name, excess, tol, y in (("IR float64", e64, BOUNDS_F64_TOLERANCE, y_ir),
                                         ("onnxruntime", e32, BOUNDS_ORT_TOLERANCE, y_ort)):
                k = int(excess.argmax())
                if excess[k] > tol:
                    problems.append(f"{tag}: {name} output {y[k].tolist()} at x="
                                    f"{x[k].tolist()} leaves [{lower.tolist()}, "
                                    f"{upper.tolist()}] by {excess[k]:.3e} (relative)")
    info["worst_relative_excess_ort"] = worst
    if problems:
        return Finding("disagree", "; ".join(problems[:3])), info
    if refused and len(refused) == len(methods) * len(dtypes):
        return Finding("refused", refused[0]), info
    return Finding("agree", f"worst ort excess {worst:.1e}" + (
        f"; refused {len(refused)}" if refused else "")), info
