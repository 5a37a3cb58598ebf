"""The network over manipulation parameters: the affine map (and clip) put in front.

:func:`parameter_graph` builds a new :class:`~hybridver.ir.graph.NetworkGraph` whose input
is the parameter vector ``p`` (per-sample shape ``(1, k)``)::

    p --LINEAR(weight=A, bias=offset)--> (1, n) --RESHAPE--> input shape
      [--clip: lo + relu(x - lo) - relu(x - hi)-->]  the original network

The clip is written with ReLUs (as the ONNX importer writes ``Clip``), which every bound
method and exact back end handles exactly, so no approximation enters.
:class:`ParameterModel` is the matching real model: it computes the image in float64,
rounds it to the model's input dtype, and runs the original model (onnxruntime or torch)
on it, so a counterexample over ``p`` is confirmed by the real model on a real image.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from hybridver.ir.builder import GraphBuilder
from hybridver.ir.graph import NetworkGraph
from hybridver.ir.ops import OpKind
from hybridver.manipulations.affine import ManipulationSpec

__all__ = ["ParameterModel", "parameter_graph"]


def parameter_graph(graph: NetworkGraph, spec: ManipulationSpec) -> NetworkGraph:
    """``graph`` with its input replaced by the manipulation map of ``spec``."""
    inp = graph.input_node
    amap = spec.amap
    n, k = amap.columns.shape
    if n != inp.size:
        raise ValueError(f"the map makes {n} entries, the model input has {inp.size}")
    rest = [node for node in graph.nodes() if node.name != inp.name]
    b = GraphBuilder(taken=[node.name for node in graph.nodes()])
    params = b.emit(OpKind.INPUT, (), (1, k), base="manipulation_params")
    flat = b.emit(OpKind.LINEAR, (params,), (1, n), base="manipulation_map",
                  consts={"weight": np.array(amap.columns, dtype=np.float64),
                          "bias": np.array(amap.offset, dtype=np.float64)})
    if spec.clip is None:
        b.emit(OpKind.RESHAPE, (flat,), inp.shape, name=inp.name)
    else:
        shaped = b.emit(OpKind.RESHAPE, (flat,), inp.shape, base="manipulation_image")
        lo = b.constant(np.array(float(spec.clip[0])), base="manipulation_clip_lo")
        hi = b.constant(np.array(float(spec.clip[1])), base="manipulation_clip_hi")
        low = b.emit(OpKind.RELU, (b.emit(OpKind.SUB, (shaped, lo), inp.shape,
                                          base="manipulation_low_diff"),),
                     inp.shape, base="manipulation_low_relu")
        high = b.emit(OpKind.RELU, (b.emit(OpKind.SUB, (shaped, hi), inp.shape,
                                           base="manipulation_high_diff"),),
                      inp.shape, base="manipulation_high_relu")
        raised = b.emit(OpKind.ADD, (lo, low), inp.shape, base="manipulation_raised")
        b.emit(OpKind.SUB, (raised, high), inp.shape, name=inp.name)
    for node in rest:
        b.add(node)
    return NetworkGraph(b.nodes(), (params,), graph.outputs, name=f"{graph.name}+manipulation")


class ParameterModel:
    """The real model over parameters: ``p`` ``(batch, 1, k)`` -> the original model's
    output on the images ``spec.images(p)`` rounded to ``input_dtype``.

    ``images_fed`` keeps the last batch of images it ran (``(batch, *input_shape)``, in
    the input dtype), so the caller can report exactly what the real model saw.
    """

    def __init__(self, real_model: Callable[[np.ndarray], np.ndarray], spec: ManipulationSpec,
                 input_dtype: Any, output_shape: tuple[int, ...]):
        self.real_model, self.spec = real_model, spec
        self.output_shape = tuple(output_shape)
        self.input_dtype = np.dtype(input_dtype)
        self.input_shape = (1, spec.n_params)
        self.images_fed: np.ndarray | None = None

    def run_images(self, x: np.ndarray) -> np.ndarray:
        """The original model on images ``x`` ``(m, n)`` (rounded to its dtype), one call
        per image as counterexamples are confirmed; ``(m, n_out)`` float64."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, *self.spec.input_shape)
        x = x.astype(self.input_dtype)
        self.images_fed = x
        out = [np.asarray(self.real_model(x[i:i + 1]), dtype=np.float64).reshape(1, -1)
               for i in range(x.shape[0])]
        return np.concatenate(out, axis=0) if out else np.zeros((0, self.spec.n_classes))

    def __call__(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        y = self.run_images(self.spec.images(p.reshape(p.shape[0], -1)))
        return y.reshape(p.shape[0], *self.output_shape)
