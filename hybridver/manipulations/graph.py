"""The network over manipulation parameters: the affine map (and clip) put in front.

:func:`parameter_graph` builds a new :class:`~hybridver.ir.graph.NetworkGraph` whose input
is the parameter vector ``p`` (per-sample shape ``(1, k)``)::

    p --LINEAR(weight=A, bias=offset)--> (1, n) --RESHAPE--> input shape
      [--clip: lo + relu(x - lo) - relu(x - hi)-->]  the original network
      [--CONCAT with the norm cuts' measures of p (spec.cuts)]

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
    outputs = graph.outputs
    if spec.cuts:
        outputs = (_with_cuts(b, params, graph.output_node, spec),)
    return NetworkGraph(b.nodes(), (params,), outputs, name=f"{graph.name}+manipulation")


def _with_cuts(b: GraphBuilder, params: str, out, spec: ManipulationSpec) -> str:
    """The class scores ``(1, n_classes)`` followed by each cut's measure: ``sum |p_i|``
    as ReLUs (``relu(v) + relu(-v)``) or ``sum p_i^2`` as POW 2; ``(1, n_outputs)``."""
    k = spec.n_params
    parts = [b.emit(OpKind.RESHAPE, (out.name,), (1, spec.n_classes), base="manipulation_scores")]
    for g, group in enumerate(spec.cuts):
        m = len(group.columns)
        pick = np.zeros((m, k))
        pick[np.arange(m), list(group.columns)] = 1.0
        v = b.emit(OpKind.LINEAR, (params,), (1, m), base=f"manipulation_cut{g}",
                   consts={"weight": pick})
        if group.order == 1:
            neg = b.emit(OpKind.NEG, (v,), (1, m), base=f"manipulation_cut{g}_neg")
            terms = b.emit(OpKind.ADD, (b.emit(OpKind.RELU, (v,), (1, m),
                                               base=f"manipulation_cut{g}_pos"),
                                        b.emit(OpKind.RELU, (neg,), (1, m),
                                               base=f"manipulation_cut{g}_negpart")),
                           (1, m), base=f"manipulation_cut{g}_abs")
        else:
            two = b.constant(np.array(2.0), base=f"manipulation_cut{g}_two")
            terms = b.emit(OpKind.POW, (v, two), (1, m), base=f"manipulation_cut{g}_square")
        parts.append(b.emit(OpKind.LINEAR, (terms,), (1, 1), base=f"manipulation_cut{g}_sum",
                            consts={"weight": np.ones((1, m))}))
    return b.emit(OpKind.CONCAT, tuple(parts), (1, spec.n_outputs), base="manipulation_outputs",
                  attrs={"axis": 1})


class ParameterModel:
    """The real model over parameters: ``p`` ``(batch, 1, k)`` -> the original model's
    output on the images ``spec.images(p)`` rounded to ``input_dtype`` (with the cuts'
    measures after it, as the network over parameters has them); ``output_shape``: that
    network's output shape.

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
        """Scores of the images (then each cut's measure of ``p``, in float64)."""
        p = np.asarray(p, dtype=np.float64).reshape(np.shape(p)[0], -1)
        y = self.run_images(self.spec.images(p))
        if self.spec.cuts:
            y = np.concatenate([y] + [g.measure(p)[:, None] for g in self.spec.cuts], axis=1)
        return y.reshape(p.shape[0], *self.output_shape)
