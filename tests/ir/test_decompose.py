"""Decompositions for the bound engine: evaluation is preserved, the target ops are gone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hybridver.ir import NetworkGraph, Node, OpKind, evaluate_all
from hybridver.ir.decompose import (decompose_for_bounds, decompose_matmul_of_variables,
                                    decompose_max_pool, decompose_softmax)
from hybridver.frontends.onnx import load_onnx
from hybridver.ir.passes import simplify
from tests.conftest import shared_files

RNG = np.random.default_rng(0)


def inp(name: str, *shape: int) -> Node:
    return Node(name, OpKind.INPUT, shape=shape)


def op(name: str, kind: OpKind, inputs, shape, attrs=None, consts=None) -> Node:
    return Node(name, kind, tuple(inputs), attrs or {}, consts or {}, tuple(shape))


def with_inferred_shape(nodes: list[Node], inputs: tuple[str, ...]) -> NetworkGraph:
    """The graph with the last node's shape taken from evaluation (pool output sizes)."""
    loose = NetworkGraph(nodes, inputs, (nodes[-1].name,), check_shapes=False)
    zeros = {n: np.zeros((1, *loose.node(n).shape)) for n in inputs}
    shape = tuple(evaluate_all(loose, zeros)[nodes[-1].name].shape[1:])
    return NetworkGraph(nodes[:-1] + [nodes[-1].replace(shape=shape)], inputs,
                        (nodes[-1].name,))


def assert_same(before: NetworkGraph, after: NetworkGraph, n: int = 16, scale: float = 3.0,
                shift: float = 0.0) -> None:
    assert after.inputs == before.inputs and after.outputs == before.outputs
    NetworkGraph(after.nodes(), after.inputs, after.outputs, check_shapes=True)
    xs = {name: torch.as_tensor(scale * RNG.standard_normal((n, *before.node(name).shape))
                                + shift) for name in before.inputs}
    want, got = evaluate_all(before, xs), evaluate_all(after, xs)
    for name in before.outputs:
        w, g = want[name], got[name]
        assert g.shape[1:] == w.shape[1:]
        tol = 1e-12 * max(1.0, float(w.abs().max()))
        assert torch.allclose(g.expand_as(w), w, rtol=0, atol=tol), name


def kinds(g: NetworkGraph) -> set[OpKind]:
    return {n.op for n in g.nodes()}


# ---------------------------------------------------------------------------- softmax
@pytest.mark.parametrize("shape,axis", [((5,), 0), ((2, 7), 0), ((2, 7), 1), ((1, 3, 6, 6), 3),
                                        ((1, 3, 6, 6), 2), ((1, 3, 17, 17), 3), ((4, 1), 1),
                                        ((2, 3, 4), 1)])
def test_softmax_is_preserved(shape, axis):
    g = NetworkGraph([inp("x", *shape), op("y", OpKind.SOFTMAX, ["x"], shape, {"axis": axis})],
                     ("x",), ("y",))
    d = decompose_softmax(g)
    assert OpKind.SOFTMAX not in kinds(d)
    if shape[axis] > 1:
        assert {OpKind.EXP, OpKind.RECIPROCAL, OpKind.SUB} <= kinds(d)
    assert_same(g, d)
    assert_same(g, d, scale=30.0)  # large differences: exp overflows to inf, 1/inf = 0


def test_softmax_feeding_other_nodes_keeps_its_name():
    g = NetworkGraph([inp("x", 1, 4), op("s", OpKind.SOFTMAX, ["x"], (1, 4), {"axis": 1}),
                      op("y", OpKind.ADD, ["s", "x"], (1, 4))], ("x",), ("y",))
    d = decompose_softmax(g)
    assert d.node("s").op is OpKind.RECIPROCAL
    assert_same(g, d)


# ---------------------------------------------------------------------------- max pool
POOLS = [
    ((1, 2, 6, 6), dict(kernel_shape=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0))),
    ((1, 2, 6, 6), dict(kernel_shape=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1))),
    ((1, 2, 7, 7), dict(kernel_shape=(3, 3), strides=(2, 2), pads=(0, 0, 1, 1), ceil_mode=1)),
    ((1, 1, 8, 7), dict(kernel_shape=(2, 3), strides=(2, 1), pads=(1, 0, 0, 1),
                        dilations=(2, 1))),
    ((1, 3, 9), dict(kernel_shape=(3,), strides=(2,), pads=(1, 1), ceil_mode=1)),
    ((1, 3, 10), dict(kernel_shape=(4,), strides=(3,), pads=(2, 0), ceil_mode=1)),
    ((1, 1, 4, 4, 4), dict(kernel_shape=(2, 2, 2), strides=(2, 2, 2), pads=(0,) * 6)),
    ((1, 2, 5, 5), dict(kernel_shape=(1, 1), strides=(2, 2), pads=(0, 0, 0, 0))),
    ((2, 5, 5), dict(kernel_shape=(5, 5), strides=(1, 1), pads=(2, 2, 2, 2))),
]


@pytest.mark.parametrize("shape,attrs", POOLS)
def test_max_pool_is_preserved(shape, attrs):
    g = with_inferred_shape([inp("x", *shape), op("y", OpKind.MAX_POOL, ["x"], (), attrs)],
                            ("x",))
    d = decompose_max_pool(g)
    assert OpKind.MAX_POOL not in kinds(d)
    assert_same(g, d)
    assert_same(g, d, shift=-10.0)  # all negative: padding must not look like 0


def test_max_pool_windows_repeat_a_valid_position_not_padding():
    # corner windows of a padded 3x3 pool hold 4 valid positions out of 9
    g = with_inferred_shape([inp("x", 1, 1, 3, 3), op("y", OpKind.MAX_POOL, ["x"], (), dict(
        kernel_shape=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1)))], ("x",))
    d = decompose_max_pool(g)
    gather = next(n for n in d.nodes() if n.op is OpKind.GATHER)
    assert gather.consts["indices"].shape == (9, 9)
    assert set(gather.consts["indices"][0]) == {0, 1, 3, 4}


# ---------------------------------------------------------------------------- matmul
@pytest.mark.parametrize("sa,sb,out", [((3, 4), (4, 5), (3, 5)),
                                       ((1, 3, 17, 16), (1, 3, 16, 17), (1, 3, 17, 17)),
                                       ((2, 1, 3, 4), (5, 4, 2), (2, 5, 3, 2)),
                                       ((4,), (2, 4, 3), (2, 3)),
                                       ((2, 3, 4), (4,), (2, 3))])
@pytest.mark.parametrize("broadcast", [True, False])
def test_matmul_of_two_variables_is_preserved(sa, sb, out, broadcast):
    g = NetworkGraph([inp("a", *sa), inp("b", *sb), op("y", OpKind.MATMUL, ["a", "b"], out)],
                     ("a", "b"), ("y",))
    d = decompose_matmul_of_variables(g, broadcast=broadcast)
    assert OpKind.MATMUL not in kinds(d) and OpKind.MUL in kinds(d)
    mul = next(n for n in d.nodes() if n.op is OpKind.MUL)
    left, right = (d.node(i).shape for i in mul.inputs)
    if broadcast:  # the MUL broadcasts (.., m, k, 1) and (.., 1, k, n) itself
        assert left[-1] == 1 and right[-3] == 1 and OpKind.EXPAND not in kinds(d)
        assert tuple(np.broadcast_shapes(left, right)) == mul.shape
    else:
        assert left == right == mul.shape
    assert_same(g, d)


def test_matmul_of_two_vectors():
    # the reference evaluator cannot run a (k,) @ (k,) MATMUL of two variables; compare the
    # decomposition with numpy instead
    g = NetworkGraph([inp("a", 4), inp("b", 4), op("y", OpKind.MATMUL, ["a", "b"], ())],
                     ("a", "b"), ("y",), check_shapes=False)
    d = decompose_matmul_of_variables(g)
    assert OpKind.MATMUL not in kinds(d)
    a, b = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))
    got = evaluate_all(d, {"a": a, "b": b})["y"]
    assert got.shape == (3,)
    assert np.allclose(got.numpy(), (a * b).sum(1), rtol=0, atol=1e-12)


def test_matmul_of_a_single_input_with_itself_transposed():
    g = NetworkGraph([inp("x", 1, 5, 3),
                      op("t", OpKind.TRANSPOSE, ["x"], (1, 3, 5), {"perm": (0, 2, 1)}),
                      op("y", OpKind.MATMUL, ["x", "t"], (1, 5, 5))], ("x",), ("y",))
    d = decompose_matmul_of_variables(g)
    assert OpKind.MATMUL not in kinds(d)
    assert_same(g, d)


def test_matmul_with_a_constant_operand_is_kept():
    w = Node("w", OpKind.CONSTANT, consts={"value": RNG.standard_normal((2, 4, 3))},
             shape=(2, 4, 3))
    g = NetworkGraph([inp("x", 2, 5, 4), w, op("y", OpKind.MATMUL, ["x", "w"], (2, 5, 3))],
                     ("x",), ("y",))
    assert decompose_matmul_of_variables(g) is g


def test_decompose_for_bounds_chains_everything():
    nodes = [inp("x", 1, 2, 4, 4),
             op("p", OpKind.MAX_POOL, ["x"], (1, 2, 2, 2),
                dict(kernel_shape=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0))),
             op("r", OpKind.RESHAPE, ["p"], (1, 2, 4)),
             op("t", OpKind.TRANSPOSE, ["r"], (1, 4, 2), {"perm": (0, 2, 1)}),
             op("a", OpKind.MATMUL, ["t", "r"], (1, 4, 4)),
             op("s", OpKind.SOFTMAX, ["a"], (1, 4, 4), {"axis": 2}),
             op("y", OpKind.MATMUL, ["s", "t"], (1, 4, 2))]
    g = NetworkGraph(nodes, ("x",), ("y",))
    d = decompose_for_bounds(g)
    assert not kinds(d) & {OpKind.MAX_POOL, OpKind.SOFTMAX, OpKind.MATMUL}
    assert_same(g, d)


# ---------------------------------------------------------------------------- shared ViT
@pytest.mark.parametrize("path", shared_files("vit_2023/onnx/*.onnx.gz"), ids=lambda p: p.name)
def test_vit_decomposes_with_equal_evaluation(path):
    g = simplify(load_onnx(path))
    d = decompose_for_bounds(g)
    assert OpKind.SOFTMAX not in kinds(d)
    variable_matmuls = [n for n in d.nodes() if n.op is OpKind.MATMUL
                        and all(d.node(i).op is not OpKind.CONSTANT for i in n.inputs)]
    assert not variable_matmuls
    assert_same(g, d, n=4, scale=1.0)
