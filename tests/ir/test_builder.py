"""GraphBuilder: fresh names, emission, constants, shape inference, duplicate names."""

import numpy as np
import pytest

from hybridver.errors import ModelLoadError
from hybridver.ir.builder import GraphBuilder
from hybridver.ir.graph import NetworkGraph
from hybridver.ir.ops import OpKind


def test_fresh_names_avoid_taken_names_and_nodes():
    b = GraphBuilder(taken={"x", "x_1"})
    assert b.fresh("x") == "x_2"
    assert b.fresh("x") == "x_3"
    assert b.fresh("y") == "y"
    slash = GraphBuilder(taken={"out"}, sep="/")
    assert slash.fresh("out") == "out/1"


def test_emit_infers_shapes_from_operands_and_constants():
    b = GraphBuilder()
    x = b.emit(OpKind.INPUT, (), (1, 3), name="x")
    w = b.constant(np.ones((3, 2)), base="w")
    y = b.emit(OpKind.MATMUL, (x, w), base="y")
    assert b.shape(y) == (1, 2)
    r = b.emit(OpKind.RELU, (y,), name="r")
    assert b.shape(r) == (1, 2)
    g = NetworkGraph(b.nodes(), ["x"], [r])
    assert [n.name for n in g.nodes()] == ["w", "x", "y", "r"]


def test_duplicate_names_and_bad_operands_raise_model_load_errors():
    b = GraphBuilder()
    b.emit(OpKind.INPUT, (), (1, 3), name="x")
    with pytest.raises(ModelLoadError, match="duplicate IR node name 'x'"):
        b.emit(OpKind.INPUT, (), (1, 3), name="x")
    b.constant(np.ones((4, 2)), name="w")
    with pytest.raises(ModelLoadError, match="do not fit matmul"):
        b.emit(OpKind.MATMUL, ("x", "w"), name="y")
    with pytest.raises(ValueError):
        b.emit(OpKind.RELU, ("x",), (1, 3))
