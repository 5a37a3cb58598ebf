"""Simplification passes: evaluation is preserved and the expected structure appears."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from hybridver.ir import NetworkGraph, Node, OpKind, evaluate_all
from hybridver.ir.passes import (drop_identities, fold_batch_norm, fold_constants,
                                 fuse_linear_bias, merge_linear, simplify)
from hybridver.frontends.torch import check_against_module, from_torch

RNG = np.random.default_rng(0)


def inp(name: str, *shape: int) -> Node:
    return Node(name, OpKind.INPUT, shape=shape)


def const(name: str, value) -> Node:
    value = np.asarray(value, dtype=np.float64)
    return Node(name, OpKind.CONSTANT, consts={"value": value}, shape=value.shape)


def op(name: str, kind: OpKind, inputs, shape, attrs=None, consts=None) -> Node:
    return Node(name, kind, tuple(inputs), attrs or {}, consts or {}, tuple(shape))


def linear(name: str, src: str, n_in: int, n_out: int, lead=(1,), bias: bool = True) -> Node:
    consts = {"weight": RNG.standard_normal((n_out, n_in))}
    if bias:
        consts["bias"] = RNG.standard_normal(n_out)
    return op(name, OpKind.LINEAR, [src], (*lead, n_out), consts=consts)


def graph(nodes, outputs, inputs=("x",)) -> NetworkGraph:
    return NetworkGraph(nodes, inputs, outputs, name="test")


def assert_same(before: NetworkGraph, after: NetworkGraph, n: int = 32) -> None:
    """Same inputs, same output names, same values (atol 1e-9 relative to output scale)."""
    assert after.inputs == before.inputs and after.outputs == before.outputs
    # the result must also be a valid graph with consistent shapes
    NetworkGraph(after.nodes(), after.inputs, after.outputs, check_shapes=True)
    xs = {name: torch.as_tensor(RNG.standard_normal((n, *before.node(name).shape)))
          for name in before.inputs}
    want, got = evaluate_all(before, xs), evaluate_all(after, xs)
    for name in before.outputs:
        w, g = want[name], got[name]
        scale = max(1.0, float(w.abs().max()))
        assert torch.allclose(g.expand_as(w), w, rtol=0, atol=1e-9 * scale), name


def count(g: NetworkGraph, kind: OpKind) -> int:
    return sum(1 for nd in g.nodes() if nd.op is kind)


# ---------------------------------------------------------------------------- fold_constants
def test_fold_constants() -> None:
    g = graph([
        inp("x", 1, 4),
        const("a", RNG.standard_normal(4)), const("b", RNG.standard_normal((1, 4))),
        const("two", 2.0),
        op("ab", OpKind.ADD, ["a", "b"], (1, 4)),
        op("ab2", OpKind.MUL, ["ab", "two"], (1, 4)),
        op("r", OpKind.RESHAPE, ["ab2"], (4,)),
        op("e", OpKind.EXP, ["r"], (4,)),
        op("y", OpKind.ADD, ["x", "e"], (1, 4)),
        op("k", OpKind.REDUCE_SUM, ["b"], (1,), attrs={"axes": (1,), "keepdims": False}),
    ], ["y", "k"])
    out = fold_constants(g)
    assert_same(g, out)
    assert out.node("e").op is OpKind.CONSTANT and out.node("k").op is OpKind.CONSTANT
    assert out.node("y").op is OpKind.ADD
    assert count(out, OpKind.CONSTANT) == 2 and len(out) == 4  # x, e, y, k
    assert fold_constants(out) is out


# ---------------------------------------------------------------------------- drop_identities
def test_drop_identities_rewires_and_keeps_output_names() -> None:
    g = graph([
        inp("x", 1, 4),
        op("i1", OpKind.IDENTITY, ["x"], (1, 4)),
        op("r1", OpKind.RESHAPE, ["i1"], (1, 4)),
        op("t", OpKind.TRANSPOSE, ["r1"], (1, 4), attrs={"perm": (0, 1)}),
        op("h", OpKind.RELU, ["t"], (1, 4)),
        op("r2", OpKind.RESHAPE, ["h"], (2, 2)),
        op("r3", OpKind.RESHAPE, ["r2"], (4,)),
        op("r4", OpKind.RESHAPE, ["r3"], (1, 4)),
        op("out", OpKind.IDENTITY, ["r4"], (1, 4)),
        op("x_again", OpKind.IDENTITY, ["x"], (1, 4)),  # an output reading the input
    ], ["out", "x_again"])
    out = drop_identities(g)
    assert_same(g, out)
    assert out.outputs == ("out", "x_again")
    assert count(out, OpKind.RESHAPE) == 0  # r2 -> r3 -> r4 collapses to (1,4): identity
    assert count(out, OpKind.TRANSPOSE) == 0
    assert out.node("out").op is OpKind.RELU  # the ReLU took the output's name
    assert out.node("x_again").op is OpKind.IDENTITY  # kept: its operand is the input
    assert len(out) == 3


def test_drop_identities_output_identity_on_another_output() -> None:
    g = graph([
        inp("x", 1, 3), op("h", OpKind.TANH, ["x"], (1, 3)),
        op("o1", OpKind.IDENTITY, ["h"], (1, 3)), op("o2", OpKind.IDENTITY, ["h"], (1, 3)),
        op("o3", OpKind.SIGMOID, ["h"], (1, 3)),
    ], ["o1", "o2", "o3"])
    out = drop_identities(g)
    assert_same(g, out)
    assert out.node("o1").op is OpKind.TANH and out.node("o2").op is OpKind.IDENTITY
    assert out.node("o3").inputs == ("o1",)


# ---------------------------------------------------------------------------- fuse_linear_bias
def test_fuse_matmul_add_into_linear() -> None:
    g = graph([
        inp("x", 1, 5), const("W", RNG.standard_normal((5, 3))),
        const("b", RNG.standard_normal((1, 3))), const("b2", RNG.standard_normal(3)),
        op("mm", OpKind.MATMUL, ["x", "W"], (1, 3)),
        op("add", OpKind.ADD, ["b", "mm"], (1, 3)),
        op("h", OpKind.RELU, ["add"], (1, 3)),
        op("mm2", OpKind.MATMUL, ["h", "W3"], (1, 2)),
        const("W3", RNG.standard_normal((3, 2))),
        op("y", OpKind.SUB, ["b2s", "mm2"], (1, 2)), const("b2s", RNG.standard_normal(2)),
    ], ["y"])
    out = fuse_linear_bias(g)
    assert_same(g, out)
    assert count(out, OpKind.LINEAR) == 2 and count(out, OpKind.MATMUL) == 0
    assert count(out, OpKind.ADD) == 0 and count(out, OpKind.SUB) == 0
    assert out.node("add").op is OpKind.LINEAR and out.node("y").op is OpKind.LINEAR


def test_fuse_matmul_alone_and_refusals() -> None:
    g = graph([
        inp("x", 1, 2, 5), const("W", RNG.standard_normal((5, 3))),
        op("mm", OpKind.MATMUL, ["x", "W"], (1, 2, 3)),
        # varies along axis 1: not a bias over the last axis
        const("rows", RNG.standard_normal((2, 3))),
        op("a", OpKind.ADD, ["mm", "rows"], (1, 2, 3)),
        # fan-out: mm2 feeds two nodes
        op("mm2", OpKind.MATMUL, ["x", "W"], (1, 2, 3)),
        const("c", RNG.standard_normal(3)),
        op("b1", OpKind.ADD, ["mm2", "c"], (1, 2, 3)),
        op("b2", OpKind.SIGMOID, ["mm2"], (1, 2, 3)),
        # a graph output is never absorbed
        op("mm3", OpKind.MATMUL, ["x", "W"], (1, 2, 3)),
        op("b3", OpKind.ADD, ["mm3", "c"], (1, 2, 3)),
        # constant on the left: not linear on the last axis of the variable
        const("L", RNG.standard_normal((4, 1))),
        op("left", OpKind.MATMUL, ["L", "x_t"], (1, 4, 10)),
        op("x_t", OpKind.RESHAPE, ["x"], (1, 1, 10)),
    ], ["a", "b1", "b2", "mm3", "b3", "left"])
    out = fuse_linear_bias(g)
    assert_same(g, out)
    assert {out.node(n).op for n in ("mm", "mm2", "mm3")} == {OpKind.LINEAR}
    assert out.node("a").op is OpKind.ADD and out.node("b1").op is OpKind.ADD
    assert out.node("b3").op is OpKind.ADD and out.node("left").op is OpKind.MATMUL


# ---------------------------------------------------------------------------- fold_batch_norm
def bn(name: str, src: str, shape, rng=RNG) -> Node:
    c = shape[1]
    return op(name, OpKind.BATCH_NORM, [src], shape, attrs={"epsilon": 1e-3}, consts={
        "scale": rng.standard_normal(c), "bias": rng.standard_normal(c),
        "mean": rng.standard_normal(c), "var": rng.random(c) + 0.2})


def test_fold_batch_norm_into_conv_linear_conv_transpose() -> None:
    g = graph([
        inp("x", 1, 2, 6, 6),
        op("conv", OpKind.CONV, ["x"], (1, 4, 6, 6), consts={
            "weight": RNG.standard_normal((4, 2, 3, 3)), "bias": RNG.standard_normal(4)},
           attrs={"strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1), "group": 1}),
        bn("bn1", "conv", (1, 4, 6, 6)),
        op("ct", OpKind.CONV_TRANSPOSE, ["bn1"], (1, 6, 11, 11), consts={
            "weight": RNG.standard_normal((4, 3, 3, 3))},
           attrs={"strides": (2, 2), "pads": (1, 1, 1, 1), "dilations": (1, 1), "group": 2,
                  "output_padding": (0, 0)}),
        bn("bn2", "ct", (1, 6, 11, 11)),
        op("flat", OpKind.RESHAPE, ["bn2"], (1, 726)),
        linear("fc", "flat", 726, 5, bias=False),
        bn("bn3", "fc", (1, 5)),
    ], ["bn3"])
    out = fold_batch_norm(g)
    assert_same(g, out)
    assert count(out, OpKind.BATCH_NORM) == 0 and count(out, OpKind.MUL) == 0
    assert count(out, OpKind.CONV) == 1 and count(out, OpKind.CONV_TRANSPOSE) == 1
    assert out.node("bn3").op is OpKind.LINEAR and len(out) == 5


def test_lone_batch_norm_becomes_mul_add() -> None:
    g = graph([
        inp("x", 1, 3, 4, 4),
        op("conv", OpKind.CONV, ["x"], (1, 3, 4, 4), consts={
            "weight": RNG.standard_normal((3, 3, 1, 1))}, attrs={"pads": (0, 0, 0, 0)}),
        op("r", OpKind.RELU, ["x"], (1, 3, 4, 4)),
        bn("bn_relu", "r", (1, 3, 4, 4)),          # after a nonlinearity
        bn("bn_conv", "conv", (1, 3, 4, 4)),       # conv is also an output: no fold
        # LINEAR on a rank-3 tensor: axis 1 is not its feature axis
        linear("fc", "x3", 4, 3, lead=(1, 12)), op("x3", OpKind.RESHAPE, ["x"], (1, 12, 4)),
        bn("bn_fc", "fc_t", (1, 3, 12)), op("fc_t", OpKind.TRANSPOSE, ["fc"], (1, 3, 12),
                                            attrs={"perm": (0, 2, 1)}),
    ], ["bn_relu", "bn_conv", "conv", "bn_fc"])
    out = fold_batch_norm(g)
    assert_same(g, out)
    assert count(out, OpKind.BATCH_NORM) == 0
    assert count(out, OpKind.MUL) == 3 and count(out, OpKind.ADD) == 3
    assert out.node("bn_relu").op is OpKind.ADD and out.node("conv").op is OpKind.CONV


# ---------------------------------------------------------------------------- merge_linear
def test_merge_linear_chain() -> None:
    g = graph([
        inp("x", 1, 6), linear("l1", "x", 6, 8), linear("l2", "l1", 8, 7, bias=False),
        linear("l3", "l2", 7, 4), op("h", OpKind.RELU, ["l3"], (1, 4)), linear("l4", "h", 4, 3),
        linear("l5", "l4", 3, 2),
    ], ["l5"])
    out = merge_linear(g)
    assert_same(g, out)
    assert count(out, OpKind.LINEAR) == 2 and count(out, OpKind.RELU) == 1
    assert out.node("l3").inputs == ("x",) and out.node("l5").inputs == ("h",)


def test_merge_linear_refuses_fan_out_and_outputs() -> None:
    g = graph([
        inp("x", 1, 6), linear("l1", "x", 6, 5), linear("l2", "l1", 5, 4),
        op("s", OpKind.SIGMOID, ["l1"], (1, 5)),
        linear("m1", "x", 6, 5), linear("m2", "m1", 5, 3),
    ], ["l2", "s", "m1", "m2"])
    out = merge_linear(g)
    assert_same(g, out)
    assert out.node("l2").inputs == ("l1",) and out.node("m2").inputs == ("m1",)


def test_merge_affine_input_normalization_acas_style() -> None:
    mean, rng_ = RNG.standard_normal(5), RNG.random(5) + 0.5
    g = graph([
        inp("x", 1, 1, 1, 5),
        const("mean", mean.reshape(1, 1, 1, 5)), const("range", rng_),
        op("sub", OpKind.SUB, ["x", "mean"], (1, 1, 1, 5)),
        op("div", OpKind.DIV, ["sub", "range"], (1, 1, 1, 5)),
        op("flat", OpKind.RESHAPE, ["div"], (1, 5)),
        const("W", RNG.standard_normal((5, 50))), const("b", RNG.standard_normal(50)),
        op("mm", OpKind.MATMUL, ["flat", "W"], (1, 50)),
        op("add", OpKind.ADD, ["mm", "b"], (1, 50)),
        op("relu", OpKind.RELU, ["add"], (1, 50)),
        linear("out_lin", "relu", 50, 5),
        const("k", 3.0), op("scaled", OpKind.MUL, ["out_lin", "k"], (1, 5)),
        const("off", RNG.standard_normal((1, 5))),
        op("y", OpKind.SUB, ["off", "scaled"], (1, 5)),
    ], ["y"])
    step = fuse_linear_bias(g)
    assert_same(g, step)
    out = merge_linear(step)
    assert_same(g, out)
    assert out.op_counts() == {"input": 1, "reshape": 1, "linear": 2, "relu": 1}
    assert out.node("flat").inputs == ("x",)
    assert simplify(g).op_counts() == out.op_counts()


def test_merge_affine_refusals() -> None:
    g = graph([
        inp("x", 1, 2, 3),
        const("rows", RNG.standard_normal((2, 3))),
        op("a", OpKind.ADD, ["x", "rows"], (1, 2, 3)),   # differs per row: no merge
        linear("la", "a", 3, 4, lead=(1, 2)),
        const("c", RNG.standard_normal(3) + 2.0),
        op("d", OpKind.DIV, ["c", "x"], (1, 2, 3)),      # c / x is not affine
        linear("ld", "d", 3, 4, lead=(1, 2)),
        const("big", RNG.standard_normal((4, 1, 2, 3))),
        op("e", OpKind.MUL, ["x", "big"], (4, 1, 2, 3)),  # broadcasts the variable
        linear("le", "e", 3, 2, lead=(4, 1, 2)),
    ], ["la", "ld", "le"])
    out = merge_linear(g)
    assert_same(g, out)
    for name, src in (("la", "a"), ("ld", "d"), ("le", "e")):
        assert out.node(name).inputs == (src,)


def test_merge_add_rows_that_become_one_row_after_reshape() -> None:
    g = graph([
        inp("x", 1, 2, 3), const("rows", RNG.standard_normal((2, 3))),
        op("a", OpKind.ADD, ["x", "rows"], (1, 2, 3)),
        op("f", OpKind.RESHAPE, ["a"], (1, 6)), linear("l", "f", 6, 4),
        op("n", OpKind.NEG, ["l"], (1, 4)),
    ], ["n"])
    out = merge_linear(g)
    assert_same(g, out)
    assert out.op_counts() == {"input": 1, "reshape": 1, "linear": 1}


# ---------------------------------------------------------------------------- on torch models
class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
            nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(16, 8), nn.Identity(), nn.Linear(8, 3))
        self.register_buffer("mean", torch.tensor([0.3, -0.2]).reshape(1, 2, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.mean) / 0.5)


def _randomize_bn(module: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(3)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen))
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.randn(c, generator=gen))
                m.bias.copy_(torch.randn(c, generator=gen))
    return module.eval()


def test_each_pass_on_an_imported_cnn() -> None:
    torch.manual_seed(0)
    model = _randomize_bn(CNN())
    example = torch.randn(1, 2, 8, 8)
    g = from_torch(model, example)
    for p in (fold_constants, drop_identities, fuse_linear_bias, fold_batch_norm,
              merge_linear):
        assert_same(g, p(g))
    folded = fold_batch_norm(g)
    assert count(folded, OpKind.BATCH_NORM) == 0 and count(folded, OpKind.CONV) == 2
    merged = merge_linear(g)
    assert count(merged, OpKind.LINEAR) == 2  # Linear(16,8) and Linear(8,3) merged
    out = simplify(g)
    assert_same(g, out)
    assert check_against_module(out, model, example, n=32, tol=None) < 1e-9
    counts = out.op_counts()
    assert counts["conv"] == 2 and counts.get("batch_norm", 0) == 0
    assert counts["linear"] == 2 and counts.get("mul", 0) == 0
    # (x - mean) / 0.5 feeds a conv, not a LINEAR: it stays
    assert counts["sub"] == 1 and counts["div"] == 1


def test_simplify_imported_mlp_with_normalization() -> None:
    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.randn(5))
            self.register_buffer("std", torch.rand(5) + 0.5)
            self.l1, self.l2, self.l3 = nn.Linear(5, 20), nn.Linear(20, 20), nn.Linear(20, 5)
            self.w = nn.Parameter(torch.randn(5, 5))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = ((x - self.mean) / self.std).reshape(1, 1, 5).flatten(1)
            h = torch.relu(self.l2(torch.relu(self.l1(x))))
            return (self.l3(h) @ self.w + 1.0) * 2.0

    torch.manual_seed(0)
    model = MLP().eval()
    example = torch.randn(1, 5)
    g = from_torch(model, example)
    out = simplify(g)
    assert_same(g, out)
    assert check_against_module(out, model, example, n=32, tol=None) < 1e-9
    assert out.op_counts() == {"input": 1, "linear": 3, "relu": 2}
    assert out.outputs == g.outputs and out.inputs == g.inputs


@pytest.mark.parametrize("seed", [0, 1])
def test_simplify_conv_transpose_bn(seed: int) -> None:
    torch.manual_seed(seed)
    model = _randomize_bn(nn.Sequential(
        nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1), nn.BatchNorm2d(4),
        nn.Sigmoid(), nn.ConvTranspose2d(4, 2, 3, stride=2, output_padding=1),
        nn.BatchNorm2d(2)))
    example = torch.randn(1, 3, 4, 4)
    g = from_torch(model, example)
    out = simplify(g)
    assert_same(g, out)
    assert check_against_module(out, model, example, n=32, tol=None) < 1e-9
    # both BNs fold, also where output_padding extends past the transposed conv's output
    assert out.op_counts() == {"input": 1, "conv_transpose": 2, "sigmoid": 1}
