"""The IR's operator vocabulary.

Every node of a :class:`~hybridver.ir.graph.NetworkGraph` has one :class:`OpKind`.  The
vocabulary is deliberately small and static-shaped: ONNX's many shape-manipulating
operators (Flatten, Squeeze, Unsqueeze, Reshape, Expand...) all become ``RESHAPE`` /
``EXPAND`` with a fully resolved target shape, and shape subgraphs are folded away.

Axis attributes are stored non-negative and relative to the node's *per-sample* shape,
which is the ONNX tensor shape itself (including ONNX's own leading batch dimension, with
dynamic dimensions fixed to 1).  Batched evaluation adds one more leading axis in front.
"""

from __future__ import annotations

import enum


class OpKind(str, enum.Enum):
    # sources
    INPUT = "input"              # attrs: -
    CONSTANT = "constant"        # consts: value
    # affine / linear in the variable operand
    LINEAR = "linear"            # y = x @ weight.T + bias on the last axis; consts: weight (out, in), bias (out,) optional
    MATMUL = "matmul"            # numpy matmul of two operands (either may be CONSTANT)
    CONV = "conv"                # consts: weight (C_out, C_in/group, *k), bias optional; attrs: strides, pads, dilations, group
    CONV_TRANSPOSE = "conv_transpose"  # consts: weight (C_in, C_out/group, *k), bias; attrs: strides, pads, dilations, group, output_padding
    BATCH_NORM = "batch_norm"    # inference BN on axis 1; consts: scale, bias, mean, var; attrs: epsilon
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    NEG = "neg"
    REDUCE_SUM = "reduce_sum"    # attrs: axes (tuple), keepdims (bool)
    REDUCE_MEAN = "reduce_mean"  # attrs: axes (tuple), keepdims (bool)
    # elementwise nonlinearities
    RELU = "relu"
    LEAKY_RELU = "leaky_relu"    # attrs: alpha
    ABS = "abs"
    SIGMOID = "sigmoid"
    TANH = "tanh"
    SIN = "sin"
    COS = "cos"
    EXP = "exp"
    LOG = "log"
    SQRT = "sqrt"
    RECIPROCAL = "reciprocal"
    POW = "pow"                  # second operand is the exponent (normally a CONSTANT)
    ERF = "erf"
    GELU = "gelu"                # exact (erf) GELU
    SOFTMAX = "softmax"          # attrs: axis
    # pooling
    MAX_POOL = "max_pool"        # attrs: kernel_shape, strides, pads, dilations, ceil_mode
    AVERAGE_POOL = "average_pool"  # attrs: kernel_shape, strides, pads, count_include_pad, ceil_mode
    GLOBAL_AVERAGE_POOL = "global_average_pool"
    UPSAMPLE = "upsample"        # nearest neighbour; attrs: scales (ints, per per-sample axis)
    # data movement (all static)
    RESHAPE = "reshape"          # target shape = node.shape
    EXPAND = "expand"            # broadcast to node.shape
    TRANSPOSE = "transpose"      # attrs: perm
    CONCAT = "concat"            # attrs: axis
    SLICE = "slice"              # attrs: starts, ends, axes, steps (resolved, non-negative axes)
    GATHER = "gather"            # attrs: axis; consts: indices (int64 array)
    WHERE = "where"              # inputs: condition, x, y
    PAD = "pad"                  # constant padding; attrs: pads (begin..., end...), value
    IDENTITY = "identity"


#: Arity (min, max) of each op's ordered inputs; None means unbounded.
ARITY: dict[OpKind, tuple[int, int | None]] = {
    OpKind.INPUT: (0, 0),
    OpKind.CONSTANT: (0, 0),
    OpKind.MATMUL: (2, 2),
    OpKind.ADD: (2, 2),
    OpKind.SUB: (2, 2),
    OpKind.MUL: (2, 2),
    OpKind.DIV: (2, 2),
    OpKind.POW: (2, 2),
    OpKind.WHERE: (3, 3),
    OpKind.CONCAT: (1, None),
}
DEFAULT_ARITY = (1, 1)

#: Constants each op requires on its node.
REQUIRED_CONSTS: dict[OpKind, tuple[str, ...]] = {
    OpKind.CONSTANT: ("value",),
    OpKind.LINEAR: ("weight",),
    OpKind.CONV: ("weight",),
    OpKind.CONV_TRANSPOSE: ("weight",),
    OpKind.BATCH_NORM: ("scale", "bias", "mean", "var"),
    OpKind.GATHER: ("indices",),
}

#: Attributes each op requires on its node.
REQUIRED_ATTRS: dict[OpKind, tuple[str, ...]] = {
    OpKind.LEAKY_RELU: ("alpha",),
    OpKind.SOFTMAX: ("axis",),
    OpKind.TRANSPOSE: ("perm",),
    OpKind.CONCAT: ("axis",),
    OpKind.SLICE: ("starts", "ends", "axes", "steps"),
    OpKind.GATHER: ("axis",),
    OpKind.REDUCE_SUM: ("axes", "keepdims"),
    OpKind.REDUCE_MEAN: ("axes", "keepdims"),
    OpKind.BATCH_NORM: ("epsilon",),
    OpKind.MAX_POOL: ("kernel_shape", "strides", "pads"),
    OpKind.AVERAGE_POOL: ("kernel_shape", "strides", "pads"),
    OpKind.UPSAMPLE: ("scales",),
    OpKind.PAD: ("pads", "value"),
}

ELEMENTWISE_NONLINEAR = frozenset({
    OpKind.RELU, OpKind.LEAKY_RELU, OpKind.ABS, OpKind.SIGMOID, OpKind.TANH, OpKind.SIN,
    OpKind.COS, OpKind.EXP, OpKind.LOG, OpKind.SQRT, OpKind.RECIPROCAL, OpKind.ERF,
    OpKind.GELU,
})
