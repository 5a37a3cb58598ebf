"""The check of every run: the IR against the real model, inside the spec's input region.

A verdict is about the model that onnxruntime (or the torch module) runs, but the bounds
and back ends reason about the IR.  Before a run, :func:`check_model` compares them:

* shapes: the IR's input and output shapes equal the real model's (when it declares
  them: :class:`~hybridver.frontends.onnx.runtime.OnnxRuntimeModel` does);
* values: on ``n`` probe points of the spec's input region (:func:`probe_points`: each
  case's centre, a random vertex, its lower and upper corners, then uniform points, the
  cases taken in turn), rounded to the model's input dtype, the IR's float64 output and
  the real model's differ by at most ``CHECK_TOLERANCE`` relative to each point's largest
  output (:func:`~hybridver.frontends.onnx.runtime.output_differences`).

A mismatch raises :class:`ModelMismatchError` (bad input: the CLI prints one line and
exits 2) naming the first ONNX node whose value differs, never a verdict.  The check
catches a conversion whose semantics differ from the real model's; it does not prove the
two equal (see docs/soundness.md, "The IR is the real model").
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hybridver.errors import ModelLoadError
from hybridver.frontends.onnx.runtime import CHECK_TOLERANCE, output_differences
from hybridver.ir.evaluate import evaluate

__all__ = ["ModelMismatchError", "check_loaded_model", "check_model", "check_shapes",
           "probe_points"]

#: seed of the random vertices and uniform points: the same probe points on every run
PROBE_SEED = 0


class ModelMismatchError(ModelLoadError):
    """The imported network computes something else than the real model."""


def probe_points(spec, n: int, seed: int = PROBE_SEED) -> np.ndarray:
    """``n`` points ``(n, n_inputs)`` of the spec's input region, float64.

    Point ``k`` lies in case ``k mod C`` (``C`` cases; with more cases than points, ``n``
    cases spread evenly over the list) and is, by its round ``k // C`` over that case:
    the box's centre, a random vertex, the lower corner, the upper corner, then uniform
    random points.  A spec without cases gives an empty array.
    """
    cases = spec.cases
    if not cases or n <= 0:
        return np.zeros((0, spec.n_inputs))
    rng = np.random.default_rng(seed)
    c = len(cases)
    points = []
    for k in range(n):
        box = cases[k % c if c <= n else (k * c) // n].region
        lo, hi = box.lower, box.upper
        round_ = k // c if c <= n else 0
        if round_ == 0:
            x = box.center
        elif round_ == 1:
            x = np.where(rng.random(box.n) < 0.5, lo, hi)
        elif round_ == 2:
            x = lo.copy()
        elif round_ == 3:
            x = hi.copy()
        else:
            x = lo + rng.random(box.n) * (hi - lo)
        points.append(np.clip(x, lo, hi))
    return np.stack(points)


def check_shapes(graph, real_model, source: str) -> None:
    """The IR's input and output shapes are the real model's (where it declares them)."""
    for what, ours, node in (("input", "input_shape", graph.input_node),
                             ("output", "output_shape", graph.output_node)):
        theirs = getattr(real_model, ours, None)
        if theirs is not None and tuple(theirs) != tuple(node.shape):
            raise ModelMismatchError(
                f"{source}: the imported network's {what} shape {tuple(node.shape)} differs "
                f"from the real model's {tuple(theirs)}")


def check_model(graph, real_model: Callable[[np.ndarray], np.ndarray], input_dtype,
                points: np.ndarray, source: str, checked_by: str = "the real model",
                locate: Callable[[np.ndarray], str | None] | None = None,
                where: str = "of the spec's input region") -> None:
    """Raise :class:`ModelMismatchError` unless the IR ``graph`` agrees with ``real_model``.

    ``real_model`` maps ``(batch, *input_shape)`` to ``(batch, *output_shape)``;
    ``input_dtype``: the dtype the real model runs in; ``points``: ``(n, n_inputs)``
    probe points (none: shapes only), rounded to ``input_dtype`` so that both sides get
    exactly the same values; ``locate(x)`` (``x: (1, *input_shape)``) describes the
    first node that differs on ``x``, or None; ``where`` describes the points.
    """
    check_shapes(graph, real_model, source)
    x = np.asarray(points, dtype=np.float64)
    if x.shape[0] == 0:
        return
    in_shape = tuple(graph.input_node.shape)
    x = x.reshape(-1, *in_shape).astype(input_dtype)
    # one point per call, as counterexamples are confirmed
    ref = [np.asarray(real_model(x[k:k + 1]), dtype=np.float64) for k in range(x.shape[0])]
    ours = evaluate(graph, x.astype(np.float64)).detach().cpu().numpy().reshape(len(x), -1)
    if any(r.size != ours.shape[1] for r in ref):
        raise ModelMismatchError(
            f"{source}: the imported network has {ours.shape[1]} outputs, {checked_by} "
            f"{ref[0].size} (output shape {ref[0].shape[1:]})")
    ref = np.stack([r.reshape(-1) for r in ref])
    abs_diff, rel_diff = output_differences(ours, ref)
    bad = np.nonzero(rel_diff > CHECK_TOLERANCE)[0]
    if not bad.size:
        return
    k = int(bad[0])
    node = locate(x[k:k + 1]) if locate is not None else None
    found = ("" if locate is None else
             f"; first differing node: {node}" if node else
             "; no named intermediate tensor differs")
    raise ModelMismatchError(
        f"{source}: the imported network differs from {checked_by} at probe point {k} "
        f"{where} (outputs: max abs diff {abs_diff[k]:.3g}, max rel diff {rel_diff[k]:.3g} "
        f"> tolerance {CHECK_TOLERANCE:g}){found}")


def check_loaded_model(model, spec, n: int) -> None:
    """:func:`check_model` for a :class:`hybridver.api.LoadedModel`; an ONNX model's
    mismatch names the first node that differs (:mod:`.onnx.runtime_check`)."""
    locate = None
    path = getattr(model.real_model, "path", None)
    if model.checked_by == "onnxruntime" and path is not None:
        from hybridver.frontends.onnx.runtime_check import first_differing_node

        def locate(x: np.ndarray) -> str | None:
            return first_differing_node(path, model.graph, x)
    check_model(model.graph, model.real_model, model.input_dtype, probe_points(spec, n),
                model.source, model.checked_by, locate)
