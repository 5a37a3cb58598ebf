"""Nearest Resize and ConvTranspose against onnxruntime: the IR computes what onnxruntime
computes (output shape and values), or the importer refuses the model.

Resize: every coordinate_transformation_mode x nearest_mode, up- and downscaling, by
scales and by sizes.  onnxruntime computes source coordinates in float32, so a coordinate
that lands on a rounding boundary picks a pixel real arithmetic does not (hybridver once
mapped them in float64 and disagreed, e.g. ``half_pixel`` + ``floor`` at scale 0.6), and
it copies the input when the shape does not change (scale 1.3 on 3 pixels).
ConvTranspose: auto_pad SAME_UPPER / SAME_LOWER / VALID / explicit, output_padding,
dilations, output_shape (hybridver once grew a SAME output to ``in * stride`` where
onnxruntime keeps it smaller).
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from hybridver.errors import HybridverInputError
from hybridver.frontends.onnx import load_onnx
from hybridver.ir.evaluate import evaluate

ort.set_default_logger_severity(4)

COORDS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
          "asymmetric", "tf_half_pixel_for_nn")
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _resize_model(size: int, coord: str, nearest: str, kind: str, value) -> bytes:
    if kind == "scales":
        init = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, *value])
        ins = ["x", "", "scales"]
    else:
        init = helper.make_tensor("sizes", TensorProto.INT64, [4], [1, 2, *value])
        ins = ["x", "", "", "sizes"]
    node = helper.make_node("Resize", ins, ["y"], mode="nearest",
                            coordinate_transformation_mode=coord, nearest_mode=nearest)
    graph = helper.make_graph(
        [node], "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                         [1, 2, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [init])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    return onnx.shape_inference.infer_shapes(model).SerializeToString()


def _compare(tmp_path, data: bytes, x: np.ndarray, what) -> str | None:
    """Compare the IR with onnxruntime on ``x``; the refusal message if refused."""
    expected = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    try:
        graph = load_onnx(path)
    except HybridverInputError as exc:
        return str(exc)
    got = evaluate(graph, torch.as_tensor(x, dtype=torch.float64)[None]).numpy()[0]
    assert got.shape == expected.shape, (what, got.shape, expected.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=str(what))
    return None


RESIZE_VALUES = ([("scales", (s, s)) for s in (0.5, 0.6, 0.75, 1.3, 1.5, 2.0, 2.5, 3.0)]
                 + [("scales", (1.3, 2.0)), ("scales", (2.0, 0.6))]
                 + [("sizes", (z, z)) for z in (1, 2, 3, 7, 8)])


def test_every_nearest_resize_variant_matches_onnxruntime_or_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    compared, refused = 0, set()
    for coord, nearest, size, (kind, value) in itertools.product(
            COORDS, NEAREST, (3, 5), RESIZE_VALUES):
        x = rng.uniform(-1, 1, (1, 2, size, size)).astype(np.float32)
        why = _compare(tmp_path, _resize_model(size, coord, nearest, kind, value), x,
                       (coord, nearest, size, kind, value))
        if why is None:
            compared += 1
        else:
            assert "Resize" in why and "node 'y'" in why, why
            refused.add(why.split(": ", 1)[-1])
    assert compared > 300
    assert any("half_pixel_symmetric" in r for r in refused)
    assert any("depends on float rounding" in r for r in refused)


def _legacy_and_axes_variants():
    """Upsample (opset 7 attribute, opset 9 input), Resize-10, opset-18 ``axes``."""
    floats = TensorProto.FLOAT
    for size, sc in itertools.product((3, 5), (1.0, 1.5, 2.0, 3.0, 0.5, 0.6)):
        if sc >= 1:
            yield 7, size, [helper.make_node("Upsample", ["x"], ["y"], scales=[1, 1, sc, sc])], []
            yield 9, size, [helper.make_node("Upsample", ["x", "s"], ["y"])], \
                [helper.make_tensor("s", floats, [4], [1, 1, sc, sc])]
        yield 10, size, [helper.make_node("Resize", ["x", "s"], ["y"])], \
            [helper.make_tensor("s", floats, [4], [1, 1, sc, sc])]
        for coord, nearest in itertools.product(("asymmetric", "half_pixel", "align_corners"),
                                                ("floor", "round_prefer_ceil")):
            modes = {"coordinate_transformation_mode": coord, "nearest_mode": nearest}
            yield 18, size, [helper.make_node("Resize", ["x", "", "s"], ["y"], axes=[2, 3],
                                              **modes)], \
                [helper.make_tensor("s", floats, [2], [sc, sc])]
            yield 18, size, [helper.make_node("Resize", ["x", "", "", "z"], ["y"], axes=[-1],
                                              **modes)], \
                [helper.make_tensor("z", TensorProto.INT64, [1], [max(1, int(size * sc))])]


def test_legacy_resize_and_axes_match_onnxruntime_or_are_refused(tmp_path):
    rng = np.random.default_rng(4)
    compared = 0
    for opset, size, nodes, inits in _legacy_and_axes_variants():
        graph = helper.make_graph(
            nodes, "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [1, 2, size, size])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        data = onnx.shape_inference.infer_shapes(model).SerializeToString()
        x = rng.uniform(-1, 1, (1, 2, size, size)).astype(np.float32)
        why = _compare(tmp_path, data, x, (opset, size, nodes[0]))
        assert why is None or "depends on float rounding" in why, why
        compared += why is None
    assert compared > 50


@pytest.mark.parametrize("coord,nearest,size,value", [
    ("half_pixel", "floor", 5, (0.6, 0.6)),          # float32 lands on 2.0, real on 1.999..
    ("asymmetric", "floor", 3, (1.3, 1.3)),          # same shape: onnxruntime copies
    ("pytorch_half_pixel", "round_prefer_floor", 3, (1.3, 1.3)),
])
def test_resize_regressions(tmp_path, coord, nearest, size, value):
    x = np.random.default_rng(1).uniform(-1, 1, (1, 2, size, size)).astype(np.float32)
    why = _compare(tmp_path, _resize_model(size, coord, nearest, "scales", value), x,
                   (coord, nearest, size, value))
    assert why is None or "depends on float rounding" in why, why


@pytest.mark.parametrize("mode,extra", [
    ("linear", {}), ("cubic", {}), ("nearest", {"coordinate_transformation_mode":
                                                "tf_crop_and_resize"}),
    ("nearest", {"coordinate_transformation_mode": "half_pixel_symmetric"}),
    ("nearest", {"antialias": 1}), ("nearest", {"exclude_outside": 1}),
])
def test_unsupported_resize_options_are_refused(tmp_path, mode, extra):
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    roi = helper.make_tensor("roi", TensorProto.FLOAT, [8], [0, 0, 0, 0, 1, 1, 1, 1])
    node = helper.make_node("Resize", ["x", "roi", "scales"], ["y"], name="rz", mode=mode,
                            **extra)
    graph = helper.make_graph(
        [node], "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])], [scales, roi])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    path = tmp_path / "rz.onnx"
    onnx.save(model, path)
    with pytest.raises(HybridverInputError, match=r"Resize \(.*\(node 'rz'\)"):
        load_onnx(path)


def _conv_transpose_variants():
    for auto, k, s, dil, size, out_pad, out_shape in itertools.product(
            ("SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET"), (1, 2, 3), (1, 2, 3), (1, 2),
            (3, 4), (0, 1), (None, 5, 8)):
        if out_pad >= s and out_pad >= dil:
            continue
        attrs = {"kernel_shape": [k, k], "strides": [s, s], "dilations": [dil, dil],
                 "auto_pad": auto, "output_padding": [out_pad, out_pad]}
        if auto == "NOTSET":
            attrs["pads"] = [min(1, k - 1), 0, 0, min(1, k - 1)]
        if out_shape:
            attrs["output_shape"] = [out_shape, out_shape]
        yield size, attrs


@pytest.mark.slow
def test_every_conv_transpose_padding_variant_matches_onnxruntime(tmp_path):
    rng = np.random.default_rng(0)
    compared = 0
    for size, attrs in _conv_transpose_variants():
        k = attrs["kernel_shape"][0]
        w = rng.standard_normal((2, 3, k, k)).astype(np.float32)
        node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], **attrs)
        graph = helper.make_graph(
            [node], "ct", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                         [1, 2, size, size])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(w, "w")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        try:
            data = onnx.shape_inference.infer_shapes(model, strict_mode=True).SerializeToString()
        except Exception:  # noqa: BLE001 - ONNX's own shape inference rejects it
            continue
        x = rng.uniform(-1, 1, (1, 2, size, size)).astype(np.float32)
        try:
            ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})
        except Exception:  # noqa: BLE001 - a configuration onnxruntime itself rejects
            continue
        assert _compare(tmp_path, data, x, (size, attrs)) is None
        compared += 1
    assert compared > 300


def test_conv_transpose_same_upper_stride_larger_than_kernel(tmp_path):
    """k=1, stride 2, SAME_UPPER on 3 pixels: onnxruntime outputs 5 (no negative padding),
    hybridver once grew it to in * stride = 6."""
    w = np.random.default_rng(2).standard_normal((2, 3, 1, 1)).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[1, 1],
                            strides=[2, 2], auto_pad="SAME_UPPER")
    graph = helper.make_graph(
        [node], "ct", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model)
    x = np.random.default_rng(3).uniform(-1, 1, (1, 2, 3, 3)).astype(np.float32)
    assert _compare(tmp_path, model.SerializeToString(), x, "k1s2") is None
