"""Tiny ONNX classifiers on small single-channel images, built with onnx.helper."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(path, nodes, inits, in_shape, n_out) -> str:
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, n_out])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def mlp(path, side: int = 4, hidden: int = 8, n_out: int = 3, seed: int = 0) -> str:
    """``input [1, 1, side, side]`` -> Flatten -> Gemm -> Relu -> Gemm -> ``[1, n_out]``."""
    rng = np.random.default_rng(seed)
    n = side * side
    inits = {"w1": rng.normal(size=(hidden, n)) / np.sqrt(n), "b1": rng.normal(size=hidden) * 0.1,
             "w2": rng.normal(size=(n_out, hidden)) / np.sqrt(hidden),
             "b2": rng.normal(size=n_out) * 0.1}
    nodes = [helper.make_node("Flatten", ["input"], ["flat"], axis=1),
             helper.make_node("Gemm", ["flat", "w1", "b1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["output"], transB=1)]
    return _save(path, nodes, inits, [1, 1, side, side], n_out)


def cnn(path, side: int = 6, n_out: int = 3, seed: int = 1) -> str:
    """``input [1, 1, side, side]`` -> Conv(2, 3x3) -> Relu -> Flatten -> Gemm."""
    rng = np.random.default_rng(seed)
    m = 2 * (side - 2) ** 2
    inits = {"k": rng.normal(size=(2, 1, 3, 3)) / 3.0, "kb": rng.normal(size=2) * 0.1,
             "w": rng.normal(size=(n_out, m)) / np.sqrt(m), "b": rng.normal(size=n_out) * 0.1}
    nodes = [helper.make_node("Conv", ["input", "k", "kb"], ["c"], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "w", "b"], ["output"], transB=1)]
    return _save(path, nodes, inits, [1, 1, side, side], n_out)


def flat_mlp(path, n: int = 16, n_out: int = 3, seed: int = 2) -> str:
    """``input [1, n]`` (a flat image) -> Gemm -> Relu -> Gemm."""
    rng = np.random.default_rng(seed)
    inits = {"w1": rng.normal(size=(6, n)) / np.sqrt(n), "b1": rng.normal(size=6) * 0.1,
             "w2": rng.normal(size=(n_out, 6)) / np.sqrt(6), "b2": rng.normal(size=n_out) * 0.1}
    nodes = [helper.make_node("Gemm", ["input", "w1", "b1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["output"], transB=1)]
    return _save(path, nodes, inits, [1, n], n_out)


def grid_point(side: int, levels: int, seed: int = 3) -> np.ndarray:
    """A ``(1, 1, side, side)`` image whose pixels are multiples of ``1 / levels``."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, levels + 1, size=(1, 1, side, side)) / levels).astype(np.float64)
