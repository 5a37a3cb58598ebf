"""Every pooling variant against onnxruntime: the IR computes what onnxruntime computes
(output shape and values), or the importer refuses the model with a clear error.

The sweep covers ceil mode with padding (a last window that starts inside the end padding
is dropped by ONNX, onnxruntime and torch: hybridver once kept it, so a torch export with
``MaxPool2d(ceil_mode=True)`` and padding could be "verified" against the wrong network),
symmetric and asymmetric pads, ``auto_pad`` SAME_UPPER / SAME_LOWER / VALID, dilations
and AveragePool's ``count_include_pad``.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from hybridver.errors import HybridverInputError
from hybridver.frontends.onnx import load_onnx
from hybridver.ir.evaluate import evaluate, pool_output_size


def _model(op: str, size: int, attrs: dict) -> bytes:
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    return onnx.shape_inference.infer_shapes(model).SerializeToString()


def _variants():
    for op, k, s, size, ceil in itertools.product(("MaxPool", "AveragePool"), (2, 3), (1, 2, 3),
                                                  (5, 6, 7), (0, 1)):
        for pads in ((0, 0, 0, 0), (1, 1, 1, 1), (0, 1, 1, 0), (1, 0, 0, 1)):
            if max(pads) >= k:
                continue
            extra = ({"dilations": [1, 1]}, {"dilations": [2, 2]}) if op == "MaxPool" \
                else ({"count_include_pad": 0}, {"count_include_pad": 1})
            for more in extra:
                yield op, size, {"kernel_shape": [k, k], "strides": [s, s], "pads": list(pads),
                                 "ceil_mode": ceil, **more}
        for auto in ("SAME_UPPER", "SAME_LOWER", "VALID"):
            yield op, size, {"kernel_shape": [k, k], "strides": [s, s], "auto_pad": auto,
                             "ceil_mode": ceil}


def _same_variants():
    """auto_pad SAME with dilations, and with kernels shorter than the stride (negative
    SAME padding): where onnxruntime departs from the ONNX definition (found by tests/fuzz:
    it pads a dilated MaxPool as if undilated, and shifts an AveragePool's windows by a
    negative head padding)."""
    for op, k, s, size, auto in itertools.product(("MaxPool", "AveragePool"), (1, 2), (2, 3, 4),
                                                  (5, 6, 7, 8), ("SAME_UPPER", "SAME_LOWER")):
        dilations = ([1, 1], [2, 2]) if op == "MaxPool" else ([1, 1],)
        for d in dilations:
            yield op, size, {"kernel_shape": [k, k], "strides": [s, s], "auto_pad": auto,
                             "dilations": d}


VARIANTS = list(_variants())
SAME_VARIANTS = list(_same_variants())


def _sweep(variants, tmp_path) -> tuple[int, set]:
    """Each variant matches onnxruntime or is refused: (compared, refused reasons)."""
    rng = np.random.default_rng(0)
    compared, refused = 0, set()
    for number, (op, size, attrs) in enumerate(variants):
        try:
            data = _model(op, size, attrs)
        except Exception:  # noqa: BLE001 - ONNX's own shape inference rejects it
            continue
        path = tmp_path / f"pool{number}.onnx"
        path.write_bytes(data)
        x = rng.uniform(-1, 1, (1, 2, size, size)).astype(np.float32)
        try:
            session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
            expected = session.run(None, {"x": x})[0]
        except Exception:  # noqa: BLE001 - a configuration onnxruntime itself rejects
            continue
        try:
            graph = load_onnx(path)
        except HybridverInputError as exc:
            refused.add((op, str(exc).split(": ", 1)[-1]))
            continue
        got = evaluate(graph, torch.as_tensor(x, dtype=torch.float64)[None]).numpy()[0]
        assert got.shape == expected.shape, (op, size, attrs, got.shape, expected.shape)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6,
                                   err_msg=f"{op} {size} {attrs}")
        compared += 1
    return compared, refused


def test_every_pooling_variant_matches_onnxruntime_or_is_refused(tmp_path):
    compared, refused = _sweep(VARIANTS, tmp_path)
    # today only AveragePool with asymmetric padding (explicit, or from SAME_* with an odd
    # total) is refused, with a one-line error naming the op and the node
    assert {op for op, _ in refused} <= {"AveragePool"}, refused
    assert all("asymmetric padding" in why for _, why in refused), refused
    assert compared >= 600, compared


def test_same_padding_where_onnxruntime_departs_from_onnx_is_refused(tmp_path):
    compared, refused = _sweep(SAME_VARIANTS, tmp_path)
    reasons = {why.split(" (", 1)[1] for _, why in refused}
    assert any("dilations" in why for why in reasons), refused
    assert any("negative padding" in why for why in reasons), refused
    assert compared >= 50, compared


@pytest.mark.parametrize("padded,begin,end,k,s,d,ceil,expected", [
    ((7,), (1,), (1,), (2,), (2,), (1,), True, (3,)),    # a 4th window would start in the pad
    ((7,), (1,), (1,), (2,), (2,), (1,), False, (3,)),
    ((8,), (0,), (0,), (3,), (2,), (1,), True, (4,)),    # ends past the input: kept
    ((6,), (0,), (0,), (3,), (3,), (1,), True, (2,)),
])
def test_pool_output_size(padded, begin, end, k, s, d, ceil, expected):
    assert pool_output_size(padded, begin, end, k, s, d, ceil) == expected
