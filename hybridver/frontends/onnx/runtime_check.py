"""Finding the first node where the IR and onnxruntime part ways.

When the IR's output differs from onnxruntime's on some input, :func:`first_differing_node`
runs onnxruntime again on an in-memory copy of the model whose graph outputs also list
every intermediate tensor, and compares each tensor with the node of the same name in the
model imported again without simplification (IR node names are ONNX tensor names, see
:mod:`hybridver.frontends.onnx`).  Nodes are visited in topological order, so the first
one off by more than :data:`~hybridver.frontends.onnx.runtime.CHECK_TOLERANCE` is where
the difference starts (helper nodes without an ONNX name show up at their next named
node).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from hybridver.frontends.onnx.reader import read_model_bytes
from hybridver.frontends.onnx.runtime import CHECK_TOLERANCE, output_differences
from hybridver.frontends.onnx.importer import load_onnx
from hybridver.ir.evaluate import evaluate, evaluate_all
from hybridver.ir.ops import OpKind

__all__ = ["first_differing_node"]


def _producers(model: onnx.ModelProto) -> dict[str, tuple[str, str]]:
    """``{tensor name: (op type, node name)}`` for every node output of the main graph."""
    return {t: (n.op_type, n.name or t) for n in model.graph.node for t in n.output if t}


def _intermediates(model: onnx.ModelProto, names: list[str], x: np.ndarray
                   ) -> dict[str, np.ndarray]:
    """onnxruntime's value of each tensor in ``names`` for one sample ``x`` (ONNX shape)."""
    import onnxruntime as ort  # heavy: imported when a session is made

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    listed = {o.name for o in probe.graph.output}
    for name in names:
        if name not in listed:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), sess_options=options,
                                   providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    wanted = [o.name for o in session.get_outputs() if o.name in set(names)]
    values = session.run(wanted, {inp.name: x})
    return dict(zip(wanted, values))


def _first_in(model: onnx.ModelProto, graph, x: np.ndarray) -> str | None:
    """The first named node of ``graph`` whose value on ``x`` differs from onnxruntime's."""
    producers = _producers(model)
    names = [n for n in graph.topological_order
             if n in producers and graph.node(n).op is not OpKind.INPUT]
    if not names:
        return None
    try:
        ref = _intermediates(model, names, np.ascontiguousarray(x[0]))
    except Exception:  # noqa: BLE001 - locating is best effort; the mismatch is reported anyway
        return None
    ours = evaluate_all(graph, np.asarray(x, dtype=np.float64))
    for name in names:
        if name not in ref:
            continue
        theirs = np.asarray(ref[name], dtype=np.float64)
        mine = ours[name][:1].detach().cpu().numpy()
        op, node = producers[name]
        where = f"node '{node}' ({op}, output '{name}')"
        if mine.size != theirs.size:
            return (f"{where}: {mine.size} values in the IR, {theirs.size} in onnxruntime "
                    f"(shape {tuple(theirs.shape)})")
        abs_diff, rel_diff = output_differences(mine.reshape(1, -1), theirs.reshape(1, -1))
        if rel_diff[0] > CHECK_TOLERANCE:
            return f"{where}: max abs diff {abs_diff[0]:.3g}, max rel diff {rel_diff[0]:.3g}"
    return None


def first_differing_node(path: str | Path, graph, x: np.ndarray) -> str | None:
    """Where the IR first differs from onnxruntime on the input ``x``.

    ``x``: one sample, ``(1, *input_shape)`` or flat, in the model's input dtype;
    ``graph``: the IR that differs (usually simplified).  The model is imported again
    without simplification, whose nodes carry the values of the ONNX tensors they are
    named after (the passes may reuse a name for another value: moving an affine map
    across a reshape keeps the reshape's name), and the first of its nodes, in
    topological order, whose tensor differs by more than ``CHECK_TOLERANCE`` (measured
    as for the outputs), or whose size differs, is described, e.g. ``node 'Conv_3' (Conv,
    output 'h3'): max abs diff 0.5, max rel diff 0.5``.  When the import agrees but
    ``graph``'s output does not, the simplification is named; None when neither is
    found or onnxruntime cannot expose the tensors.
    """
    model = onnx.load_from_string(read_model_bytes(Path(path)))
    x = np.asarray(x).reshape(1, *graph.input_node.shape)
    imported = load_onnx(path)
    found = _first_in(model, imported, x)
    if found is not None:
        return found
    y = x.astype(np.float64)
    a = evaluate(imported, y).detach().cpu().numpy()
    b = evaluate(graph, y).detach().cpu().numpy()
    if a.size == b.size and output_differences(b.reshape(1, -1), a.reshape(1, -1)
                                               )[1][0] > CHECK_TOLERANCE:
        return ("none as imported; the simplified graph differs from the imported one "
                "(a simplification pass, hybridver/ir/passes.py)")
    return None
