"""The affine form reproduces the network: with the nonlinear sites' outputs set to the
true values, every pre-activation expression and the output match the IR evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hybridver.api import load_model
from hybridver.encode.affine_form import (NotEncodableError, build_network_form,
                                          interval_node_bounds)
from hybridver.ir.decompose import decompose_for_bounds
from hybridver.ir import NetworkGraph, Node, OpKind
from hybridver.ir.evaluate import evaluate_all
from tests.conftest import EXAMPLES, shared_files


def _check_form(graph: NetworkGraph, radius: float = 0.5, seed: int = 0) -> None:
    n = graph.input_node.size
    rng = np.random.default_rng(seed)
    center = rng.uniform(-0.5, 0.5, n)
    lo, hi = center - radius, center + radius
    form = build_network_form(graph, lo, hi, interval_node_bounds(graph, lo, hi))
    for _ in range(3):
        x = rng.uniform(lo, hi)
        values = evaluate_all(graph, x.reshape(1, *graph.input_node.shape))
        v = np.zeros(form.n_vars)
        v[form.input_vars] = x
        for site in form.sites:
            v[site.outputs] = values[site.node].reshape(-1).numpy()
            for expr, (blo, bhi) in zip(site.operands, site.operand_bounds):
                pre = expr.A @ v + expr.b
                assert np.all(pre >= blo - 1e-9) and np.all(pre <= bhi + 1e-9)
        y = form.output.A @ v + form.output.b
        ref = values[graph.output_node.name].reshape(-1).numpy()
        np.testing.assert_allclose(y, ref, rtol=1e-9, atol=1e-9)
        assert np.all(v >= form.var_lower - 1e-9) and np.all(v <= form.var_upper + 1e-9)


@pytest.mark.parametrize("name", ["tiny_relu.onnx", "digits_relu.onnx", "digits_tanh.onnx"])
def test_examples(name):
    _check_form(load_model(EXAMPLES / name).graph)


@pytest.mark.parametrize("path", shared_files("acasxu/ACASXU_run2a_1_1*.onnx",
                                              "vnncomp_test/*.onnx",
                                              "marabou_resources/onnx/*.onnx"),
                         ids=lambda p: p.name)
def test_shared_models(path):
    graph = load_model(path).graph
    if any(n.op is OpKind.SOFTMAX for n in graph.nodes()):
        with pytest.raises(NotEncodableError):  # not elementwise: must be decomposed first
            _check_form(graph)
        graph = decompose_for_bounds(graph)
    _check_form(graph)


def test_conv_concat_pad_slice_graph():
    rng = np.random.default_rng(3)
    nodes = [
        Node("x", OpKind.INPUT, shape=(1, 2, 5, 5)),
        Node("c", OpKind.CONV, ("x",), consts={"weight": rng.normal(size=(3, 2, 3, 3)),
                                               "bias": rng.normal(size=3)},
             attrs={"strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1), "group": 1},
             shape=(1, 3, 5, 5)),
        Node("r", OpKind.RELU, ("c",), shape=(1, 3, 5, 5)),
        Node("p", OpKind.PAD, ("r",), attrs={"pads": (0, 0, 1, 1, 0, 0, 0, 0), "value": 0.5},
             shape=(1, 3, 6, 6)),
        Node("s", OpKind.SLICE, ("p",), attrs={"starts": (1,), "ends": (5,), "axes": (2,),
                                               "steps": (2,)}, shape=(1, 3, 2, 6)),
        Node("t", OpKind.TRANSPOSE, ("s",), attrs={"perm": (0, 3, 2, 1)}, shape=(1, 6, 2, 3)),
        Node("k", OpKind.CONSTANT, consts={"value": rng.normal(size=(3,))}, shape=(3,)),
        Node("m", OpKind.MUL, ("t", "k"), shape=(1, 6, 2, 3)),
        Node("a", OpKind.ADD, ("m", "t"), shape=(1, 6, 2, 3)),
        Node("cat", OpKind.CONCAT, ("a", "t"), attrs={"axis": 1}, shape=(1, 12, 2, 3)),
        Node("sig", OpKind.SIGMOID, ("cat",), shape=(1, 12, 2, 3)),
        Node("f", OpKind.RESHAPE, ("sig",), shape=(1, 72)),
        Node("l", OpKind.LINEAR, ("f",), consts={"weight": rng.normal(size=(4, 72))},
             shape=(1, 4)),
    ]
    _check_form(NetworkGraph(nodes, ["x"], ["l"]))
