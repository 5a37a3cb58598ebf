"""Public entry points: load a model and a spec, verify.

``verify`` runs the pipeline behind ``hybridver verify`` (``hybridver/pipeline``): the
stages of the config's schedule (falsification whose candidates the real model must
confirm, bound propagation, branch-and-bound with exact back ends beside it), or exact
mode's one stage; whatever they do not settle is ``unknown`` (or ``timeout`` when the
time limit cut it short).  The time limit is one deadline, fixed when the call starts
(``verify_files``: before loading).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybridver.config import Mode, VerifyConfig
from hybridver.errors import HybridverInputError
from hybridver.ir.graph import NetworkGraph
from hybridver.pipeline import run_pipeline
from hybridver.pipeline.self_check import self_check
from hybridver.progress import NullProgress, Progress
from hybridver.result import VerificationResult
from hybridver.specs import Spec, load_vnnlib
from hybridver.specs.instances import existing_file
from hybridver.specs.pinning import pin_to_dtype


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A network in IR form next to the original model that confirms counterexamples.

    ``real_model`` maps ``(batch, *input_shape)`` to ``(batch, *output_shape)``.
    """

    graph: NetworkGraph
    real_model: Any
    checked_by: str
    input_dtype: np.dtype
    source: str

    @property
    def n_inputs(self) -> int:
        return self.graph.input_node.size

    @property
    def n_outputs(self) -> int:
        return self.graph.output_node.size


def load_model(path: str | Path, simplify_graph: bool = True) -> LoadedModel:
    """Import an ONNX model (``.onnx`` or ``.onnx.gz``) and open it in onnxruntime."""
    from hybridver.frontends.onnx import load_onnx
    from hybridver.frontends.onnx import OnnxRuntimeModel
    from hybridver.frontends.model_check import check_shapes
    from hybridver.ir.passes import simplify

    graph = load_onnx(path)
    if simplify_graph:
        graph = simplify(graph)
    real = OnnxRuntimeModel(path)
    check_shapes(graph, real, str(path))
    return LoadedModel(graph, real, "onnxruntime", np.dtype(getattr(real, "input_dtype",
                                                                   np.float32)), str(path))


class _TorchRunner:
    """The module on ``x: (batch, *input_shape)`` -> ``(batch, *output_shape)``, the IR's
    shapes, which include the example's own batch axis: one call on the example's shape
    per sample (or ``batch`` times as many rows in one call)."""

    def __init__(self, module: torch.nn.Module, dtype: torch.dtype, graph: NetworkGraph):
        self.module, self.dtype = module.eval(), dtype
        self._in, self._out = tuple(graph.input_node.shape), tuple(graph.output_node.shape)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(x), dtype=self.dtype)
        batch = x.shape[0]
        if self._in:
            x = x.reshape(batch * self._in[0], *self._in[1:])
        with torch.no_grad():
            y = self.module(x).double().numpy()
        return y.reshape(batch, *self._out) if y.size == batch * int(np.prod(self._out)) else y


def from_module(module: torch.nn.Module, example_input: torch.Tensor) -> LoadedModel:
    """Import a torch module traced with ``example_input`` (shape includes batch dim 1; a
    tensor that requires grad is fine: only its shape and dtype are used)."""
    from hybridver.ir.passes import simplify
    from hybridver.frontends.torch import from_torch
    from hybridver.frontends.torch.example import plain_tensor

    example_input = plain_tensor(example_input)

    graph = simplify(from_torch(module, example_input))
    dtype = example_input.dtype
    return LoadedModel(graph, _TorchRunner(module, dtype, graph), "torch",
                       np.dtype(str(dtype).replace("torch.", "")), type(module).__name__)


def load_spec(path: str | Path, model: LoadedModel) -> Spec:
    """Parse a VNN-LIB file and check its dimensions against the model."""
    return load_vnnlib(path, n_inputs=model.n_inputs, n_outputs=model.n_outputs)


def verify(model: LoadedModel | torch.nn.Module, spec: Spec,
           config: VerifyConfig = VerifyConfig(), progress: Progress | None = None,
           deadline: float | None = None, *, input_shape: tuple[int, ...] | None = None
           ) -> VerificationResult:
    """Verify ``spec`` on ``model``.  Never returns ``sat`` without a counterexample the real
    model confirmed, and never ``unsat`` unless sound bounds refute every disjunct of every
    case (see ``docs/soundness.md``).  First the IR is compared with the real model on
    ``config.load_check_points`` points of the spec's input region: a mismatch raises
    :class:`~hybridver.frontends.model_check.ModelMismatchError`, never a verdict.
    With ``config.self_check.enabled`` an ``unsat`` on a small enough network is decided
    again by an independent exact back end; a disagreement makes the verdict ``error``
    (:mod:`hybridver.pipeline.self_check`).

    ``model``: a :class:`LoadedModel`, or a ``torch.nn.Module`` (imported here with
    :func:`from_module`; the module itself confirms counterexamples).  A module is traced
    on zeros of ``input_shape`` (one input with its batch dimension 1, e.g.
    ``(1, 1, 28, 28)``), or, without it, of the shape its first layer and the spec's input
    dimension give (``Linear``: ``(1, n)``; ``ConvNd``: ``(1, C, s, ..., s)``); see
    :mod:`hybridver.frontends.torch.example`.

    ``progress``: where the run reports its phase and counters (``hybridver.progress``);
    None shows nothing.  The caller owns it and closes it.  ``deadline``: the run's
    absolute ``time.monotonic()`` limit (default: ``config.timeout_s`` from now).
    """
    if isinstance(model, torch.nn.Module):
        from hybridver.frontends.torch.example import example_input
        model = from_module(model, example_input(model, spec.n_inputs, input_shape))
    from hybridver.frontends.model_check import check_loaded_model

    progress = NullProgress() if progress is None else progress
    spec.check_dimensions(model.n_inputs, model.n_outputs)
    spec = pin_to_dtype(spec, model.input_dtype)  # bounds that admit no input of its dtype
    check_loaded_model(model, spec, config.load_check_points)  # the IR is the real model
    if config.mode is Mode.EXACT:
        progress.phase(f"exact ({config.exact.backend})")
    result = run_pipeline(model, spec, config, progress, deadline=deadline)
    return self_check(model, spec, config, result, progress)


def verify_files(model_path: str | Path, spec_path: str | Path,
                 config: VerifyConfig = VerifyConfig(), progress: Progress | None = None,
                 started: float | None = None) -> VerificationResult:
    """Load, then verify; loading time is reported as the ``load`` phase.  The time limit
    counts from ``started`` (a ``time.monotonic()`` value; default: now)."""
    t0 = time.monotonic()
    deadline = (t0 if started is None else started) + config.timeout_s
    model_path, spec_path = existing_file(model_path), existing_file(spec_path)
    if progress is not None:
        progress.phase("load")
    model = load_model(model_path)
    spec = load_spec(spec_path, model)
    load_time = time.monotonic() - t0
    res = verify(model, spec, config, progress, deadline=deadline)
    return dataclasses.replace(res, time_s=res.time_s + load_time,
                               phase_times={"load": load_time, **res.phase_times})


def verify_robust(model: LoadedModel | str | Path, point, label: int, families, *,
                  clip=None, grid: int | None = None, image_shape=None,
                  config: VerifyConfig = VerifyConfig(), robust_config=None,
                  progress: Progress | None = None, deadline: float | None = None):
    """Pointwise safety of ``label`` at ``point`` under manipulation families
    (``hybridver robust``; docs/manipulations.md).  Returns a
    :class:`~hybridver.manipulations.RobustResult`: ``sat`` carries the manipulated image
    the real model misclassified.

    ``model``: a :class:`LoadedModel` or an ONNX path; ``families``: texts such as
    ``"brightness=0.1"`` or ``"patch=4x4@10,12:0.3"`` (summed); ``clip``: ``(lo, hi)``
    pixel range to clip the manipulated image to; ``grid``: decide over the grid of images
    with pixel steps ``(hi - lo) / grid`` (255: 8-bit); ``image_shape``: ``(H, W)`` or
    ``(C, H, W)`` when the input shape does not say it.  The map from parameters to images
    is put in front of the network and ``verify`` runs over the parameters.
    """
    from hybridver.manipulations import (ParameterModel, finish,
                                         manipulation_spec, parameter_graph)

    robust_config = robust_config or config.robust
    if not isinstance(model, LoadedModel):
        model = load_model(existing_file(model))
    spec = manipulation_spec(point, label, families, model.graph.input_node.shape,
                             model.n_outputs, clip=clip, grid=grid, image_shape=image_shape,
                             norm_cut=robust_config.norm_cut)
    pgraph = parameter_graph(model.graph, spec)
    real = ParameterModel(model.real_model, spec, model.input_dtype,
                          pgraph.output_node.shape)
    pmodel = dataclasses.replace(model, graph=pgraph, real_model=real,
                                 input_dtype=np.dtype(np.float64),
                                 checked_by=f"{model.checked_by} (on the manipulated image)")
    engine = verify(pmodel, spec.parameter_spec(), config, progress, deadline)
    return finish(spec, engine, pgraph, real, robust_config)
