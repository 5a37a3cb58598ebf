"""Node: one operation of the IR, and the error raised for an invalid graph.

Kept apart from :mod:`hybridver.ir.graph` so that :mod:`hybridver.ir.evaluate` (which
evaluates nodes) and the graph (which validates its shapes by evaluating) depend on it
without depending on each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from hybridver.errors import ModelLoadError
from hybridver.ir.ops import OpKind

__all__ = ["GraphValidationError", "Node"]


class GraphValidationError(ModelLoadError):
    """The graph is structurally invalid (dangling input, cycle, wrong arity, bad shape)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Node:
    """One IR node.

    ``shape`` is the per-sample output shape (the ONNX shape, dynamic dims fixed to 1);
    batched tensors flowing through the graph have shape ``(batch, *shape)``.
    ``consts`` hold numpy arrays (float64 for weights, int64 for indices).
    """

    name: str
    op: OpKind
    inputs: tuple[str, ...] = ()
    attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    consts: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "op", OpKind(self.op))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))
        object.__setattr__(self, "consts", MappingProxyType(dict(self.consts)))

    @property
    def size(self) -> int:
        """Number of scalars in one sample of this node's output."""
        return int(np.prod(self.shape, dtype=np.int64))

    def replace(self, **changes: Any) -> "Node":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)
