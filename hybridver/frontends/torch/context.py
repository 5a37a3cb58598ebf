"""The state of one torch.fx conversion and the helpers every converter uses.

A value in the conversion is a :class:`Var` (a tensor computed from the input, held by an
IR node), :data:`BAD` (the value of an unsupported node or of anything computed from one),
or a static python/torch value recorded on the example input.  Converters are functions
``(ctx, args, kwargs) -> value``; they raise :class:`Unsupported` with the description
shown to the user.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.fx as fx

from hybridver.ir.builder import GraphBuilder
from hybridver.ir.node import Node
from hybridver.ir.ops import OpKind

__all__ = ["Var", "Meta", "BAD", "Unsupported", "TorchContext", "Conv", "as_var", "arg",
           "int_tuple", "to_numpy", "softmax_dim", "leaves", "map_values", "qualname"]


@dataclasses.dataclass(frozen=True)
class Var:
    """A data-dependent tensor, held by the IR node ``name``."""

    name: str


@dataclasses.dataclass(frozen=True)
class Meta:
    """Shape and dtype of a dynamic tensor recorded on the example input."""

    shape: tuple[int, ...]
    dtype: torch.dtype


class Bad:
    """The value of an unsupported node (or of anything computed from one)."""


BAD = Bad()


class Unsupported(Exception):
    """Raised by a converter; the message is the description shown to the user."""


def map_values(value: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(map_values(v, fn) for v in value)
    if isinstance(value, list):
        return [map_values(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: map_values(v, fn) for k, v in value.items()}
    return fn(value)


def leaves(value: Any) -> list[Any]:
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in leaves(v)]
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in leaves(v)]
    return [value]


def int_tuple(value: Any, k: int) -> tuple[int, ...]:
    if isinstance(value, (tuple, list)):
        if len(value) == 1 and k > 1:
            return tuple(int(value[0]) for _ in range(k))
        if len(value) != k:
            raise Unsupported(f"expected {k} values, got {value!r}")
        return tuple(int(v) for v in value)
    return (int(value),) * k


def arg(args: Sequence[Any], kwargs: Mapping[str, Any], pos: int, name: str,
        default: Any = None) -> Any:
    if name in kwargs:
        return kwargs[name]
    if pos < len(args):
        return args[pos]
    return default


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy().copy()


def softmax_dim(dim: Any, rank: int) -> int:
    if dim is None:  # torch's legacy implicit choice
        dim = 0 if rank in (0, 1, 3) else 1
    return int(dim) % max(rank, 1)


def qualname(target: Any) -> str:
    try:
        return fx.node._get_qualified_name(target)
    except Exception:  # pragma: no cover - exotic callables
        return getattr(target, "__name__", repr(target))


class TorchContext:
    """One conversion: the traced module, the recorded values, the IR nodes built so far.

    ``values``: per fx node, the recorded value (static nodes) or its :class:`Meta`
    (dynamic nodes); ``current``: the fx node being converted, whose name the last IR node
    of its translation takes (helper nodes get ``<fx name>_<suffix>`` names).
    """

    def __init__(self, gm: fx.GraphModule, values: dict[fx.Node, Any],
                 dynamic: Mapping[fx.Node, bool]):
        self.gm = gm
        self.values = values
        self.dynamic = dynamic
        self.builder = GraphBuilder(taken={n.name for n in gm.graph.nodes})
        self.env: dict[fx.Node, Any] = {}
        self.unsupported: list[tuple[str, str]] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.current: fx.Node | None = None
        self.current_key = ""

    # ------------------------------------------------------------ node building
    def fresh(self, base: str) -> str:
        """A new node name from ``base`` that no fx node and no emitted node uses."""
        return self.builder.fresh(base)

    def add(self, node: Node) -> Var:
        self.builder.add(node)
        return Var(node.name)

    def emit(self, op: OpKind, inputs: Sequence[str], shape: Sequence[int], *,
             attrs: Mapping[str, Any] | None = None, consts: Mapping[str, Any] | None = None,
             final: bool = False, suffix: str = "") -> Var:
        assert self.current is not None
        if final:
            name = self.current.name
            if name in self.builder:
                name = self.fresh(name)
        else:
            name = self.fresh(f"{self.current.name}_{suffix or op.value}")
        return Var(self.builder.emit(op, inputs, shape, name=name, attrs=attrs, consts=consts))

    def const(self, value: Any, suffix: str = "c") -> str:
        arr = np.asarray(value)
        if arr.dtype.kind in "biuf":
            arr = arr.astype(np.float64)
        name = self.fresh(f"{self.current.name}_{suffix}" if self.current is not None
                          else suffix)
        return self.builder.constant(arr, name=name)

    def operand(self, value: Any, suffix: str = "c") -> str:
        """IR name holding a tensor operand (a dynamic tensor or a static value)."""
        if isinstance(value, Var):
            return value.name
        if isinstance(value, torch.Tensor):
            return self.const(to_numpy(value), suffix)
        if isinstance(value, (bool, int, float)):
            return self.const(np.float64(value), suffix)
        raise Unsupported(f"operand of type {type(value).__name__}")

    def shape_of(self, value: Any) -> tuple[int, ...]:
        if isinstance(value, Var):
            return self.builder.shape(value.name)
        if isinstance(value, torch.Tensor):
            return tuple(value.shape)
        return ()

    def out_shape(self) -> tuple[int, ...]:
        meta = self.values.get(self.current)
        if not isinstance(meta, Meta):
            raise Unsupported("result is not a single tensor")
        return meta.shape


Conv = Callable[[TorchContext, tuple, dict], Any]


def as_var(value: Any, what: str = "operand") -> Var:
    if not isinstance(value, Var):
        raise Unsupported(f"{what} is not a tensor computed from the input")
    return value

