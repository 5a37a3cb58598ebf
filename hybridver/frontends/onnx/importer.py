"""The ONNX import driver and the one table of op handlers, keyed by ONNX op type.

:func:`load_onnx` reads the file (:mod:`~hybridver.frontends.onnx.reader`), registers the
graph inputs, converts the nodes the graph outputs depend on in file order, and builds a
:class:`~hybridver.ir.graph.NetworkGraph`.  A node whose inputs are all constant is folded
with ONNX's reference implementation (in the model's own dtypes); ``Shape`` / ``Size`` of a
variable tensor is its static shape; any other node goes to :data:`HANDLERS`.  Nodes that
cannot be converted are collected, and everything downstream of them is skipped (and
reported too when it could not be imported anyway), so one
:class:`~hybridver.errors.UnsupportedOpError` lists every offending node.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from hybridver.errors import ModelLoadError, UnsupportedOpError
from hybridver.frontends.onnx import elementwise, linear, normalization, pooling, shape_ops
from hybridver.frontends.onnx.context import (FLOAT_TYPES, Handler, OnnxContext, Unsupported,
                                              Value, Var, is_const)
from hybridver.frontends.onnx.reader import (node_attributes, one_line, read_initializers,
                                             read_onnx_model)
from hybridver.ir.graph import NetworkGraph
from hybridver.ir.ops import OpKind

__all__ = ["load_onnx", "HANDLERS"]

_ONNX_DOMAINS = ("", "ai.onnx")

#: ops normally met in shape subgraphs, which are folded (not reported downstream of an
#: unsupported node, where their input is unknown)
_FOLDED_OPS = frozenset({
    "Shape", "Size", "ConstantOfShape", "Constant", "Equal", "Greater", "Less", "Not", "And",
    "Or", "Range", "Cast", "Floor", "Ceil", "Min", "Max", "Mod", "NonZero", "Sign"})

#: ops that draw random numbers: onnxruntime draws new values on every run, so no fixed
#: network (and no value folded once at import) computes what it computes
_NONDETERMINISTIC_OPS = frozenset({
    "RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Bernoulli",
    "Multinomial"})

#: The handler of each supported ONNX op type (default domain); anything else is reported.
HANDLERS: dict[str, Handler] = {
    "Relu": elementwise.unary(OpKind.RELU),
    "Clip": elementwise.clip,
    "Sigmoid": elementwise.unary(OpKind.SIGMOID),
    "Tanh": elementwise.unary(OpKind.TANH),
    "Sin": elementwise.unary(OpKind.SIN),
    "Cos": elementwise.unary(OpKind.COS),
    "Exp": elementwise.unary(OpKind.EXP),
    "Log": elementwise.unary(OpKind.LOG),
    "Sqrt": elementwise.unary(OpKind.SQRT),
    "Reciprocal": elementwise.unary(OpKind.RECIPROCAL),
    "Abs": elementwise.unary(OpKind.ABS),
    "Neg": elementwise.unary(OpKind.NEG),
    "Erf": elementwise.unary(OpKind.ERF),
    "LeakyRelu": elementwise.leaky_relu,
    "Gelu": elementwise.gelu,
    "Add": elementwise.broadcast(OpKind.ADD),
    "Sub": elementwise.broadcast(OpKind.SUB),
    "Mul": elementwise.broadcast(OpKind.MUL),
    "Div": elementwise.broadcast(OpKind.DIV),
    "Pow": elementwise.broadcast(OpKind.POW),
    "Identity": elementwise.identity,
    "Dropout": elementwise.dropout,
    "Cast": elementwise.cast,
    "Where": elementwise.where,
    "MatMul": linear.matmul,
    "Gemm": linear.gemm,
    "Conv": linear.conv,
    "ConvTranspose": linear.conv_transpose,
    "BatchNormalization": normalization.batch_norm,
    "Softmax": normalization.softmax,
    "ReduceSum": normalization.reduce(OpKind.REDUCE_SUM, 13),
    "ReduceMean": normalization.reduce(OpKind.REDUCE_MEAN, 18),
    "MaxPool": pooling.pool,
    "AveragePool": pooling.pool,
    "GlobalAveragePool": pooling.global_pool,
    "GlobalMaxPool": pooling.global_pool,
    "Upsample": pooling.resize,
    "Resize": pooling.resize,
    "Reshape": shape_ops.reshape,
    "Flatten": shape_ops.flatten,
    "Squeeze": shape_ops.squeeze,
    "Unsqueeze": shape_ops.unsqueeze,
    "Transpose": shape_ops.transpose,
    "Concat": shape_ops.concat,
    "Slice": shape_ops.slice,
    "Gather": shape_ops.gather,
    "Split": shape_ops.split,
    "Expand": shape_ops.expand,
    "Pad": shape_ops.pad,
}


def load_onnx(path: str | Path) -> NetworkGraph:
    """Import the ONNX model in ``path`` (``.onnx`` or ``.onnx.gz``) as a NetworkGraph."""
    model = read_onnx_model(path)
    return _import(OnnxContext(model, str(path)))


# ---------------------------------------------------------------------------- driver
def _import(ctx: OnnxContext) -> NetworkGraph:
    g = ctx.graph
    ctx.values.update(read_initializers(g, ctx.source))
    inputs: list[str] = []
    for inp in g.input:
        if inp.name in ctx.values:  # an initializer listed as input: a constant
            continue
        _add_input(ctx, inp)
        inputs.append(inp.name)
    if not inputs:
        raise ModelLoadError(f"{ctx.source}: the model has no (non-constant) inputs")

    live = _live_nodes(ctx)
    for i, onode in enumerate(g.node):
        if i in live:
            _convert(ctx, onode)
    if ctx.unsupported:
        raise UnsupportedOpError(ctx.unsupported, model=ctx.source)

    outputs: list[str] = []
    for out in g.output:
        name = out.name
        if name not in ctx.values:
            raise ModelLoadError(f"{ctx.source}: graph output '{name}' is never computed")
        v = ctx.values[name]
        if isinstance(v, Var):
            if v.node != name:
                ctx.emit(name, OpKind.IDENTITY, [v.node], shape=v.shape)
        elif name not in ctx.builder:
            ctx.emit_const(name, v)
        outputs.append(name)

    keep: set[str] = set(inputs)
    stack = list(outputs)
    while stack:
        name = stack.pop()
        if name in keep:
            continue
        keep.add(name)
        stack.extend(ctx.builder.node(name).inputs)
    nodes = [n for n in ctx.builder.nodes() if n.name in keep]
    name = Path(ctx.source).name
    for suffix in (".gz", ".onnx"):
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    try:
        return NetworkGraph(nodes, inputs, outputs, name=name or "network")
    except ModelLoadError as exc:
        raise ModelLoadError(
            f"{ctx.source}: imported graph is invalid: {one_line(exc)}") from exc


def _add_input(ctx: OnnxContext, inp: onnx.ValueInfoProto) -> None:
    ttype = inp.type.tensor_type
    if not inp.type.HasField("tensor_type"):
        raise ModelLoadError(f"{ctx.source}: input '{inp.name}' is not a tensor")
    if ttype.elem_type not in FLOAT_TYPES:
        raise ModelLoadError(
            f"{ctx.source}: input '{inp.name}' has non-float type "
            f"{onnx.TensorProto.DataType.Name(ttype.elem_type)}; only float inputs are "
            "supported")
    if not ttype.HasField("shape"):
        raise ModelLoadError(f"{ctx.source}: input '{inp.name}' has no declared shape")
    shape = tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else 1
                  for d in ttype.shape.dim)
    ctx.values[inp.name] = ctx.emit(inp.name, OpKind.INPUT, [], shape=shape)


def _live_nodes(ctx: OnnxContext) -> set[int]:
    """Indices of the nodes the graph outputs depend on."""
    producer: dict[str, int] = {}
    for i, n in enumerate(ctx.graph.node):
        for t in n.output:
            if t:
                producer[t] = i
    live: set[int] = set()
    stack = [o.name for o in ctx.graph.output]
    ctx.consumed.update(stack)
    while stack:
        i = producer.get(stack.pop())
        if i is None or i in live:
            continue
        live.add(i)
        for src in ctx.graph.node[i].input:
            if src:
                ctx.consumed.add(src)
                stack.append(src)
    return live


def _label(onode: onnx.NodeProto) -> str:
    return onode.name or next((t for t in onode.output if t), "?")


def _convert(ctx: OnnxContext, onode: onnx.NodeProto) -> None:
    op = onode.op_type
    label = _label(onode)
    domain = onode.domain or ""
    handler = HANDLERS.get(op) if domain in _ONNX_DOMAINS else None
    if any(t in ctx.poisoned for t in onode.input if t):
        # downstream of an unsupported node: report it too if it could not be imported
        # anyway (shape-computing ops are not: they would have been folded)
        if handler is None and op not in _FOLDED_OPS:
            ctx.unsupported.append((op, label))
        ctx.poisoned.update(t for t in onode.output if t)
        return
    ins: list[Value | None] = []
    for t in onode.input:
        if not t:
            ins.append(None)
        elif t not in ctx.values:
            raise ModelLoadError(
                f"{ctx.source}: node '{label}' ({op}) reads undefined tensor '{t}'")
        else:
            ins.append(ctx.values[t])
    attrs = node_attributes(onode)
    try:
        if domain in _ONNX_DOMAINS and op in _NONDETERMINISTIC_OPS:
            raise Unsupported("draws random numbers on every run; hybridver does not model "
                              "nondeterministic ops")
        if domain in _ONNX_DOMAINS and op == "Dropout":
            elementwise.check_dropout_mode(ctx, ins, attrs)  # before folding a constant
        if op == "Shape" and domain in _ONNX_DOMAINS and isinstance(ins[0], Var):
            start, end = attrs.get("start", 0), attrs.get("end")
            results: list[Value] = [np.array(ins[0].shape[start:end], dtype=np.int64)]
        elif op == "Size" and domain in _ONNX_DOMAINS and isinstance(ins[0], Var):
            results = [np.array(math.prod(ins[0].shape), dtype=np.int64)]
        elif all(v is None or is_const(v) for v in ins):
            results = _fold(ctx, onode, ins)
        elif handler is None:
            # an op imported only as a constant (folded) is met on input-dependent data
            raise Unsupported("only on constants; here its input depends on the network "
                              "input" if op in _FOLDED_OPS else "")
        else:
            results = list(handler(ctx, onode, ins, attrs))
    except Unsupported as exc:
        why = str(exc)
        ctx.unsupported.append((f"{op} ({why})" if why else op, label))
        ctx.poisoned.update(t for t in onode.output if t)
        return
    except ModelLoadError as exc:
        raise ModelLoadError(
            f"{ctx.source}: node '{label}' ({op}): {one_line(exc)}") from exc
    except Exception as exc:
        raise ModelLoadError(
            f"{ctx.source}: cannot import node '{label}' ({op}): "
            f"{type(exc).__name__}: {one_line(exc)}") from exc
    for t, v in zip(onode.output, results):
        if t:
            ctx.values[t] = v


# ---------------------------------------------------------------------------- folding
def _fold(ctx: OnnxContext, onode: onnx.NodeProto, ins: list[Value | None]
          ) -> list[np.ndarray]:
    """The outputs of a node whose inputs are all constant, by ONNX's reference evaluator."""
    if onode.op_type == "Constant" and (onode.domain or "") in _ONNX_DOMAINS:
        for a in onode.attribute:
            if a.name == "value":
                return [numpy_helper.to_array(a.t)]
    feeds = {t: v for t, v in zip(onode.input, ins) if t}
    try:
        graph = helper.make_graph(
            [onode], "fold",
            [helper.make_tensor_value_info(t, helper.np_dtype_to_tensor_dtype(v.dtype),
                                           v.shape) for t, v in feeds.items()],
            [helper.make_empty_tensor_value_info(t) for t in onode.output if t])
        model = helper.make_model(graph, opset_imports=[
            helper.make_opsetid(domain, version) for domain, version in ctx.opsets.items()])
        model.ir_version = ctx.model.ir_version or onnx.IR_VERSION
        outs = ReferenceEvaluator(model).run(None, feeds)
    except Exception as exc:
        raise Unsupported(
            f"cannot fold constant node: {type(exc).__name__}: {one_line(exc)}") from exc
    if len(outs) != len([t for t in onode.output if t]):
        raise Unsupported("cannot fold constant node")
    it = iter(outs)
    return [np.asarray(next(it)) if t else None for t in onode.output]
