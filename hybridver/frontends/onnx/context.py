"""The state of one ONNX import and the helpers every op handler uses.

A value of an ONNX tensor is either a numpy array (it does not depend on a graph input:
initializers, folded constants) or a :class:`Var` (it does: an IR node holds it).  Handlers
are functions ``(ctx, onode, ins, attrs) -> [value per ONNX output]``; they raise
:class:`Unsupported` for an operator variant that cannot be converted (collected and
reported together) and :class:`~hybridver.errors.ModelLoadError` for a malformed node.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx

from hybridver.errors import ModelLoadError
from hybridver.ir.builder import GraphBuilder
from hybridver.ir.ops import OpKind

__all__ = ["Var", "Value", "Unsupported", "Handler", "OnnxContext", "FLOAT_TYPES", "is_const",
           "shape_of", "ints", "axis_index", "float64", "as_ir_const", "same_pads"]

FLOAT_TYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE,
                         onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16})


@dataclasses.dataclass(frozen=True)
class Var:
    """A tensor that depends on the graph inputs: produced by IR node ``node``."""

    node: str
    shape: tuple[int, ...]


Value = Any  # Var | np.ndarray


class Unsupported(Exception):
    """This node (or this variant of its operator) cannot be converted."""


# ---------------------------------------------------------------------------- values
def is_const(v: Value) -> bool:
    return isinstance(v, np.ndarray)


def shape_of(v: Value) -> tuple[int, ...]:
    return tuple(v.shape)


def ints(values: Any) -> list[int]:
    return [int(v) for v in np.asarray(values).reshape(-1)]


def axis_index(axis: int, rank: int) -> int:
    """``axis`` made non-negative; a ModelLoadError when it is out of range."""
    a = int(axis)
    if a < 0:
        a += rank
    if not 0 <= a < max(rank, 1):
        raise ModelLoadError(f"axis {axis} out of range for rank {rank}")
    return a


def float64(v: np.ndarray) -> np.ndarray:
    """A fresh, writable, C-contiguous float64 copy."""
    return np.array(v, dtype=np.float64, order="C", copy=True)


def as_ir_const(v: np.ndarray) -> np.ndarray:
    """IR representation of a constant: floats as float64, ints as int64, bools kept."""
    v = np.asarray(v)
    if v.dtype.kind == "f":
        return float64(v)
    if v.dtype.kind in "iu":
        return np.array(v, dtype=np.int64, order="C", copy=True)
    if v.dtype.kind == "b":
        return np.array(v, dtype=bool, order="C", copy=True)
    raise Unsupported(f"constant of dtype {v.dtype}")


def same_pads(in_sizes: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
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


# ---------------------------------------------------------------------------- context
class OnnxContext:
    """One import: the model, the value of every ONNX tensor seen so far, the IR nodes.

    IR node names are ONNX tensor names; helper nodes get fresh ``<output>/<suffix>``
    names that no ONNX tensor uses.
    """

    def __init__(self, model: onnx.ModelProto, source: str):
        self.model = model
        self.graph = model.graph
        self.source = source
        self.opsets = {(o.domain or ""): int(o.version) for o in model.opset_import}
        self.opset = self.opsets.get("", self.opsets.get("ai.onnx", 1))
        self.values: dict[str, Value] = {}
        self.const_nodes: dict[str, str] = {}   # ONNX constant tensor -> IR CONSTANT node
        self.unsupported: list[tuple[str, str]] = []
        self.poisoned: set[str] = set()
        taken: set[str] = set()
        for n in self.graph.node:
            taken.update(t for t in n.output if t)
            taken.update(t for t in n.input if t)
        taken.update(t.name for t in self.graph.initializer)
        taken.update(t.name for t in self.graph.input)
        taken.update(t.name for t in self.graph.output)
        self.builder = GraphBuilder(taken, sep="/")
        self.consumed: set[str] = set()
        self._elem_types: dict[str, int] | None = None

    def elem_type(self, tensor: str) -> int | None:
        """ONNX element type of ``tensor`` (by ONNX shape inference), None if unknown."""
        if self._elem_types is None:
            try:
                inferred = onnx.shape_inference.infer_shapes(self.model).graph
            except Exception:  # noqa: BLE001 - inference is best effort; unknown is refused
                inferred = self.graph
            types = {t.name: t.data_type for t in inferred.initializer}
            for info in (*inferred.input, *inferred.value_info, *inferred.output):
                if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
                    types[info.name] = info.type.tensor_type.elem_type
            self._elem_types = types
        return self._elem_types.get(tensor)

    # ---------------------------------------------------------------- emitting
    def fresh(self, base: str) -> str:
        return self.builder.fresh(base)

    def emit(self, name: str, op: OpKind, inputs: Sequence[str],
             attrs: dict[str, Any] | None = None, consts: dict[str, np.ndarray] | None = None,
             shape: Sequence[int] | None = None) -> Var:
        """Add IR node ``name`` (shape inferred when not given)."""
        self.builder.emit(op, inputs, shape, name=name, attrs=attrs, consts=consts)
        return Var(name, self.builder.shape(name))

    def emit_const(self, name: str, value: np.ndarray) -> str:
        return self.builder.constant(as_ir_const(value), name=name)

    def operand(self, tensor: str) -> str:
        """IR node name for ONNX tensor ``tensor`` (a CONSTANT node for constants)."""
        v = self.values[tensor]
        if isinstance(v, Var):
            return v.node
        if tensor not in self.const_nodes:
            name = tensor if tensor not in self.builder else self.fresh(tensor)
            self.const_nodes[tensor] = self.emit_const(name, v)
        return self.const_nodes[tensor]

    def value_operand(self, v: Value, base: str) -> str:
        """IR node name for a value that may not be an ONNX tensor (fresh CONSTANT)."""
        if isinstance(v, Var):
            return v.node
        return self.emit_const(self.fresh(base), v)

    # ---------------------------------------------------------------- operands
    @staticmethod
    def const_input(ins: list[Value | None], i: int, what: str) -> np.ndarray | None:
        """Input ``i`` which must be constant (None if absent)."""
        if i >= len(ins) or ins[i] is None:
            return None
        if not is_const(ins[i]):
            raise Unsupported(f"non-constant {what}")
        return ins[i]

    @staticmethod
    def var_input(ins: list[Value | None], i: int = 0) -> Var:
        v = ins[i]
        if not isinstance(v, Var):
            raise Unsupported(f"operand {i} must be the variable tensor")
        return v

    def require_outputs(self, onode: onnx.NodeProto, n: int) -> None:
        """Only the first ``n`` outputs are produced; the others must be unused."""
        for t in onode.output[n:]:
            if t and t in self.consumed:
                raise Unsupported(f"output '{t}' is not supported")


Handler = Callable[[OnnxContext, onnx.NodeProto, list, dict], list]
