"""ONNX -> :class:`~hybridver.ir.graph.NetworkGraph` importer.

:func:`load_onnx` reads ``.onnx`` and gzip-compressed ``.onnx.gz`` files, checks them with
the ONNX checker and canonicalizes them into the IR's small static-shaped vocabulary:

* every tensor that does not depend on a graph input (initializers, ``Constant`` nodes,
  shape subgraphs such as ``Shape -> Gather -> Concat -> ConstantOfShape``, ``Equal``,
  ``Where`` and ``Cast`` on constants...) is folded at import time with ONNX's reference
  implementation, in the model's own dtypes, so folded values are exactly what ONNX
  defines.  ``Shape`` of a variable tensor is its static shape (dynamic dims fixed to 1);
* a constant operand of a variable op becomes a ``CONSTANT`` node feeding the op (named
  after the ONNX tensor); weights are stored as float64 numpy arrays;
* ``Gemm`` / ``MatMul`` with a constant 2-D right operand become ``LINEAR`` (weight
  ``(out, in)``, Gemm's ``alpha`` folded in, ``beta * C`` folded as bias when it broadcasts
  over the last axis); Flatten/Squeeze/Unsqueeze/Reshape become ``RESHAPE``, Split becomes
  ``SLICE`` nodes, old-opset Softmax (coerce-to-2-D semantics) becomes
  ``RESHAPE -> SOFTMAX -> RESHAPE``, nearest Upsample/Resize becomes ``UPSAMPLE`` (integer
  scales) or ``GATHER`` nodes (any other nearest index map); Identity, Dropout and float
  Casts are removed.

IR node names are the ONNX output tensor names (helper nodes get ``<output>/<suffix>``
names); graph inputs and outputs keep their ONNX names.  Only nodes that the graph
outputs depend on are imported.

Errors: a missing, unreadable, truncated or malformed file, or one the ONNX checker
rejects, raises :class:`~hybridver.errors.ModelLoadError` with one readable message;
operators (or operator variants) that cannot be converted raise
:class:`~hybridver.errors.UnsupportedOpError` listing every offending node at once.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from hybridver.errors import ModelLoadError, UnsupportedOpError
from hybridver.ir.evaluate import EVALUATORS
from hybridver.ir.graph import NetworkGraph, Node
from hybridver.ir.ops import OpKind

__all__ = ["load_onnx", "read_model_bytes", "read_onnx_model"]

_FLOAT_TYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE,
                          onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16})
_ONNX_DOMAINS = ("", "ai.onnx")

Value = Any  # _Var | np.ndarray

#: ops normally met in shape subgraphs, which are folded (not reported downstream of an
#: unsupported node, where their input is unknown)
_FOLDED_OPS = frozenset({
    "Shape", "Size", "ConstantOfShape", "Constant", "Equal", "Greater", "Less", "Not", "And",
    "Or", "Range", "Cast", "Floor", "Ceil", "Min", "Max", "Mod", "NonZero", "Sign"})


# ---------------------------------------------------------------------------- reading
def read_model_bytes(path: str | Path) -> bytes:
    """The serialized model in ``path``, gunzipped when it is gzip-compressed."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"model path is not a file: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ModelLoadError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    elif path.suffix == ".gz":
        raise ModelLoadError(f"{path}: file ends in .gz but is not gzip-compressed")
    return data


def read_onnx_model(path: str | Path, check: bool = True) -> onnx.ModelProto:
    """Parse (and by default check) the ONNX model in ``path`` (``.onnx`` or ``.onnx.gz``)."""
    path = Path(path)
    data = read_model_bytes(path)
    if not data:
        raise ModelLoadError(f"{path}: file is empty")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(
            f"{path}: not a valid ONNX model (truncated or malformed protobuf: {exc})") from None
    if not model.HasField("graph") or not model.graph.node and not model.graph.output:
        raise ModelLoadError(f"{path}: not a valid ONNX model (no graph)")
    try:
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
            from onnx.external_data_helper import load_external_data_for_model
            load_external_data_for_model(model, str(path.parent))
    except Exception as exc:  # missing external data file
        raise ModelLoadError(f"{path}: cannot load external tensor data: {exc}") from None
    if check:
        try:
            onnx.checker.check_model(model)
        except Exception as exc:  # onnx.checker.ValidationError and friends
            first = _one_line(exc) or type(exc).__name__
            raise ModelLoadError(f"{path}: the ONNX checker rejects the model: {first}") from None
    return model


def load_onnx(path: str | Path) -> NetworkGraph:
    """Import the ONNX model in ``path`` (``.onnx`` or ``.onnx.gz``) as a NetworkGraph."""
    model = read_onnx_model(path)
    return _Importer(model, str(path)).run()


# ---------------------------------------------------------------------------- helpers
@dataclasses.dataclass(frozen=True)
class _Var:
    """A tensor that depends on the graph inputs: produced by IR node ``node``."""

    node: str
    shape: tuple[int, ...]


class _Unsupported(Exception):
    """This node (or this variant of its operator) cannot be converted."""


def _one_line(text: object, limit: int = 300) -> str:
    """First line of a (possibly long, multi-line) message, shortened."""
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _is_const(v: Value) -> bool:
    return isinstance(v, np.ndarray)


def _shape_of(v: Value) -> tuple[int, ...]:
    return tuple(v.shape)


def _ints(values: Any) -> list[int]:
    return [int(v) for v in np.asarray(values).reshape(-1)]


def _axis(axis: int, rank: int) -> int:
    a = int(axis)
    if a < 0:
        a += rank
    if not 0 <= a < max(rank, 1):
        raise ModelLoadError(f"axis {axis} out of range for rank {rank}")
    return a


def _float64(v: np.ndarray) -> np.ndarray:
    """A fresh, writable, C-contiguous float64 copy."""
    return np.array(v, dtype=np.float64, order="C", copy=True)


def _as_ir_const(v: np.ndarray) -> np.ndarray:
    """IR representation of a constant: floats as float64, ints as int64, bools kept."""
    v = np.asarray(v)
    if v.dtype.kind == "f":
        return _float64(v)
    if v.dtype.kind in "iu":
        return np.array(v, dtype=np.int64, order="C", copy=True)
    if v.dtype.kind == "b":
        return np.array(v, dtype=bool, order="C", copy=True)
    raise _Unsupported(f"constant of dtype {v.dtype}")


def _same_pads(in_sizes: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
               dilations: Sequence[int], mode: str) -> list[int]:
    """Explicit (begin..., end...) pads for auto_pad SAME_UPPER / SAME_LOWER / VALID."""
    n = len(in_sizes)
    if mode == "VALID":
        return [0] * (2 * n)
    begin, end = [], []
    for i in range(n):
        out = -(-in_sizes[i] // strides[i])
        total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_sizes[i])
        small, large = total // 2, total - total // 2
        if mode == "SAME_UPPER":
            begin.append(small)
            end.append(large)
        else:
            begin.append(large)
            end.append(small)
    return begin + end


def _nearest_index_map(in_len: int, out_len: int, scale: float, coord: str, nearest: str
                       ) -> np.ndarray:
    """Source index of each output position for nearest-neighbour resizing (ONNX Resize)."""
    o = np.arange(out_len, dtype=np.float64)
    if coord == "half_pixel":
        x = (o + 0.5) / scale - 0.5
    elif coord == "half_pixel_symmetric":
        adjustment = out_len / (scale * in_len)
        x = in_len / 2 * (1 - adjustment) + (o + 0.5) / scale - 0.5
    elif coord == "pytorch_half_pixel":
        x = (o + 0.5) / scale - 0.5 if out_len > 1 else np.zeros_like(o)
    elif coord == "align_corners":
        x = o * (in_len - 1) / (out_len - 1) if out_len > 1 else np.zeros_like(o)
    elif coord == "asymmetric":
        x = o / scale
    else:
        raise _Unsupported(f"coordinate_transformation_mode={coord}")
    if nearest == "round_prefer_floor":
        idx = np.where(x - np.floor(x) == 0.5, np.floor(x), np.round(x))
    elif nearest == "round_prefer_ceil":
        idx = np.where(x - np.floor(x) == 0.5, np.ceil(x), np.round(x))
    elif nearest == "floor":
        idx = np.floor(x)
    elif nearest == "ceil":
        idx = np.ceil(x)
    elif nearest == "simple":  # onnxruntime's Upsample / opset-10 Resize rule
        idx = np.ceil(x) if scale < 1 else np.floor(x)
    else:
        raise _Unsupported(f"nearest_mode={nearest}")
    return np.clip(idx, 0, in_len - 1).astype(np.int64)


# ---------------------------------------------------------------------------- importer
class _Importer:
    def __init__(self, model: onnx.ModelProto, source: str):
        self.model = model
        self.graph = model.graph
        self.source = source
        self.opsets = {(o.domain or ""): int(o.version) for o in model.opset_import}
        self.opset = self.opsets.get("", self.opsets.get("ai.onnx", 1))
        self.values: dict[str, Value] = {}
        self.nodes: dict[str, Node] = {}
        self.const_nodes: dict[str, str] = {}   # ONNX constant tensor -> IR CONSTANT node
        self.unsupported: list[tuple[str, str]] = []
        self.poisoned: set[str] = set()
        self.taken: set[str] = set()
        for n in self.graph.node:
            self.taken.update(t for t in n.output if t)
            self.taken.update(t for t in n.input if t)
        self.taken.update(t.name for t in self.graph.initializer)
        self.taken.update(t.name for t in self.graph.input)
        self.taken.update(t.name for t in self.graph.output)
        self.consumed: set[str] = set()

    # ---------------------------------------------------------------- driver
    def run(self) -> NetworkGraph:
        g = self.graph
        for init in g.initializer:
            try:
                self.values[init.name] = numpy_helper.to_array(init)
            except Exception as exc:
                raise ModelLoadError(
                    f"{self.source}: cannot read initializer '{init.name}': {exc}") from None
        inputs: list[str] = []
        for inp in g.input:
            if inp.name in self.values:  # an initializer listed as input: a constant
                continue
            self._add_input(inp)
            inputs.append(inp.name)
        if not inputs:
            raise ModelLoadError(f"{self.source}: the model has no (non-constant) inputs")

        live = self._live_nodes()
        for i, onode in enumerate(g.node):
            if i in live:
                self._convert(onode)
        if self.unsupported:
            raise UnsupportedOpError(self.unsupported, model=self.source)

        outputs: list[str] = []
        for out in g.output:
            name = out.name
            if name not in self.values:
                raise ModelLoadError(f"{self.source}: graph output '{name}' is never computed")
            v = self.values[name]
            if isinstance(v, _Var):
                if v.node != name:
                    self._emit(name, OpKind.IDENTITY, [v.node], shape=v.shape)
            elif name not in self.nodes:
                self._emit_const(name, v)
            outputs.append(name)

        keep: set[str] = set(inputs)
        stack = list(outputs)
        while stack:
            name = stack.pop()
            if name in keep:
                continue
            keep.add(name)
            stack.extend(self.nodes[name].inputs)
        nodes = [n for n in self.nodes.values() if n.name in keep]
        name = Path(self.source).name
        for suffix in (".gz", ".onnx"):
            name = name[: -len(suffix)] if name.endswith(suffix) else name
        try:
            return NetworkGraph(nodes, inputs, outputs, name=name or "network")
        except ModelLoadError as exc:
            raise ModelLoadError(
                f"{self.source}: imported graph is invalid: {_one_line(exc)}") from exc

    def _add_input(self, inp: onnx.ValueInfoProto) -> None:
        ttype = inp.type.tensor_type
        if not inp.type.HasField("tensor_type"):
            raise ModelLoadError(f"{self.source}: input '{inp.name}' is not a tensor")
        if ttype.elem_type not in _FLOAT_TYPES:
            raise ModelLoadError(
                f"{self.source}: input '{inp.name}' has non-float type "
                f"{onnx.TensorProto.DataType.Name(ttype.elem_type)}; only float inputs are "
                "supported")
        if not ttype.HasField("shape"):
            raise ModelLoadError(f"{self.source}: input '{inp.name}' has no declared shape")
        shape = tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else 1
                      for d in ttype.shape.dim)
        self.values[inp.name] = self._emit(inp.name, OpKind.INPUT, [], shape=shape)

    def _live_nodes(self) -> set[int]:
        """Indices of the nodes the graph outputs depend on."""
        producer: dict[str, int] = {}
        for i, n in enumerate(self.graph.node):
            for t in n.output:
                if t:
                    producer[t] = i
        live: set[int] = set()
        stack = [o.name for o in self.graph.output]
        self.consumed.update(stack)
        while stack:
            i = producer.get(stack.pop())
            if i is None or i in live:
                continue
            live.add(i)
            for src in self.graph.node[i].input:
                if src:
                    self.consumed.add(src)
                    stack.append(src)
        return live

    @staticmethod
    def _label(onode: onnx.NodeProto) -> str:
        return onode.name or next((t for t in onode.output if t), "?")

    def _attrs(self, onode: onnx.NodeProto) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for a in onode.attribute:
            v = helper.get_attribute_value(a)
            if isinstance(v, bytes):
                v = v.decode("utf-8", errors="replace")
            out[a.name] = v
        return out

    def _convert(self, onode: onnx.NodeProto) -> None:
        op = onode.op_type
        label = self._label(onode)
        domain = onode.domain or ""
        handler = self.HANDLERS.get(op) if domain in _ONNX_DOMAINS else None
        if any(t in self.poisoned for t in onode.input if t):
            # downstream of an unsupported node: report it too if it could not be imported
            # anyway (shape-computing ops are not: they would have been folded)
            if handler is None and op not in _FOLDED_OPS:
                self.unsupported.append((op, label))
            self.poisoned.update(t for t in onode.output if t)
            return
        ins: list[Value | None] = []
        for t in onode.input:
            if not t:
                ins.append(None)
            elif t not in self.values:
                raise ModelLoadError(
                    f"{self.source}: node '{label}' ({op}) reads undefined tensor '{t}'")
            else:
                ins.append(self.values[t])
        attrs = self._attrs(onode)
        try:
            if op == "Shape" and domain in _ONNX_DOMAINS and isinstance(ins[0], _Var):
                start, end = attrs.get("start", 0), attrs.get("end")
                results: list[Value] = [np.array(ins[0].shape[start:end], dtype=np.int64)]
            elif op == "Size" and domain in _ONNX_DOMAINS and isinstance(ins[0], _Var):
                results = [np.array(math.prod(ins[0].shape), dtype=np.int64)]
            elif all(v is None or _is_const(v) for v in ins):
                results = self._fold(onode, ins)
            elif handler is None:
                raise _Unsupported("")
            else:
                results = list(handler(self, onode, ins, attrs))
        except _Unsupported as exc:
            why = str(exc)
            self.unsupported.append((f"{op} ({why})" if why else op, label))
            self.poisoned.update(t for t in onode.output if t)
            return
        except ModelLoadError as exc:
            raise ModelLoadError(
                f"{self.source}: node '{label}' ({op}): {_one_line(exc)}") from exc
        except Exception as exc:
            raise ModelLoadError(
                f"{self.source}: cannot import node '{label}' ({op}): "
                f"{type(exc).__name__}: {_one_line(exc)}") from exc
        for t, v in zip(onode.output, results):
            if t:
                self.values[t] = v

    def _require_outputs(self, onode: onnx.NodeProto, n: int) -> None:
        """Only the first ``n`` outputs are produced; the others must be unused."""
        for t in onode.output[n:]:
            if t and t in self.consumed:
                raise _Unsupported(f"output '{t}' is not supported")

    # ---------------------------------------------------------------- folding
    def _fold(self, onode: onnx.NodeProto, ins: list[Value | None]) -> list[np.ndarray]:
        if onode.op_type == "Constant" and (onode.domain or "") in _ONNX_DOMAINS:
            for a in onode.attribute:
                if a.name == "value":
                    return [numpy_helper.to_array(a.t)]
        from onnx.reference import ReferenceEvaluator

        feeds = {t: v for t, v in zip(onode.input, ins) if t}
        try:
            graph = helper.make_graph(
                [onode], "fold",
                [helper.make_tensor_value_info(t, helper.np_dtype_to_tensor_dtype(v.dtype),
                                               v.shape) for t, v in feeds.items()],
                [helper.make_empty_tensor_value_info(t) for t in onode.output if t])
            model = helper.make_model(graph, opset_imports=[
                helper.make_opsetid(domain, version) for domain, version in self.opsets.items()])
            model.ir_version = self.model.ir_version or onnx.IR_VERSION
            outs = ReferenceEvaluator(model).run(None, feeds)
        except Exception as exc:
            raise _Unsupported(
                f"cannot fold constant node: {type(exc).__name__}: {_one_line(exc)}") from exc
        if len(outs) != len([t for t in onode.output if t]):
            raise _Unsupported("cannot fold constant node")
        it = iter(outs)
        return [np.asarray(next(it)) if t else None for t in onode.output]

    # ---------------------------------------------------------------- emitting
    def _fresh(self, base: str) -> str:
        i = 0
        while True:
            name = f"{base}/{i}" if i else base
            if name not in self.taken and name not in self.nodes:
                self.taken.add(name)
                return name
            i += 1

    def _emit(self, name: str, op: OpKind, inputs: Sequence[str],
              attrs: dict[str, Any] | None = None, consts: dict[str, np.ndarray] | None = None,
              shape: Sequence[int] | None = None) -> _Var:
        if name in self.nodes:
            raise ModelLoadError(f"duplicate IR node name '{name}'")
        node = Node(name, op, tuple(inputs), attrs or {}, consts or {},
                    tuple(shape) if shape is not None else ())
        if shape is None:
            node = node.replace(shape=self._infer_shape(node))
        self.nodes[name] = node
        self.taken.add(name)
        return _Var(name, node.shape)

    def _emit_const(self, name: str, value: np.ndarray) -> str:
        value = _as_ir_const(value)
        self.nodes[name] = Node(name, OpKind.CONSTANT, (), {}, {"value": value}, value.shape)
        self.taken.add(name)
        return name

    def _infer_shape(self, node: Node) -> tuple[int, ...]:
        args = []
        for src in node.inputs:
            n = self.nodes[src]
            if n.op is OpKind.CONSTANT:
                v = np.asarray(n.consts["value"])
                t = torch.as_tensor(v)
                if v.dtype.kind == "f":
                    t = t.to(torch.float64)
                args.append(t.reshape(1, *v.shape))
            else:
                args.append(torch.zeros((1, *n.shape), dtype=torch.float64))
        try:
            with torch.no_grad():
                out = EVALUATORS[node.op](node, args)
        except Exception as exc:
            shapes = [tuple(self.nodes[s].shape) for s in node.inputs]
            raise ModelLoadError(
                f"operands of shapes {shapes} do not fit {node.op.value}: {exc}") from exc
        return tuple(int(d) for d in out.shape[1:])

    def _operand(self, tensor: str) -> str:
        """IR node name for ONNX tensor ``tensor`` (a CONSTANT node for constants)."""
        v = self.values[tensor]
        if isinstance(v, _Var):
            return v.node
        if tensor not in self.const_nodes:
            name = tensor if tensor not in self.nodes else self._fresh(tensor)
            self.const_nodes[tensor] = self._emit_const(name, v)
        return self.const_nodes[tensor]

    def _value_operand(self, v: Value, base: str) -> str:
        """IR node name for a value that may not be an ONNX tensor (fresh CONSTANT)."""
        if isinstance(v, _Var):
            return v.node
        return self._emit_const(self._fresh(base), v)

    def _const_input(self, ins: list[Value | None], i: int, what: str) -> np.ndarray | None:
        """Input ``i`` which must be constant (None if absent)."""
        if i >= len(ins) or ins[i] is None:
            return None
        if not _is_const(ins[i]):
            raise _Unsupported(f"non-constant {what}")
        return ins[i]

    @staticmethod
    def _var_input(ins: list[Value | None], i: int = 0) -> _Var:
        v = ins[i]
        if not isinstance(v, _Var):
            raise _Unsupported(f"operand {i} must be the variable tensor")
        return v

    # ---------------------------------------------------------------- op handlers
    def _unary(op: OpKind) -> Callable:  # type: ignore[misc]
        def handle(self: _Importer, onode, ins, attrs):
            x = self._var_input(ins)
            return [self._emit(onode.output[0], op, [x.node], shape=x.shape)]
        return handle

    def _broadcast(op: OpKind) -> Callable:  # type: ignore[misc]
        def handle(self: _Importer, onode, ins, attrs):
            if len(ins) != 2 or ins[0] is None or ins[1] is None:
                raise _Unsupported("expects two operands")
            a, b = ins
            names = [onode.input[0], onode.input[1]]
            if self.opset < 7 and attrs.get("broadcast", 0):
                # legacy broadcasting: B is aligned with A starting at `axis`
                if not _is_const(b):
                    raise _Unsupported("legacy broadcast of a variable operand")
                ra, rb = len(_shape_of(a)), b.ndim
                axis = attrs.get("axis", ra - rb)
                axis = axis + ra if axis < 0 else axis
                b = b.reshape(*b.shape, *([1] * (ra - axis - rb)))
                operands = [self._operand(names[0]),
                            self._value_operand(b, onode.output[0] + "/b")]
            else:
                operands = [self._operand(names[0]), self._operand(names[1])]
            shape = np.broadcast_shapes(_shape_of(a), _shape_of(b))
            return [self._emit(onode.output[0], op, operands, shape=shape)]
        return handle

    def _identity(self, onode, ins, attrs):
        self._require_outputs(onode, 1)
        return [ins[0]]

    def _cast(self, onode, ins, attrs):
        if int(attrs.get("to", onnx.TensorProto.FLOAT)) not in _FLOAT_TYPES:
            raise _Unsupported("cast of a variable tensor to a non-float type")
        return [ins[0]]

    def _leaky_relu(self, onode, ins, attrs):
        x = self._var_input(ins)
        return [self._emit(onode.output[0], OpKind.LEAKY_RELU, [x.node],
                           {"alpha": float(attrs.get("alpha", 0.01))}, shape=x.shape)]

    def _gelu(self, onode, ins, attrs):
        if attrs.get("approximate", "none") != "none":
            raise _Unsupported(f"approximate={attrs['approximate']}")
        x = self._var_input(ins)
        return [self._emit(onode.output[0], OpKind.GELU, [x.node], shape=x.shape)]

    def _matmul(self, onode, ins, attrs):
        a, b = ins[0], ins[1]
        out = onode.output[0]
        if isinstance(a, _Var) and _is_const(b) and b.ndim == 2 and len(a.shape) >= 1:
            return [self._emit(out, OpKind.LINEAR, [a.node], consts={"weight": _float64(b.T)})]
        return [self._emit(out, OpKind.MATMUL, [self._operand(onode.input[0]),
                                               self._operand(onode.input[1])])]

    def _gemm(self, onode, ins, attrs):
        a, b = ins[0], ins[1]
        c = ins[2] if len(ins) > 2 else None
        out = onode.output[0]
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
        trans_a, trans_b = bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0))
        if len(_shape_of(a)) != 2 or len(_shape_of(b)) != 2:
            raise _Unsupported("Gemm operands must be 2-D")

        def oriented(v: Value, transpose: bool, tag: str) -> Value:
            if not transpose:
                return v
            if _is_const(v):
                return np.array(v.T)
            return self._emit(self._fresh(f"{out}/{tag}"), OpKind.TRANSPOSE, [v.node],
                              {"perm": (1, 0)}, shape=v.shape[::-1])

        a_op = oriented(a, trans_a, "transA")
        b_op = oriented(b, trans_b, "transB")
        n_out = _shape_of(b_op)[1]
        # what remains to add after the product: None, a bias vector, or an operand
        bias = None
        add: Value | None = None
        if c is not None and beta != 0.0:
            if _is_const(c):
                cc = _float64(c) * beta
                if cc.ndim <= 1 or (cc.ndim == 2 and cc.shape[0] == 1):
                    bias = np.array(np.broadcast_to(cc.reshape(-1), (n_out,)))
                else:
                    add = cc
            else:
                add = c
                if beta != 1.0:
                    add = self._emit(self._fresh(f"{out}/beta_c"), OpKind.MUL,
                                     [c.node, self._emit_const(self._fresh(f"{out}/beta"),
                                                               np.array(beta))], shape=c.shape)
        steps_left = (add is not None)
        if isinstance(a_op, _Var) and _is_const(b_op):
            consts = {"weight": _float64(b_op.T) * alpha}
            if bias is not None:
                consts["bias"] = bias
            name = self._fresh(f"{out}/linear") if steps_left else out
            y = self._emit(name, OpKind.LINEAR, [a_op.node], consts=consts)
        else:
            scaled = alpha != 1.0 or bias is not None
            name = self._fresh(f"{out}/matmul") if (steps_left or scaled) else out
            y = self._emit(name, OpKind.MATMUL,
                           [self._value_operand(a_op, f"{out}/A"),
                            self._value_operand(b_op, f"{out}/B")])
            if alpha != 1.0:
                last = not (steps_left or bias is not None)
                y = self._emit(out if last else self._fresh(f"{out}/alpha"), OpKind.MUL,
                               [y.node, self._emit_const(self._fresh(f"{out}/alpha_value"),
                                                         np.array(alpha))], shape=y.shape)
            if bias is not None:
                y = self._emit(out if not steps_left else self._fresh(f"{out}/bias"), OpKind.ADD,
                               [y.node, self._emit_const(self._fresh(f"{out}/bias_value"), bias)],
                               shape=np.broadcast_shapes(y.shape, bias.shape))
        if add is not None:
            operand = self._value_operand(add, f"{out}/C")
            y = self._emit(out, OpKind.ADD, [y.node, operand],
                           shape=np.broadcast_shapes(y.shape, _shape_of(add)))
        return [y]

    def _conv(self, onode, ins, attrs):
        x = self._var_input(ins)
        w = self._const_input(ins, 1, "weight")
        b = self._const_input(ins, 2, "bias")
        spatial = w.ndim - 2
        if len(x.shape) != spatial + 2:
            raise _Unsupported(f"input of rank {len(x.shape)} for a {spatial}-D kernel")
        strides = _ints(attrs.get("strides", [1] * spatial))
        dilations = _ints(attrs.get("dilations", [1] * spatial))
        pads = _ints(attrs.get("pads", [0] * (2 * spatial)))
        auto_pad = attrs.get("auto_pad", "NOTSET")
        if auto_pad not in ("NOTSET", ""):
            pads = _same_pads(x.shape[2:], w.shape[2:], strides, dilations, auto_pad)
        consts = {"weight": _float64(w)}
        if b is not None:
            consts["bias"] = _float64(b)
        return [self._emit(onode.output[0], OpKind.CONV, [x.node],
                           {"strides": tuple(strides), "pads": tuple(pads),
                            "dilations": tuple(dilations), "group": int(attrs.get("group", 1))},
                           consts)]

    def _conv_transpose(self, onode, ins, attrs):
        x = self._var_input(ins)
        w = self._const_input(ins, 1, "weight")
        b = self._const_input(ins, 2, "bias")
        spatial = w.ndim - 2
        if len(x.shape) != spatial + 2:
            raise _Unsupported(f"input of rank {len(x.shape)} for a {spatial}-D kernel")
        strides = _ints(attrs.get("strides", [1] * spatial))
        dilations = _ints(attrs.get("dilations", [1] * spatial))
        out_pad = _ints(attrs.get("output_padding", [0] * spatial))
        pads = _ints(attrs.get("pads", [0] * (2 * spatial)))
        auto_pad = attrs.get("auto_pad", "NOTSET") or "NOTSET"
        in_sizes = x.shape[2:]
        kernel = w.shape[2:]
        target = _ints(attrs["output_shape"])[-spatial:] if "output_shape" in attrs else None
        if target is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            target = [in_sizes[i] * strides[i] for i in range(spatial)]
        if auto_pad == "VALID":
            pads = [0] * (2 * spatial)
        if target is not None:
            begin, end = [], []
            for i in range(spatial):
                total = (strides[i] * (in_sizes[i] - 1) + out_pad[i]
                         + (kernel[i] - 1) * dilations[i] + 1 - target[i])
                if total < 0:
                    out_pad[i] -= total  # grow the output at the end
                    total = 0
                half, rest = total // 2, total - total // 2
                if auto_pad == "SAME_UPPER":
                    begin.append(half)
                    end.append(rest)
                else:
                    begin.append(rest)
                    end.append(half)
            pads = begin + end
        consts = {"weight": _float64(w)}
        if b is not None:
            consts["bias"] = _float64(b)
        return [self._emit(onode.output[0], OpKind.CONV_TRANSPOSE, [x.node],
                           {"strides": tuple(strides), "pads": tuple(pads),
                            "dilations": tuple(dilations), "group": int(attrs.get("group", 1)),
                            "output_padding": tuple(out_pad)}, consts)]

    def _batch_norm(self, onode, ins, attrs):
        self._require_outputs(onode, 1)
        if attrs.get("training_mode", 0):
            raise _Unsupported("training_mode=1")
        x = self._var_input(ins)
        consts = {}
        for i, key in enumerate(("scale", "bias", "mean", "var"), start=1):
            v = self._const_input(ins, i, key)
            if v is None:
                raise _Unsupported(f"missing {key}")
            if v.ndim != 1 or len(x.shape) < 2 or v.shape[0] != x.shape[1]:
                raise _Unsupported(f"{key} of shape {v.shape} for input of shape {x.shape}")
            consts[key] = _float64(v)
        return [self._emit(onode.output[0], OpKind.BATCH_NORM, [x.node],
                           {"epsilon": float(attrs.get("epsilon", 1e-5))}, consts,
                           shape=x.shape)]

    def _pool(self, onode, ins, attrs):
        x = self._var_input(ins)
        is_max = onode.op_type == "MaxPool"
        self._require_outputs(onode, 1)
        kernel = _ints(attrs["kernel_shape"])
        spatial = len(kernel)
        if len(x.shape) != spatial + 2:
            raise _Unsupported(f"input of rank {len(x.shape)} for a {spatial}-D kernel")
        strides = _ints(attrs.get("strides", [1] * spatial))
        dilations = _ints(attrs.get("dilations", [1] * spatial))
        pads = _ints(attrs.get("pads", [0] * (2 * spatial)))
        auto_pad = attrs.get("auto_pad", "NOTSET") or "NOTSET"
        if auto_pad != "NOTSET":
            pads = _same_pads(x.shape[2:], kernel, strides, dilations, auto_pad)
        node_attrs: dict[str, Any] = {"kernel_shape": tuple(kernel), "strides": tuple(strides),
                                      "pads": tuple(pads),
                                      "ceil_mode": int(attrs.get("ceil_mode", 0))}
        if is_max:
            node_attrs["dilations"] = tuple(dilations)
            op = OpKind.MAX_POOL
        else:
            if any(d != 1 for d in dilations):
                raise _Unsupported("dilated average pooling")
            if pads[:spatial] != pads[spatial:]:
                raise _Unsupported("asymmetric padding")
            node_attrs["count_include_pad"] = int(attrs.get("count_include_pad", 0))
            op = OpKind.AVERAGE_POOL
        return [self._emit(onode.output[0], op, [x.node], node_attrs)]

    def _global_pool(self, onode, ins, attrs):
        x = self._var_input(ins)
        if len(x.shape) < 3:
            raise _Unsupported(f"input of rank {len(x.shape)}")
        if onode.op_type == "GlobalAveragePool":
            return [self._emit(onode.output[0], OpKind.GLOBAL_AVERAGE_POOL, [x.node])]
        spatial = len(x.shape) - 2
        return [self._emit(onode.output[0], OpKind.MAX_POOL, [x.node],
                           {"kernel_shape": tuple(x.shape[2:]), "strides": (1,) * spatial,
                            "pads": (0,) * (2 * spatial), "dilations": (1,) * spatial,
                            "ceil_mode": 0})]

    def _softmax(self, onode, ins, attrs):
        x = self._var_input(ins)
        rank = len(x.shape)
        out = onode.output[0]
        if rank == 0:
            raise _Unsupported("softmax of a scalar")
        if self.opset >= 13:
            axis = _axis(attrs.get("axis", -1), rank)
            return [self._emit(out, OpKind.SOFTMAX, [x.node], {"axis": axis}, shape=x.shape)]
        # opset < 13: coerce to 2-D at `axis`, i.e. softmax jointly over all axes >= axis
        axis = _axis(attrs.get("axis", 1), rank)
        if axis == rank - 1:
            return [self._emit(out, OpKind.SOFTMAX, [x.node], {"axis": axis}, shape=x.shape)]
        flat = (*x.shape[:axis], math.prod(x.shape[axis:]))
        r = self._emit(self._fresh(f"{out}/flat"), OpKind.RESHAPE, [x.node], shape=flat)
        s = self._emit(self._fresh(f"{out}/softmax"), OpKind.SOFTMAX, [r.node], {"axis": axis},
                       shape=flat)
        return [self._emit(out, OpKind.RESHAPE, [s.node], shape=x.shape)]

    def _resize(self, onode, ins, attrs):
        x = self._var_input(ins)
        rank = len(x.shape)
        op = onode.op_type
        mode = attrs.get("mode", "nearest")
        if mode != "nearest":
            raise _Unsupported(f"mode={mode}")
        scales: list[float] | None = None
        sizes: list[int] | None = None
        if op == "Upsample":
            if self.opset >= 9:
                s = self._const_input(ins, 1, "scales")
                scales = None if s is None else [float(v) for v in s.reshape(-1)]
            else:
                scales = [float(v) for v in attrs.get("scales", [])]
            coord, nearest = "asymmetric", "simple"
        else:
            if self.opset < 11:
                s = self._const_input(ins, 1, "scales")
                scales = None if s is None else [float(v) for v in s.reshape(-1)]
                coord, nearest = "asymmetric", "simple"
            else:
                s = self._const_input(ins, 2, "scales")
                z = self._const_input(ins, 3, "sizes")
                if s is not None and s.size:
                    scales = [float(v) for v in s.reshape(-1)]
                if z is not None and z.size:
                    sizes = _ints(z)
                coord = attrs.get("coordinate_transformation_mode", "half_pixel")
                nearest = attrs.get("nearest_mode", "round_prefer_floor")
                if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch" and sizes:
                    raise _Unsupported("keep_aspect_ratio_policy")
            axes = [_axis(a, rank) for a in attrs.get("axes", range(rank))]
            if scales is not None and len(axes) != rank:
                full = [1.0] * rank
                for a, v in zip(axes, scales):
                    full[a] = v
                scales = full
            if sizes is not None and len(axes) != rank:
                full_sizes = list(x.shape)
                for a, v in zip(axes, sizes):
                    full_sizes[a] = v
                sizes = full_sizes
        if scales is None and sizes is None:
            raise _Unsupported("neither scales nor sizes given")
        if (scales is not None and len(scales) != rank) or (sizes is not None
                                                            and len(sizes) != rank):
            raise _Unsupported("scales/sizes do not match the input rank")
        out_sizes, maps = [], []
        for i in range(rank):
            n_in = x.shape[i]
            if sizes is not None:
                n_out, scale = sizes[i], sizes[i] / n_in
            else:
                scale = scales[i]
                n_out = int(math.floor(n_in * scale))
            if scale <= 0 or n_out <= 0:
                raise _Unsupported(f"scale {scale} on axis {i}")
            out_sizes.append(n_out)
            maps.append(_nearest_index_map(n_in, n_out, scale, coord, nearest))
        out = onode.output[0]
        changed = [i for i in range(rank)
                   if not (out_sizes[i] == x.shape[i]
                           and np.array_equal(maps[i], np.arange(x.shape[i])))]
        if not changed:
            return [x]
        factors = []
        for i in range(rank):
            f = out_sizes[i] // x.shape[i]
            if f * x.shape[i] == out_sizes[i] and np.array_equal(
                    maps[i], np.arange(out_sizes[i]) // f):
                factors.append(f)
            else:
                factors = []
                break
        if factors:
            return [self._emit(out, OpKind.UPSAMPLE, [x.node], {"scales": tuple(factors)},
                               shape=out_sizes)]
        y = x
        for k, i in enumerate(changed):
            name = out if k == len(changed) - 1 else self._fresh(f"{out}/axis{i}")
            shape = list(y.shape)
            shape[i] = out_sizes[i]
            y = self._emit(name, OpKind.GATHER, [y.node], {"axis": i}, {"indices": maps[i]},
                           shape=shape)
        return [y]

    def _reshape(self, onode, ins, attrs):
        x = self._var_input(ins)
        if self.opset >= 5:
            target = self._const_input(ins, 1, "shape")
            if target is None:
                raise _Unsupported("missing shape")
            target = _ints(target)
        else:
            target = _ints(attrs.get("shape", []))
        allowzero = bool(attrs.get("allowzero", 0))
        shape = []
        for i, d in enumerate(target):
            if d == 0 and not allowzero:
                if i >= len(x.shape):
                    raise ModelLoadError(f"reshape target {target} copies missing axis {i}")
                d = x.shape[i]
            shape.append(d)
        if shape.count(-1) > 1:
            raise ModelLoadError(f"reshape target {target} has several -1")
        total = math.prod(x.shape)
        if -1 in shape:
            known = math.prod(d for d in shape if d != -1)
            if known == 0 or total % known:
                raise ModelLoadError(f"cannot reshape {x.shape} to {target}")
            shape[shape.index(-1)] = total // known
        if math.prod(shape) != total:
            raise ModelLoadError(f"cannot reshape {x.shape} to {target}")
        return [self._emit(onode.output[0], OpKind.RESHAPE, [x.node], shape=shape)]

    def _flatten(self, onode, ins, attrs):
        x = self._var_input(ins)
        rank = len(x.shape)
        axis = int(attrs.get("axis", 1))
        axis = axis + rank if axis < 0 else axis
        shape = (math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))
        return [self._emit(onode.output[0], OpKind.RESHAPE, [x.node], shape=shape)]

    def _squeeze(self, onode, ins, attrs):
        x = self._var_input(ins)
        rank = len(x.shape)
        if self.opset >= 13:
            axes_v = self._const_input(ins, 1, "axes")
            axes = None if axes_v is None else _ints(axes_v)
        else:
            axes = _ints(attrs["axes"]) if "axes" in attrs else None
        if axes is None:
            axes = [i for i, d in enumerate(x.shape) if d == 1]
        axes = {_axis(a, rank) for a in axes}
        if any(x.shape[a] != 1 for a in axes):
            raise ModelLoadError(f"cannot squeeze axes {sorted(axes)} of shape {x.shape}")
        shape = [d for i, d in enumerate(x.shape) if i not in axes]
        return [self._emit(onode.output[0], OpKind.RESHAPE, [x.node], shape=shape)]

    def _unsqueeze(self, onode, ins, attrs):
        x = self._var_input(ins)
        if self.opset >= 13:
            axes_v = self._const_input(ins, 1, "axes")
            if axes_v is None:
                raise _Unsupported("missing axes")
            axes = _ints(axes_v)
        else:
            axes = _ints(attrs["axes"])
        rank = len(x.shape) + len(axes)
        axes_set = {_axis(a, rank) for a in axes}
        rest = iter(x.shape)
        shape = [1 if i in axes_set else next(rest) for i in range(rank)]
        return [self._emit(onode.output[0], OpKind.RESHAPE, [x.node], shape=shape)]

    def _transpose(self, onode, ins, attrs):
        x = self._var_input(ins)
        rank = len(x.shape)
        perm = _ints(attrs["perm"]) if "perm" in attrs else list(range(rank))[::-1]
        perm = [_axis(p, rank) for p in perm]
        shape = [x.shape[p] for p in perm]
        return [self._emit(onode.output[0], OpKind.TRANSPOSE, [x.node], {"perm": tuple(perm)},
                           shape=shape)]

    def _concat(self, onode, ins, attrs):
        present = [(t, v) for t, v in zip(onode.input, ins) if t]
        rank = len(_shape_of(present[0][1]))
        axis = _axis(attrs["axis"], rank)
        operands = [self._operand(t) for t, _ in present]
        return [self._emit(onode.output[0], OpKind.CONCAT, operands, {"axis": axis})]

    def _slice(self, onode, ins, attrs):
        x = self._var_input(ins)
        rank = len(x.shape)
        if self.opset >= 10:
            starts = self._const_input(ins, 1, "starts")
            ends = self._const_input(ins, 2, "ends")
            axes_v = self._const_input(ins, 3, "axes")
            steps_v = self._const_input(ins, 4, "steps")
            starts, ends = _ints(starts), _ints(ends)
            axes = _ints(axes_v) if axes_v is not None else list(range(len(starts)))
            steps = _ints(steps_v) if steps_v is not None else [1] * len(starts)
        else:
            starts, ends = _ints(attrs["starts"]), _ints(attrs["ends"])
            axes = _ints(attrs["axes"]) if "axes" in attrs else list(range(len(starts)))
            steps = [1] * len(starts)
        if not len(starts) == len(ends) == len(axes) == len(steps):
            raise ModelLoadError("starts/ends/axes/steps of different lengths")
        r_starts, r_ends, r_axes, r_steps = [], [], [], []
        shape = list(x.shape)
        for start, end, axis, step in zip(starts, ends, axes, steps):
            axis = _axis(axis, rank)
            dim = x.shape[axis]
            if step == 0:
                raise ModelLoadError("slice step 0")
            start = start + dim if start < 0 else start
            end = end + dim if end < 0 else end
            if step > 0:
                start, end = min(max(start, 0), dim), min(max(end, 0), dim)
            else:
                start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
            r_starts.append(start)
            r_ends.append(end)
            r_axes.append(axis)
            r_steps.append(step)
            shape[axis] = len(range(start, end, step))
        return [self._emit(onode.output[0], OpKind.SLICE, [x.node],
                           {"starts": tuple(r_starts), "ends": tuple(r_ends),
                            "axes": tuple(r_axes), "steps": tuple(r_steps)}, shape=shape)]

    def _gather(self, onode, ins, attrs):
        x = self._var_input(ins)
        indices = self._const_input(ins, 1, "indices")
        rank = len(x.shape)
        axis = _axis(attrs.get("axis", 0), rank)
        dim = x.shape[axis]
        idx = np.asarray(indices).astype(np.int64)
        idx = np.where(idx < 0, idx + dim, idx)
        if idx.size and (idx.min() < 0 or idx.max() >= dim):
            raise ModelLoadError(f"gather index out of range for axis of size {dim}")
        shape = (*x.shape[:axis], *idx.shape, *x.shape[axis + 1:])
        return [self._emit(onode.output[0], OpKind.GATHER, [x.node], {"axis": axis},
                           {"indices": np.array(idx, dtype=np.int64)}, shape=shape)]

    def _split(self, onode, ins, attrs):
        x = self._var_input(ins)
        rank = len(x.shape)
        axis = _axis(attrs.get("axis", 0), rank)
        dim = x.shape[axis]
        n = len(onode.output)
        if self.opset >= 13:
            s = self._const_input(ins, 1, "split")
            sizes = _ints(s) if s is not None and s.size else None
        else:
            sizes = _ints(attrs["split"]) if "split" in attrs else None
        if sizes is None:
            if "num_outputs" in attrs:
                chunk = -(-dim // int(attrs["num_outputs"]))
                sizes = [min(chunk, dim - i * chunk) for i in range(int(attrs["num_outputs"]))]
            else:
                if dim % n:
                    raise ModelLoadError(f"cannot split axis of size {dim} into {n} equal parts")
                sizes = [dim // n] * n
        if sum(sizes) != dim or len(sizes) != n:
            raise ModelLoadError(f"split sizes {sizes} do not fit axis of size {dim}")
        results: list[Value] = []
        start = 0
        for name, size in zip(onode.output, sizes):
            shape = list(x.shape)
            shape[axis] = size
            if name:
                results.append(self._emit(name, OpKind.SLICE, [x.node],
                                          {"starts": (start,), "ends": (start + size,),
                                           "axes": (axis,), "steps": (1,)}, shape=shape))
            else:
                results.append(None)
            start += size
        return results

    def _where(self, onode, ins, attrs):
        shape = np.broadcast_shapes(*(_shape_of(v) for v in ins))
        operands = [self._operand(t) for t in onode.input]
        return [self._emit(onode.output[0], OpKind.WHERE, operands, shape=shape)]

    def _expand(self, onode, ins, attrs):
        x = self._var_input(ins)
        target = _ints(self._const_input(ins, 1, "shape"))
        shape = np.broadcast_shapes(x.shape, tuple(target))
        if tuple(shape) == x.shape:
            return [x]
        return [self._emit(onode.output[0], OpKind.EXPAND, [x.node], shape=shape)]

    def _pad(self, onode, ins, attrs):
        x = self._var_input(ins)
        rank = len(x.shape)
        mode = attrs.get("mode", "constant")
        if mode != "constant":
            raise _Unsupported(f"mode={mode}")
        if self.opset >= 11:
            pads = _ints(self._const_input(ins, 1, "pads"))
            v = self._const_input(ins, 2, "constant_value")
            value = float(np.asarray(v).reshape(-1)[0]) if v is not None and v.size else 0.0
            axes_v = self._const_input(ins, 3, "axes")
            if axes_v is not None:
                axes = [_axis(a, rank) for a in _ints(axes_v)]
                full = [0] * (2 * rank)
                for k, a in enumerate(axes):
                    full[a], full[rank + a] = pads[k], pads[len(axes) + k]
                pads = full
        else:
            pads = _ints(attrs.get("pads", attrs.get("paddings", [])))
            value = float(attrs.get("value", 0.0))
        if len(pads) != 2 * rank:
            raise ModelLoadError(f"{len(pads)} pads for rank {rank}")
        shape = [x.shape[i] + pads[i] + pads[rank + i] for i in range(rank)]
        return [self._emit(onode.output[0], OpKind.PAD, [x.node],
                           {"pads": tuple(pads), "value": value}, shape=shape)]

    def _reduce(op: OpKind, input_axes_from: int) -> Callable:  # type: ignore[misc]
        def handle(self: _Importer, onode, ins, attrs):
            x = self._var_input(ins)
            rank = len(x.shape)
            if self.opset >= input_axes_from:
                axes_v = self._const_input(ins, 1, "axes")
                axes = _ints(axes_v) if axes_v is not None else []
                noop = bool(attrs.get("noop_with_empty_axes", 0))
            else:
                axes = _ints(attrs.get("axes", []))
                noop = False
            if not axes:
                if noop:
                    return [x]
                axes = list(range(rank))
            axes_t = tuple(sorted({_axis(a, rank) for a in axes}))
            keep = bool(attrs.get("keepdims", 1))
            shape = [1 if i in axes_t else d for i, d in enumerate(x.shape)
                     if keep or i not in axes_t]
            return [self._emit(onode.output[0], op, [x.node], {"axes": axes_t, "keepdims": keep},
                               shape=shape)]
        return handle

    HANDLERS: dict[str, Callable] = {
        "Relu": _unary(OpKind.RELU),
        "Sigmoid": _unary(OpKind.SIGMOID),
        "Tanh": _unary(OpKind.TANH),
        "Sin": _unary(OpKind.SIN),
        "Cos": _unary(OpKind.COS),
        "Exp": _unary(OpKind.EXP),
        "Log": _unary(OpKind.LOG),
        "Sqrt": _unary(OpKind.SQRT),
        "Reciprocal": _unary(OpKind.RECIPROCAL),
        "Abs": _unary(OpKind.ABS),
        "Neg": _unary(OpKind.NEG),
        "Erf": _unary(OpKind.ERF),
        "LeakyRelu": _leaky_relu,
        "Gelu": _gelu,
        "Add": _broadcast(OpKind.ADD),
        "Sub": _broadcast(OpKind.SUB),
        "Mul": _broadcast(OpKind.MUL),
        "Div": _broadcast(OpKind.DIV),
        "Pow": _broadcast(OpKind.POW),
        "Identity": _identity,
        "Dropout": _identity,
        "Cast": _cast,
        "MatMul": _matmul,
        "Gemm": _gemm,
        "Conv": _conv,
        "ConvTranspose": _conv_transpose,
        "BatchNormalization": _batch_norm,
        "MaxPool": _pool,
        "AveragePool": _pool,
        "GlobalAveragePool": _global_pool,
        "GlobalMaxPool": _global_pool,
        "Softmax": _softmax,
        "Upsample": _resize,
        "Resize": _resize,
        "Reshape": _reshape,
        "Flatten": _flatten,
        "Squeeze": _squeeze,
        "Unsqueeze": _unsqueeze,
        "Transpose": _transpose,
        "Concat": _concat,
        "Slice": _slice,
        "Gather": _gather,
        "Split": _split,
        "Where": _where,
        "Expand": _expand,
        "Pad": _pad,
        "ReduceSum": _reduce(OpKind.REDUCE_SUM, 13),
        "ReduceMean": _reduce(OpKind.REDUCE_MEAN, 18),
    }
