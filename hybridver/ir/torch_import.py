"""Import a ``torch.nn.Module`` into the IR through ``torch.fx`` symbolic tracing.

The module is copied, put in eval mode and converted to float64; it is traced with
:func:`torch.fx.symbolic_trace` and run once on the example input by a
:class:`~torch.fx.passes.shape_prop.ShapeProp` interpreter that also records values.
Every fx node is then classified:

* *static*: its value does not depend on the input data (parameters, buffers, constants
  built in ``forward``, shape queries such as ``x.size(0)``); the recorded value is used
  as is (python values) or becomes a ``CONSTANT`` node when a tensor operand needs it;
* *dynamic*: it depends on the input; it is translated into IR nodes whose per-sample
  shape is the shape recorded on the example input (leading batch dimension included).

Anything the importer cannot translate is collected and reported all at once through
:class:`~hybridver.errors.UnsupportedOpError` (description, fx node name).
"""

from __future__ import annotations

import builtins
import copy
import dataclasses
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from torch.fx.passes.shape_prop import ShapeProp

from hybridver.errors import ModelLoadError, UnsupportedOpError
from hybridver.ir.graph import NetworkGraph, Node
from hybridver.ir.ops import OpKind

__all__ = ["from_torch", "check_against_module"]


# ---------------------------------------------------------------------------- values
@dataclasses.dataclass(frozen=True)
class _Var:
    """A data-dependent tensor, held by the IR node ``name``."""

    name: str


@dataclasses.dataclass(frozen=True)
class _Meta:
    """Shape and dtype of a dynamic tensor recorded on the example input."""

    shape: tuple[int, ...]
    dtype: torch.dtype


class _Bad:
    """The value of an unsupported node (or of anything computed from one)."""


_BAD = _Bad()


class _Unsupported(Exception):
    """Raised by a converter; the message is the description shown to the user."""


# Shape/metadata queries: static even when their operand is dynamic.
_SHAPE_METHODS = frozenset({"size", "dim", "ndimension", "numel", "nelement", "new_zeros",
                            "new_ones", "new_full", "new_empty", "new_tensor", "get_device"})
_SHAPE_ATTRS = frozenset({"shape", "dtype", "device", "ndim", "is_cuda", "requires_grad"})
_SHAPE_FUNCTIONS = (torch.numel, torch.zeros_like, torch.ones_like, torch.full_like,
                    torch.empty_like)


def _is_shape_query(n: fx.Node) -> bool:
    if n.op == "call_method":
        return n.target in _SHAPE_METHODS
    if n.op == "call_function":
        if n.target is builtins.getattr:
            return len(n.args) > 1 and n.args[1] in _SHAPE_ATTRS
        return any(n.target is f for f in _SHAPE_FUNCTIONS)
    return False


def _map_values(value: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_map_values(v, fn) for v in value)
    if isinstance(value, list):
        return [_map_values(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: _map_values(v, fn) for k, v in value.items()}
    return fn(value)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in _leaves(v)]
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    return [value]


class _Recorder(ShapeProp):
    """ShapeProp that also keeps static values and the shapes of dynamic results."""

    def __init__(self, gm: fx.GraphModule, dynamic: Mapping[fx.Node, bool]):
        super().__init__(gm)
        self.dynamic = dynamic
        self.values: dict[fx.Node, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if self.dynamic.get(n, False):
            self.values[n] = _map_values(
                result, lambda v: _Meta(tuple(v.shape), v.dtype) if isinstance(v, torch.Tensor)
                else v)
        else:
            self.values[n] = result
        return result


# ---------------------------------------------------------------------------- helpers
def _tuple(value: Any, k: int) -> tuple[int, ...]:
    if isinstance(value, (tuple, list)):
        if len(value) == 1 and k > 1:
            return tuple(int(value[0]) for _ in range(k))
        if len(value) != k:
            raise _Unsupported(f"expected {k} values, got {value!r}")
        return tuple(int(v) for v in value)
    return (int(value),) * k


def _arg(args: Sequence[Any], kwargs: Mapping[str, Any], pos: int, name: str,
         default: Any = None) -> Any:
    if name in kwargs:
        return kwargs[name]
    if pos < len(args):
        return args[pos]
    return default


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy().copy()


def _softmax_dim(dim: Any, rank: int) -> int:
    if dim is None:  # torch's legacy implicit choice
        dim = 0 if rank in (0, 1, 3) else 1
    return int(dim) % max(rank, 1)


def _qualname(target: Any) -> str:
    try:
        return fx.node._get_qualified_name(target)
    except Exception:  # pragma: no cover - exotic callables
        return getattr(target, "__name__", repr(target))


class _Converter:
    def __init__(self, gm: fx.GraphModule, values: dict[fx.Node, Any],
                 dynamic: Mapping[fx.Node, bool]):
        self.gm = gm
        self.values = values
        self.dynamic = dynamic
        self.nodes: list[Node] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.reserved = {n.name for n in gm.graph.nodes}
        self.used: set[str] = set()
        self.env: dict[fx.Node, Any] = {}
        self.unsupported: list[tuple[str, str]] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.current: fx.Node | None = None
        self.current_key = ""

    # ------------------------------------------------------------ node building
    def fresh(self, base: str) -> str:
        """A new node name from ``base`` that no fx node and no emitted node uses."""
        name, i = base, 0
        while name in self.used or name in self.reserved:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def add(self, node: Node) -> _Var:
        self.nodes.append(node)
        self.shapes[node.name] = node.shape
        return _Var(node.name)

    def emit(self, op: OpKind, inputs: Sequence[str], shape: Sequence[int], *,
             attrs: Mapping[str, Any] | None = None, consts: Mapping[str, Any] | None = None,
             final: bool = False, suffix: str = "") -> _Var:
        assert self.current is not None
        if final:
            name = self.current.name
            if name in self.used:
                name = self.fresh(name)
            else:
                self.used.add(name)
        else:
            name = self.fresh(f"{self.current.name}_{suffix or op.value}")
        return self.add(Node(name, op, tuple(inputs), dict(attrs or {}), dict(consts or {}),
                             tuple(shape)))

    def const(self, value: Any, suffix: str = "c") -> str:
        arr = np.asarray(value)
        if arr.dtype.kind in "biuf":
            arr = arr.astype(np.float64)
        name = self.fresh(f"{self.current.name}_{suffix}" if self.current is not None
                          else suffix)
        self.add(Node(name, OpKind.CONSTANT, (), {}, {"value": arr}, arr.shape))
        return name

    def operand(self, value: Any, suffix: str = "c") -> str:
        """IR name holding a tensor operand (a dynamic tensor or a static value)."""
        if isinstance(value, _Var):
            return value.name
        if isinstance(value, torch.Tensor):
            return self.const(_np(value), suffix)
        if isinstance(value, (bool, int, float)):
            return self.const(np.float64(value), suffix)
        raise _Unsupported(f"operand of type {type(value).__name__}")

    def shape_of(self, value: Any) -> tuple[int, ...]:
        if isinstance(value, _Var):
            return self.shapes[value.name]
        if isinstance(value, torch.Tensor):
            return tuple(value.shape)
        return ()

    def out_shape(self) -> tuple[int, ...]:
        meta = self.values.get(self.current)
        if not isinstance(meta, _Meta):
            raise _Unsupported("result is not a single tensor")
        return meta.shape

    # ------------------------------------------------------------ main loop
    def run(self) -> None:
        order = {n: i for i, n in enumerate(self.gm.graph.nodes)}
        for n in self.gm.graph.nodes:
            self.current = n
            if n.op == "placeholder":
                meta = self.values.get(n)
                if isinstance(meta, _Meta):
                    self.env[n] = self.add(Node(n.name, OpKind.INPUT, shape=meta.shape))
                    self.used.add(n.name)
                    self.inputs.append(n.name)
                else:  # a non-tensor argument (a default value): static
                    self.env[n] = self.values.get(n)
                continue
            if n.op == "output":
                self._outputs(n)
                continue
            if not self.dynamic[n]:
                self.env[n] = self.values[n]
                continue
            args = fx.node.map_arg(n.args, lambda a: self.env[a])
            kwargs = fx.node.map_arg(n.kwargs, lambda a: self.env[a])
            if any(v is _BAD for v in _leaves((args, kwargs))):
                # downstream of an unsupported node: still report ops unknown in themselves
                if not self._known(n, args):
                    self.unsupported.append((self._describe(n), n.name))
                self.env[n] = _BAD
                continue
            try:
                self._check_inplace(n, order)
                self.env[n] = self._convert(n, args, kwargs)
            except _Unsupported as exc:
                self.unsupported.append((str(exc), n.name))
                self.env[n] = _BAD

    def _outputs(self, n: fx.Node) -> None:
        value = fx.node.map_arg(n.args[0], lambda a: self.env[a])
        for leaf in _leaves(value):
            if leaf is _BAD:
                continue
            if isinstance(leaf, _Var):
                self.outputs.append(leaf.name)
            elif isinstance(leaf, torch.Tensor):
                self.outputs.append(self.operand(leaf, "const_output"))
            else:
                self.unsupported.append((f"non-tensor output {type(leaf).__name__}", n.name))

    def _check_inplace(self, n: fx.Node, order: Mapping[fx.Node, int]) -> None:
        inplace = False
        if n.op == "call_method" and isinstance(n.target, str):
            inplace = n.target.endswith("_") and not n.target.startswith("_")
        if n.kwargs.get("inplace", False) is True:
            inplace = True
        if n.op == "call_module" and getattr(self.gm.get_submodule(n.target), "inplace", False):
            inplace = True
        if not inplace or not n.args or not isinstance(n.args[0], fx.Node):
            return
        src = n.args[0]
        later = [u for u in src.users if u is not n and order[u] > order[n]]
        if later:
            raise _Unsupported(f"in-place {self._describe(n)} whose operand '{src.name}' is "
                               f"used again afterwards (by '{later[0].name}')")

    def _describe(self, n: fx.Node) -> str:
        if n.op == "call_module":
            mod = self.gm.get_submodule(n.target)
            cls = type(mod)
            prefix = "torch.nn." if cls.__module__.startswith("torch.nn") else cls.__module__ + "."
            return f"{prefix}{cls.__name__}"
        if n.op == "call_method":
            return f"Tensor.{n.target}"
        if n.op == "call_function":
            return _qualname(n.target)
        return f"{n.op} {n.target}"

    def _known(self, n: fx.Node, args: tuple) -> bool:
        if n.op == "call_module":
            mod = self.gm.get_submodule(n.target)
            return any(isinstance(mod, cls) for cls, _ in _MODULES)
        if n.op == "call_function":
            if n.target is builtins.getattr:
                return args[1] in ("T", "mT", "data")
            return _function_key(n.target) in _CONVERTERS
        if n.op == "call_method":
            return _METHOD_KEYS.get(n.target) in _CONVERTERS
        return False

    def _convert(self, n: fx.Node, args: tuple, kwargs: dict) -> Any:
        if n.op == "call_module":
            mod = self.gm.get_submodule(n.target)
            for cls, fn in _MODULES:
                if isinstance(mod, cls):
                    return fn(self, mod, args, kwargs)
            raise _Unsupported(self._describe(n))
        if n.op == "call_function":
            key = _function_key(n.target)
            if n.target is builtins.getattr:
                key = {"T": "T", "mT": "mT", "data": "alias"}.get(args[1])
                if key is None:
                    raise _Unsupported(f"attribute Tensor.{args[1]}")
                args = args[:1]
        elif n.op == "call_method":
            key = _METHOD_KEYS.get(n.target)
        else:
            key = None
        if key is None or key not in _CONVERTERS:
            raise _Unsupported(self._describe(n))
        self.current_key = key
        return _CONVERTERS[key](self, args, kwargs)


# ---------------------------------------------------------------------------- converters
Conv = Callable[[_Converter, tuple, dict], Any]
_CONVERTERS: dict[str, Conv] = {}


def _converter(*keys: str) -> Callable[[Conv], Conv]:
    def register(fn: Conv) -> Conv:
        for key in keys:
            _CONVERTERS[key] = fn
        return fn
    return register


def _var(value: Any, what: str = "operand") -> _Var:
    if not isinstance(value, _Var):
        raise _Unsupported(f"{what} is not a tensor computed from the input")
    return value


_UNARY = {"relu": OpKind.RELU, "sigmoid": OpKind.SIGMOID, "tanh": OpKind.TANH,
          "sin": OpKind.SIN, "cos": OpKind.COS, "exp": OpKind.EXP, "log": OpKind.LOG,
          "sqrt": OpKind.SQRT, "abs": OpKind.ABS, "neg": OpKind.NEG,
          "reciprocal": OpKind.RECIPROCAL, "erf": OpKind.ERF}


def _unary(op: OpKind) -> Conv:
    def convert(c: _Converter, args: tuple, kwargs: dict) -> Any:
        x = _var(args[0])
        return c.emit(op, [x.name], c.out_shape(), final=True)
    return convert


for _key, _op in _UNARY.items():
    _CONVERTERS[_key] = _unary(_op)


@_converter("alias")
def _alias(c: _Converter, args: tuple, kwargs: dict) -> Any:
    x = _var(args[0])
    meta = c.values[c.current]
    if isinstance(meta, _Meta) and not meta.dtype.is_floating_point:
        raise _Unsupported(f"cast to {meta.dtype}")
    return x


@_converter("dropout")
def _dropout(c: _Converter, args: tuple, kwargs: dict) -> Any:
    if _arg(args, kwargs, 2, "training", True):
        raise _Unsupported("dropout in training mode (pass training=self.training)")
    return _var(args[0])


@_converter("gelu")
def _gelu(c: _Converter, args: tuple, kwargs: dict) -> Any:
    approximate = kwargs.get("approximate", "none")
    return _gelu_op(c, _var(args[0]), approximate)


def _gelu_op(c: _Converter, x: _Var, approximate: str) -> _Var:
    if approximate != "none":
        raise _Unsupported(f"GELU(approximate={approximate!r}): only the exact (erf) GELU, "
                           "approximate='none', is supported")
    return c.emit(OpKind.GELU, [x.name], c.out_shape(), final=True)


@_converter("leaky_relu")
def _leaky_relu(c: _Converter, args: tuple, kwargs: dict) -> Any:
    slope = float(_arg(args, kwargs, 1, "negative_slope", 0.01))
    return c.emit(OpKind.LEAKY_RELU, [_var(args[0]).name], c.out_shape(),
                  attrs={"alpha": slope}, final=True)


@_converter("softmax", "log_softmax")
def _softmax(c: _Converter, args: tuple, kwargs: dict) -> Any:
    x = _var(args[0])
    dim = _arg(args, kwargs, 1, "dim", None)
    return _softmax_op(c, x, dim, log=c.current_key == "log_softmax")


def _softmax_op(c: _Converter, x: _Var, dim: Any, log: bool) -> _Var:
    shape = c.out_shape()
    axis = _softmax_dim(dim, len(shape))
    y = c.emit(OpKind.SOFTMAX, [x.name], shape, attrs={"axis": axis}, final=not log)
    if log:
        y = c.emit(OpKind.LOG, [y.name], shape, final=True)
    return y


@_converter("silu")
def _silu(c: _Converter, args: tuple, kwargs: dict) -> Any:
    return _silu_op(c, _var(args[0]))


def _silu_op(c: _Converter, x: _Var) -> _Var:
    shape = c.out_shape()
    s = c.emit(OpKind.SIGMOID, [x.name], shape)
    return c.emit(OpKind.MUL, [x.name, s.name], shape, final=True)


def _clamp_op(c: _Converter, x: _Var, lo: Any, hi: Any) -> _Var:
    """clamp through ReLU: max(x, lo) = relu(x - lo) + lo, min(y, hi) = hi - relu(hi - y)."""
    shape = c.out_shape()
    y = x
    if lo is not None:
        if isinstance(lo, (int, float)) and lo == 0:
            y = c.emit(OpKind.RELU, [y.name], shape, final=hi is None)
        else:
            lo_name = c.operand(lo, "min")
            d = c.emit(OpKind.SUB, [y.name, lo_name], shape)
            r = c.emit(OpKind.RELU, [d.name], shape)
            y = c.emit(OpKind.ADD, [r.name, lo_name], shape, final=hi is None)
    if hi is not None:
        hi_name = c.operand(hi, "max")
        d = c.emit(OpKind.SUB, [hi_name, y.name], shape)
        r = c.emit(OpKind.RELU, [d.name], shape)
        y = c.emit(OpKind.SUB, [hi_name, r.name], shape, final=True)
    if lo is None and hi is None:
        return x
    return y


@_converter("clamp")
def _clamp(c: _Converter, args: tuple, kwargs: dict) -> Any:
    lo = _arg(args, kwargs, 1, "min", None)
    hi = _arg(args, kwargs, 2, "max", None)
    return _clamp_op(c, _var(args[0]), lo, hi)


@_converter("clamp_min")
def _clamp_min(c: _Converter, args: tuple, kwargs: dict) -> Any:
    return _clamp_op(c, _var(args[0]), _arg(args, kwargs, 1, "min"), None)


@_converter("clamp_max")
def _clamp_max(c: _Converter, args: tuple, kwargs: dict) -> Any:
    return _clamp_op(c, _var(args[0]), None, _arg(args, kwargs, 1, "max"))


@_converter("hardtanh")
def _hardtanh(c: _Converter, args: tuple, kwargs: dict) -> Any:
    return _clamp_op(c, _var(args[0]), float(_arg(args, kwargs, 1, "min_val", -1.0)),
                     float(_arg(args, kwargs, 2, "max_val", 1.0)))


@_converter("relu6")
def _relu6(c: _Converter, args: tuple, kwargs: dict) -> Any:
    return _clamp_op(c, _var(args[0]), 0, 6.0)


# ------------------------------------------------------------------ arithmetic
_BINARY = {"add": OpKind.ADD, "sub": OpKind.SUB, "mul": OpKind.MUL, "div": OpKind.DIV,
           "pow": OpKind.POW}


def _scaled(c: _Converter, value: Any, alpha: Any) -> Any:
    if alpha is None or alpha == 1:
        return value
    if isinstance(value, _Var):
        return c.emit(OpKind.MUL, [value.name, c.operand(alpha, "alpha")],
                      c.shape_of(value), suffix="alpha")
    return value * alpha


def _binary(key: str) -> Conv:
    op = _BINARY[key]

    def convert(c: _Converter, args: tuple, kwargs: dict) -> Any:
        a = _arg(args, kwargs, 0, "input")
        b = _arg(args, kwargs, 1, "other")
        if key == "pow" and b is None:
            b = _arg(args, kwargs, 1, "exponent")
        if key == "div" and kwargs.get("rounding_mode") is not None:
            raise _Unsupported(f"division with rounding_mode={kwargs['rounding_mode']!r}")
        if key in ("add", "sub"):
            b = _scaled(c, b, kwargs.get("alpha"))
        return c.emit(op, [c.operand(a, "lhs"), c.operand(b, "rhs")], c.out_shape(),
                      final=True)
    return convert


for _key in _BINARY:
    _CONVERTERS[_key] = _binary(_key)


@_converter("rsub")
def _rsub(c: _Converter, args: tuple, kwargs: dict) -> Any:
    a = _scaled(c, _arg(args, kwargs, 0, "input"), kwargs.get("alpha"))
    b = _arg(args, kwargs, 1, "other")
    return c.emit(OpKind.SUB, [c.operand(b, "lhs"), c.operand(a, "rhs")], c.out_shape(),
                  final=True)


@_converter("matmul")
def _matmul(c: _Converter, args: tuple, kwargs: dict) -> Any:
    a = _arg(args, kwargs, 0, "input")
    b = _arg(args, kwargs, 1, "other")
    if b is None:
        b = kwargs.get("mat2")
    return c.emit(OpKind.MATMUL, [c.operand(a, "lhs"), c.operand(b, "rhs")], c.out_shape(),
                  final=True)


@_converter("linear")
def _linear(c: _Converter, args: tuple, kwargs: dict) -> Any:
    x = _var(_arg(args, kwargs, 0, "input"))
    w = _arg(args, kwargs, 1, "weight")
    b = _arg(args, kwargs, 2, "bias")
    return _linear_op(c, x, w, b)


def _linear_op(c: _Converter, x: _Var, w: Any, b: Any) -> _Var:
    if not isinstance(w, torch.Tensor) or (b is not None and not isinstance(b, torch.Tensor)):
        raise _Unsupported("linear layer whose weight depends on the input")
    consts = {"weight": _np(w)}
    if b is not None:
        consts["bias"] = _np(b)
    return c.emit(OpKind.LINEAR, [x.name], c.out_shape(), consts=consts, final=True)


@_converter("sum", "mean")
def _reduce(c: _Converter, args: tuple, kwargs: dict) -> Any:
    x = _var(args[0])
    rank = len(c.shape_of(x))
    dim = _arg(args, kwargs, 1, "dim", None)
    keepdim = bool(_arg(args, kwargs, 2, "keepdim", False))
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        axes = tuple(range(rank))
    elif isinstance(dim, (tuple, list)):
        axes = tuple(sorted({int(d) % rank for d in dim}))
    else:
        axes = (int(dim) % rank,)
    op = OpKind.REDUCE_SUM if c.current_key == "sum" else OpKind.REDUCE_MEAN
    return c.emit(op, [x.name], c.out_shape(), attrs={"axes": axes, "keepdims": keepdim},
                  final=True)


# ------------------------------------------------------------------ data movement
@_converter("reshape")
def _reshape(c: _Converter, args: tuple, kwargs: dict) -> Any:
    x = _var(args[0])
    return _reshape_to(c, x, c.out_shape(), final=True)


def _reshape_to(c: _Converter, x: _Var, shape: tuple[int, ...], final: bool = False) -> _Var:
    if c.shape_of(x) == tuple(shape):
        return x
    return c.emit(OpKind.RESHAPE, [x.name], shape, final=final)


@_converter("expand")
def _expand(c: _Converter, args: tuple, kwargs: dict) -> Any:
    x = _var(args[0])
    shape = c.out_shape()
    if c.shape_of(x) == shape:
        return x
    return c.emit(OpKind.EXPAND, [x.name], shape, final=True)


def _transpose_to(c: _Converter, x: _Var, perm: Sequence[int]) -> _Var:
    perm = tuple(int(p) for p in perm)
    if perm == tuple(range(len(perm))):
        return x
    return c.emit(OpKind.TRANSPOSE, [x.name], c.out_shape(), attrs={"perm": perm}, final=True)


@_converter("permute")
def _permute(c: _Converter, args: tuple, kwargs: dict) -> Any:
    x = _var(args[0])
    rank = len(c.shape_of(x))
    dims = kwargs.get("dims", args[1:])
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = dims[0]
    return _transpose_to(c, x, [int(d) % rank for d in dims])


@_converter("transpose")
def _transpose(c: _Converter, args: tuple, kwargs: dict) -> Any:
    x = _var(args[0])
    rank = len(c.shape_of(x))
    d0 = int(_arg(args, kwargs, 1, "dim0")) % rank
    d1 = int(_arg(args, kwargs, 2, "dim1")) % rank
    perm = list(range(rank))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return _transpose_to(c, x, perm)


@_converter("t")
def _t(c: _Converter, args: tuple, kwargs: dict) -> Any:
    x = _var(args[0])
    rank = len(c.shape_of(x))
    return _transpose_to(c, x, [1, 0] if rank == 2 else list(range(rank)))


@_converter("T")
def _big_t(c: _Converter, args: tuple, kwargs: dict) -> Any:
    x = _var(args[0])
    return _transpose_to(c, x, list(reversed(range(len(c.shape_of(x))))))


@_converter("mT")
def _m_t(c: _Converter, args: tuple, kwargs: dict) -> Any:
    x = _var(args[0])
    rank = len(c.shape_of(x))
    perm = list(range(rank))
    perm[-2], perm[-1] = perm[-1], perm[-2]
    return _transpose_to(c, x, perm)


@_converter("cat")
def _cat(c: _Converter, args: tuple, kwargs: dict) -> Any:
    tensors = list(_arg(args, kwargs, 0, "tensors"))
    shape = c.out_shape()
    axis = int(_arg(args, kwargs, 1, "dim", 0)) % len(shape)
    names = [c.operand(t, f"part{i}") for i, t in enumerate(tensors)
             if not (isinstance(t, torch.Tensor) and t.numel() == 0 and t.dim() == 1)]
    if len(names) == 1:
        return _Var(names[0])
    return c.emit(OpKind.CONCAT, names, shape, attrs={"axis": axis}, final=True)


@_converter("stack")
def _stack(c: _Converter, args: tuple, kwargs: dict) -> Any:
    tensors = list(_arg(args, kwargs, 0, "tensors"))
    shape = c.out_shape()
    axis = int(_arg(args, kwargs, 1, "dim", 0)) % len(shape)
    names = []
    for i, t in enumerate(tensors):
        if isinstance(t, _Var):
            s = list(c.shape_of(t))
            s.insert(axis, 1)
            names.append(c.emit(OpKind.RESHAPE, [t.name], s, suffix=f"unsqueeze{i}").name)
        else:
            names.append(c.operand(torch.as_tensor(t).unsqueeze(axis), f"part{i}"))
    return c.emit(OpKind.CONCAT, names, shape, attrs={"axis": axis}, final=True)


def _slice_pieces(c: _Converter, x: _Var, axis: int, sizes: Sequence[int],
                  drop_axis: bool = False) -> tuple[_Var, ...]:
    shape = c.shape_of(x)
    out, start = [], 0
    for i, size in enumerate(sizes):
        s = list(shape)
        s[axis] = size
        piece = c.emit(OpKind.SLICE, [x.name], s, suffix=f"part{i}",
                       attrs={"starts": (start,), "ends": (start + size,), "axes": (axis,),
                              "steps": (1,)})
        if drop_axis:
            del s[axis]
            piece = c.emit(OpKind.RESHAPE, [piece.name], s, suffix=f"squeeze{i}")
        out.append(piece)
        start += size
    return tuple(out)


def _pieces_meta(c: _Converter) -> list[tuple[int, ...]]:
    meta = c.values[c.current]
    if not isinstance(meta, (tuple, list)) or not all(isinstance(m, _Meta) for m in meta):
        raise _Unsupported("split into something other than a list of tensors")
    return [m.shape for m in meta]


@_converter("split", "chunk", "tensor_split")
def _split(c: _Converter, args: tuple, kwargs: dict) -> Any:
    x = _var(args[0])
    rank = len(c.shape_of(x))
    axis = int(_arg(args, kwargs, 2, "dim", 0)) % rank
    sizes = [s[axis] for s in _pieces_meta(c)]
    return _slice_pieces(c, x, axis, sizes)


@_converter("unbind")
def _unbind(c: _Converter, args: tuple, kwargs: dict) -> Any:
    x = _var(args[0])
    shape = c.shape_of(x)
    axis = int(_arg(args, kwargs, 1, "dim", 0)) % len(shape)
    return _slice_pieces(c, x, axis, [1] * shape[axis], drop_axis=True)


@_converter("getitem")
def _getitem(c: _Converter, args: tuple, kwargs: dict) -> Any:
    obj, index = args[0], args[1]
    if isinstance(obj, (tuple, list)):
        if isinstance(index, (_Var, torch.Tensor)):
            raise _Unsupported("indexing a list with a tensor")
        return obj[index]
    x = _var(obj)
    return _index_tensor(c, x, index)


def _index_tensor(c: _Converter, x: _Var, index: Any) -> _Var:
    shape = c.shape_of(x)
    items = list(index) if isinstance(index, tuple) else [index]
    for item in items:
        if isinstance(item, _Var):
            raise _Unsupported("indexing with a tensor computed from the input")
        if isinstance(item, torch.Tensor) and item.dtype == torch.bool or isinstance(item, bool):
            raise _Unsupported("boolean-mask indexing")
    consuming = sum(1 for it in items if it is not None and it is not Ellipsis)
    if any(it is Ellipsis for it in items):
        k = next(i for i, it in enumerate(items) if it is Ellipsis)
        items[k:k + 1] = [slice(None)] * (len(shape) - consuming)
    else:
        items += [slice(None)] * (len(shape) - consuming)
    advanced = [i for i, it in enumerate(items)
                if isinstance(it, (list, torch.Tensor)) and not
                (isinstance(it, torch.Tensor) and it.dim() == 0)]
    has_int_or_none = any(it is None or isinstance(it, int) or
                          (isinstance(it, torch.Tensor) and it.dim() == 0) for it in items)
    if len(advanced) > 1 or (advanced and has_int_or_none):
        raise _Unsupported("advanced indexing with several index tensors (or mixed with "
                           "integers/None)")
    starts, ends, axes, steps = [], [], [], []
    gather: tuple[int, np.ndarray] | None = None
    axis = 0
    for it in items:
        if it is None:
            continue
        dim = shape[axis]
        if isinstance(it, torch.Tensor) and it.dim() == 0:
            it = int(it)
        if isinstance(it, int):
            i = it % dim
            starts.append(i), ends.append(i + 1), axes.append(axis), steps.append(1)
        elif isinstance(it, slice):
            start, stop, step = it.indices(dim)
            if step <= 0:
                raise _Unsupported("slice with a non-positive step")
            if (start, stop, step) != (0, dim, 1):
                stop = max(stop, start)
                starts.append(start), ends.append(stop), axes.append(axis), steps.append(step)
        else:
            idx = np.asarray(it.cpu().numpy() if isinstance(it, torch.Tensor) else it)
            if idx.dtype.kind not in "iu":
                raise _Unsupported(f"indexing with a {idx.dtype} array")
            gather = (axis, idx.astype(np.int64) % dim)
        axis += 1
    y = x
    if starts:
        s = list(shape)
        for start, end, ax, step in zip(starts, ends, axes, steps):
            s[ax] = len(range(start, end, step))
        y = c.emit(OpKind.SLICE, [y.name], s, suffix="slice",
                   attrs={"starts": tuple(starts), "ends": tuple(ends), "axes": tuple(axes),
                          "steps": tuple(steps)})
    if gather is not None:
        ax, idx = gather
        s = list(c.shape_of(y))
        s[ax:ax + 1] = idx.shape
        y = c.emit(OpKind.GATHER, [y.name], s, attrs={"axis": ax}, consts={"indices": idx},
                   suffix="gather")
    out = c.out_shape()
    if c.shape_of(y) != out:
        y = c.emit(OpKind.RESHAPE, [y.name], out, suffix="reshape")
    return y


@_converter("pad")
def _pad(c: _Converter, args: tuple, kwargs: dict) -> Any:
    x = _var(args[0])
    pad = list(_arg(args, kwargs, 1, "pad"))
    mode = _arg(args, kwargs, 2, "mode", "constant")
    value = _arg(args, kwargs, 3, "value", None)
    if mode != "constant":
        raise _Unsupported(f"padding mode {mode!r}")
    rank = len(c.shape_of(x))
    begin, end = [0] * rank, [0] * rank
    for i in range(len(pad) // 2):
        begin[rank - 1 - i] = int(pad[2 * i])
        end[rank - 1 - i] = int(pad[2 * i + 1])
    return c.emit(OpKind.PAD, [x.name], c.out_shape(),
                  attrs={"pads": tuple(begin + end), "value": float(value or 0.0)}, final=True)


@_converter("interpolate")
def _interpolate(c: _Converter, args: tuple, kwargs: dict) -> Any:
    mode = _arg(args, kwargs, 3, "mode", "nearest")
    return _upsample_op(c, _var(args[0]), mode)


def _upsample_op(c: _Converter, x: _Var, mode: str) -> _Var:
    if mode != "nearest":
        raise _Unsupported(f"interpolation mode {mode!r} (only 'nearest' is supported)")
    in_shape, out = c.shape_of(x), c.out_shape()
    if len(in_shape) != len(out) or any(o % i for i, o in zip(in_shape, out)):
        raise _Unsupported(f"nearest upsampling from {in_shape} to {out} by a non-integer "
                           "factor")
    scales = tuple(o // i for i, o in zip(in_shape, out))
    return c.emit(OpKind.UPSAMPLE, [x.name], out, attrs={"scales": scales}, final=True)


# ------------------------------------------------------------------ conv, norm, pooling
def _conv_op(c: _Converter, x: _Var, weight: Any, bias: Any, stride: Any, padding: Any,
             dilation: Any, groups: Any) -> _Var:
    if not isinstance(weight, torch.Tensor) or (bias is not None and
                                                not isinstance(bias, torch.Tensor)):
        raise _Unsupported("convolution whose weight depends on the input")
    k = weight.dim() - 2
    dil = _tuple(dilation, k)
    if isinstance(padding, str):
        if padding == "valid":
            begin = end = (0,) * k
        elif padding == "same":
            total = [d * (w - 1) for d, w in zip(dil, weight.shape[2:])]
            begin = tuple(t // 2 for t in total)
            end = tuple(t - b for t, b in zip(total, begin))
        else:
            raise _Unsupported(f"convolution padding {padding!r}")
    else:
        begin = end = _tuple(padding, k)
    consts = {"weight": _np(weight)}
    if bias is not None:
        consts["bias"] = _np(bias)
    attrs = {"strides": _tuple(stride, k), "pads": tuple(begin) + tuple(end),
             "dilations": dil, "group": int(groups)}
    return c.emit(OpKind.CONV, [x.name], c.out_shape(), attrs=attrs, consts=consts, final=True)


@_converter("conv")
def _conv(c: _Converter, args: tuple, kwargs: dict) -> Any:
    return _conv_op(c, _var(args[0]), _arg(args, kwargs, 1, "weight"),
                    _arg(args, kwargs, 2, "bias"), _arg(args, kwargs, 3, "stride", 1),
                    _arg(args, kwargs, 4, "padding", 0), _arg(args, kwargs, 5, "dilation", 1),
                    _arg(args, kwargs, 6, "groups", 1))


def _conv_transpose_op(c: _Converter, x: _Var, weight: Any, bias: Any, stride: Any,
                       padding: Any, groups: Any, dilation: Any) -> _Var:
    if not isinstance(weight, torch.Tensor) or (bias is not None and
                                                not isinstance(bias, torch.Tensor)):
        raise _Unsupported("transposed convolution whose weight depends on the input")
    k = weight.dim() - 2
    strides, pads, dil = _tuple(stride, k), _tuple(padding, k), _tuple(dilation, k)
    shape = c.out_shape()
    in_shape = c.shape_of(x)
    # output_padding from the recorded output size (covers output_size= too)
    out_pad = tuple(
        shape[len(shape) - k + i] - ((in_shape[len(in_shape) - k + i] - 1) * strides[i]
                                     - 2 * pads[i] + dil[i] * (weight.shape[2 + i] - 1) + 1)
        for i in range(k))
    attrs = {"strides": strides, "pads": pads + pads, "dilations": dil, "group": int(groups),
             "output_padding": out_pad}
    consts = {"weight": _np(weight)}
    if bias is not None:
        consts["bias"] = _np(bias)
    return c.emit(OpKind.CONV_TRANSPOSE, [x.name], shape, attrs=attrs, consts=consts,
                  final=True)


@_converter("conv_transpose")
def _conv_transpose(c: _Converter, args: tuple, kwargs: dict) -> Any:
    return _conv_transpose_op(c, _var(args[0]), _arg(args, kwargs, 1, "weight"),
                              _arg(args, kwargs, 2, "bias"), _arg(args, kwargs, 3, "stride", 1),
                              _arg(args, kwargs, 4, "padding", 0),
                              _arg(args, kwargs, 6, "groups", 1),
                              _arg(args, kwargs, 7, "dilation", 1))


def _batch_norm_op(c: _Converter, x: _Var, mean: Any, var: Any, weight: Any, bias: Any,
                   training: bool, eps: float) -> _Var:
    if training or not isinstance(mean, torch.Tensor) or not isinstance(var, torch.Tensor):
        raise _Unsupported("batch normalization with batch statistics (training mode or "
                           "track_running_stats=False)")
    n = mean.numel()
    consts = {"scale": _np(weight) if isinstance(weight, torch.Tensor) else np.ones(n),
              "bias": _np(bias) if isinstance(bias, torch.Tensor) else np.zeros(n),
              "mean": _np(mean), "var": _np(var)}
    if len(c.shape_of(x)) < 2:
        raise _Unsupported("batch normalization of a tensor without a channel axis")
    return c.emit(OpKind.BATCH_NORM, [x.name], c.out_shape(), attrs={"epsilon": float(eps)},
                  consts=consts, final=True)


@_converter("batch_norm")
def _batch_norm(c: _Converter, args: tuple, kwargs: dict) -> Any:
    return _batch_norm_op(c, _var(args[0]), _arg(args, kwargs, 1, "running_mean"),
                          _arg(args, kwargs, 2, "running_var"), _arg(args, kwargs, 3, "weight"),
                          _arg(args, kwargs, 4, "bias"),
                          bool(_arg(args, kwargs, 5, "training", False)),
                          float(_arg(args, kwargs, 7, "eps", 1e-5)))


def _max_pool_op(c: _Converter, x: _Var, k: int, kernel: Any, stride: Any, padding: Any,
                 dilation: Any, ceil_mode: Any, return_indices: Any) -> _Var:
    if return_indices:
        raise _Unsupported("max pooling that returns indices")
    kernel = _tuple(kernel, k)
    strides = _tuple(stride, k) if stride not in (None, [], ()) else kernel
    pads = _tuple(padding, k)
    attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads + pads,
             "dilations": _tuple(dilation, k), "ceil_mode": int(bool(ceil_mode))}
    return c.emit(OpKind.MAX_POOL, [x.name], c.out_shape(), attrs=attrs, final=True)


def _avg_pool_op(c: _Converter, x: _Var, k: int, kernel: Any, stride: Any, padding: Any,
                 ceil_mode: Any, count_include_pad: Any, divisor_override: Any = None) -> _Var:
    if divisor_override is not None:
        raise _Unsupported("average pooling with divisor_override")
    kernel = _tuple(kernel, k)
    strides = _tuple(stride, k) if stride not in (None, [], ()) else kernel
    pads = _tuple(padding, k)
    attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads + pads,
             "ceil_mode": int(bool(ceil_mode)), "count_include_pad": int(bool(count_include_pad))}
    return c.emit(OpKind.AVERAGE_POOL, [x.name], c.out_shape(), attrs=attrs, final=True)


def _adaptive_avg_pool_op(c: _Converter, x: _Var, k: int) -> _Var:
    in_shape = c.shape_of(x)
    out = c.out_shape()
    sizes_in, sizes_out = in_shape[-k:], out[-k:]
    if any(i % o for i, o in zip(sizes_in, sizes_out)):
        raise _Unsupported(f"adaptive average pooling from {sizes_in} to {sizes_out} "
                           "(input size not a multiple of the output size)")
    if all(o == 1 for o in sizes_out) and len(in_shape) == k + 2:
        return c.emit(OpKind.GLOBAL_AVERAGE_POOL, [x.name], out, final=True)
    kernel = tuple(i // o for i, o in zip(sizes_in, sizes_out))
    attrs = {"kernel_shape": kernel, "strides": kernel, "pads": (0,) * (2 * k),
             "ceil_mode": 0, "count_include_pad": 0}
    return c.emit(OpKind.AVERAGE_POOL, [x.name], out, attrs=attrs, final=True)


def _pool_converter(kind: str, k: int) -> Conv:
    def convert(c: _Converter, args: tuple, kwargs: dict) -> Any:
        x = _var(args[0])
        if kind == "max":
            return _max_pool_op(c, x, k, _arg(args, kwargs, 1, "kernel_size"),
                                _arg(args, kwargs, 2, "stride"),
                                _arg(args, kwargs, 3, "padding", 0),
                                _arg(args, kwargs, 4, "dilation", 1),
                                _arg(args, kwargs, 5, "ceil_mode", False),
                                _arg(args, kwargs, 6, "return_indices", False))
        if kind == "avg":
            return _avg_pool_op(c, x, k, _arg(args, kwargs, 1, "kernel_size"),
                                _arg(args, kwargs, 2, "stride"),
                                _arg(args, kwargs, 3, "padding", 0),
                                _arg(args, kwargs, 4, "ceil_mode", False),
                                _arg(args, kwargs, 5, "count_include_pad", True),
                                _arg(args, kwargs, 6, "divisor_override"))
        return _adaptive_avg_pool_op(c, x, k)
    return convert


for _k in (1, 2, 3):
    _CONVERTERS[f"max_pool{_k}d"] = _pool_converter("max", _k)
    _CONVERTERS[f"avg_pool{_k}d"] = _pool_converter("avg", _k)
    _CONVERTERS[f"adaptive_avg_pool{_k}d"] = _pool_converter("adaptive", _k)


# ---------------------------------------------------------------------------- tables
def _function_table() -> dict[Any, str]:
    table: list[tuple[Any, str]] = []

    def add(key: str, *fns: Any) -> None:
        table.extend((fn, key) for fn in fns if fn is not None)

    t, f = torch, F
    g = getattr
    for name in ("relu", "sigmoid", "tanh", "sin", "cos", "exp", "log", "sqrt", "abs", "neg",
                 "reciprocal", "erf"):
        add(name, g(t, name, None), g(t, name + "_", None), g(f, name, None))
    add("relu", g(f, "relu_", None))
    add("neg", operator.neg, g(t, "negative", None))
    add("erf", g(t.special, "erf", None))
    add("gelu", f.gelu)
    add("leaky_relu", f.leaky_relu, g(f, "leaky_relu_", None))
    add("softmax", f.softmax, t.softmax)
    add("log_softmax", f.log_softmax, t.log_softmax)
    add("silu", f.silu)
    add("hardtanh", f.hardtanh)
    add("relu6", f.relu6)
    add("clamp", t.clamp, t.clip)
    add("clamp_min", g(t, "clamp_min", None))
    add("clamp_max", g(t, "clamp_max", None))
    add("add", operator.add, operator.iadd, t.add)
    add("sub", operator.sub, operator.isub, t.sub, t.subtract)
    add("rsub", g(t, "rsub", None))
    add("mul", operator.mul, operator.imul, t.mul, t.multiply)
    add("div", operator.truediv, operator.itruediv, t.div, t.true_divide, t.divide)
    add("pow", operator.pow, t.pow)
    add("matmul", operator.matmul, t.matmul, t.mm, t.bmm)
    add("linear", f.linear)
    add("reshape", t.flatten, t.reshape, t.squeeze, t.unsqueeze, t.ravel,
        g(t, "unflatten", None))
    add("permute", t.permute)
    add("transpose", t.transpose, t.swapaxes)
    add("t", t.t)
    add("expand", g(t, "broadcast_to", None))
    add("cat", t.cat, g(t, "concat", None), g(t, "concatenate", None))
    add("stack", t.stack)
    add("split", t.split)
    add("chunk", t.chunk)
    add("tensor_split", t.tensor_split)
    add("unbind", t.unbind)
    add("sum", t.sum)
    add("mean", t.mean)
    add("getitem", operator.getitem)
    add("pad", f.pad)
    add("interpolate", f.interpolate, g(f, "upsample", None), g(f, "upsample_nearest", None))
    add("conv", f.conv1d, f.conv2d, f.conv3d)
    add("conv_transpose", f.conv_transpose1d, f.conv_transpose2d, f.conv_transpose3d)
    add("batch_norm", f.batch_norm)
    for k in (1, 2, 3):
        add(f"max_pool{k}d", g(f, f"max_pool{k}d"))
        add(f"avg_pool{k}d", g(f, f"avg_pool{k}d"))
        add(f"adaptive_avg_pool{k}d", g(f, f"adaptive_avg_pool{k}d"))
    add("dropout", f.dropout, g(f, "dropout1d", None), f.dropout2d, f.dropout3d,
        f.alpha_dropout, f.feature_alpha_dropout)
    add("alias", t.clone, t.detach)
    return {id(fn): key for fn, key in table}


_FUNCTIONS = _function_table()


def _function_key(target: Any) -> str | None:
    return _FUNCTIONS.get(id(target))


_METHOD_KEYS: dict[str, str] = {}
for _name in ("relu", "sigmoid", "tanh", "sin", "cos", "exp", "log", "sqrt", "abs", "neg",
              "reciprocal", "erf", "add", "sub", "mul", "div", "pow", "clamp", "clamp_min",
              "clamp_max"):
    _METHOD_KEYS[_name] = _name
    _METHOD_KEYS[_name + "_"] = _name
_METHOD_KEYS.update({
    "negative": "neg", "clip": "clamp", "clip_": "clamp", "subtract": "sub",
    "multiply": "mul", "true_divide": "div", "divide": "div",
    "softmax": "softmax", "log_softmax": "log_softmax", "matmul": "matmul", "mm": "matmul",
    "bmm": "matmul", "flatten": "reshape", "view": "reshape", "reshape": "reshape",
    "view_as": "reshape", "reshape_as": "reshape", "squeeze": "reshape",
    "unsqueeze": "reshape", "ravel": "reshape", "unflatten": "reshape", "squeeze_": "reshape",
    "unsqueeze_": "reshape", "contiguous": "alias", "clone": "alias", "detach": "alias",
    "float": "alias", "double": "alias", "to": "alias", "type_as": "alias", "cpu": "alias",
    "cuda": "alias", "permute": "permute", "transpose": "transpose", "swapaxes": "transpose",
    "t": "t", "expand": "expand", "expand_as": "expand", "broadcast_to": "expand",
    "split": "split", "chunk": "chunk", "tensor_split": "tensor_split", "unbind": "unbind",
    "sum": "sum", "mean": "mean",
})


# Module converters ----------------------------------------------------------------
ModConv = Callable[[_Converter, nn.Module, tuple, dict], Any]


def _m_linear(c: _Converter, m: nn.Linear, args: tuple, kwargs: dict) -> Any:
    return _linear_op(c, _var(args[0]), m.weight, m.bias)


def _m_conv(c: _Converter, m: nn.modules.conv._ConvNd, args: tuple, kwargs: dict) -> Any:
    if m.padding_mode != "zeros":
        raise _Unsupported(f"{type(m).__name__} with padding_mode={m.padding_mode!r}")
    return _conv_op(c, _var(args[0]), m.weight, m.bias, m.stride, m.padding, m.dilation,
                    m.groups)


def _m_conv_transpose(c: _Converter, m: nn.modules.conv._ConvTransposeNd, args: tuple,
                      kwargs: dict) -> Any:
    return _conv_transpose_op(c, _var(args[0]), m.weight, m.bias, m.stride, m.padding,
                              m.groups, m.dilation)


def _m_batch_norm(c: _Converter, m: nn.modules.batchnorm._BatchNorm, args: tuple,
                  kwargs: dict) -> Any:
    return _batch_norm_op(c, _var(args[0]), m.running_mean, m.running_var, m.weight, m.bias,
                          m.training or m.running_mean is None, m.eps)


def _m_simple(key: str) -> ModConv:
    def convert(c: _Converter, m: nn.Module, args: tuple, kwargs: dict) -> Any:
        c.current_key = key
        return _CONVERTERS[key](c, args[:1], {})
    return convert


def _m_gelu(c: _Converter, m: nn.GELU, args: tuple, kwargs: dict) -> Any:
    return _gelu_op(c, _var(args[0]), m.approximate)


def _m_leaky(c: _Converter, m: nn.LeakyReLU, args: tuple, kwargs: dict) -> Any:
    return _CONVERTERS["leaky_relu"](c, (args[0], m.negative_slope), {})


def _m_softmax(c: _Converter, m: nn.Module, args: tuple, kwargs: dict) -> Any:
    return _softmax_op(c, _var(args[0]), m.dim, log=isinstance(m, nn.LogSoftmax))


def _m_hardtanh(c: _Converter, m: nn.Hardtanh, args: tuple, kwargs: dict) -> Any:
    if isinstance(m, nn.ReLU6):
        return _clamp_op(c, _var(args[0]), 0, 6.0)
    return _clamp_op(c, _var(args[0]), float(m.min_val), float(m.max_val))


def _m_reshape(c: _Converter, m: nn.Module, args: tuple, kwargs: dict) -> Any:
    return _reshape_to(c, _var(args[0]), c.out_shape(), final=True)


def _m_identity(c: _Converter, m: nn.Module, args: tuple, kwargs: dict) -> Any:
    return _var(args[0])


def _m_dropout(c: _Converter, m: nn.Module, args: tuple, kwargs: dict) -> Any:
    if m.training:
        raise _Unsupported(f"{type(m).__name__} in training mode")
    return _var(args[0])


def _m_upsample(c: _Converter, m: nn.Upsample, args: tuple, kwargs: dict) -> Any:
    return _upsample_op(c, _var(args[0]), m.mode)


def _m_pool(k: int) -> ModConv:
    def convert(c: _Converter, m: nn.Module, args: tuple, kwargs: dict) -> Any:
        x = _var(args[0])
        if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
            return _max_pool_op(c, x, k, m.kernel_size, m.stride, m.padding, m.dilation,
                                m.ceil_mode, m.return_indices)
        if isinstance(m, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
            return _avg_pool_op(c, x, k, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                                m.count_include_pad, getattr(m, "divisor_override", None))
        return _adaptive_avg_pool_op(c, x, k)
    return convert


_MODULES: list[tuple[type, ModConv]] = [
    (nn.Linear, _m_linear),
    ((nn.Conv1d, nn.Conv2d, nn.Conv3d), _m_conv),
    ((nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d), _m_conv_transpose),
    ((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d), _m_batch_norm),
    (nn.ReLU, _m_simple("relu")),
    (nn.Sigmoid, _m_simple("sigmoid")),
    (nn.Tanh, _m_simple("tanh")),
    (nn.SiLU, _m_simple("silu")),
    (nn.GELU, _m_gelu),
    (nn.LeakyReLU, _m_leaky),
    ((nn.Softmax, nn.LogSoftmax), _m_softmax),
    (nn.Hardtanh, _m_hardtanh),  # ReLU6 is a Hardtanh subclass
    ((nn.Flatten, nn.Unflatten), _m_reshape),
    (nn.Identity, _m_identity),
    (nn.Upsample, _m_upsample),
    ((nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
      nn.FeatureAlphaDropout), _m_dropout),
    ((nn.MaxPool1d, nn.AvgPool1d, nn.AdaptiveAvgPool1d), _m_pool(1)),
    ((nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d), _m_pool(2)),
    ((nn.MaxPool3d, nn.AvgPool3d, nn.AdaptiveAvgPool3d), _m_pool(3)),
]


# ---------------------------------------------------------------------------- public API
def _as_inputs(example_input: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(example_input, torch.Tensor):
        return (example_input,)
    if isinstance(example_input, (tuple, list)) and all(
            isinstance(t, torch.Tensor) for t in example_input):
        return tuple(example_input)
    raise ModelLoadError("example_input must be a tensor (or a tuple of tensors)")


def _float64(module: nn.Module) -> nn.Module:
    m = copy.deepcopy(module)
    m.eval()
    return m.to(torch.float64)


def _f64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float64) if t.is_floating_point() else t.detach()


def from_torch(module: nn.Module, example_input: torch.Tensor | Sequence[torch.Tensor],
               name: str | None = None, *, check: bool = True) -> NetworkGraph:
    """Trace ``module`` with torch.fx and convert it into a :class:`NetworkGraph`.

    ``example_input`` fixes every shape (its leading batch dimension, normally 1, is part
    of the per-sample shape).  The module itself is not modified: a float64 copy in eval
    mode is traced.  With ``check`` (default) the graph is compared with the module on a
    few random inputs near the example and :class:`ModelLoadError` is raised on a mismatch.

    Raises :class:`UnsupportedOpError` listing every operation that cannot be translated.
    """
    examples = _as_inputs(example_input)
    graph_name = name or type(module).__name__
    m64 = _float64(module)
    try:
        gm = fx.symbolic_trace(m64)
    except Exception as exc:
        raise ModelLoadError(f"torch.fx cannot trace {graph_name}: {exc}") from exc

    dynamic: dict[fx.Node, bool] = {}
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            dynamic[n] = True
        elif n.op == "get_attr" or _is_shape_query(n):
            dynamic[n] = False
        else:
            dynamic[n] = any(dynamic[a] for a in n.all_input_nodes)
    recorder = _Recorder(gm, dynamic)
    try:
        with torch.no_grad():
            recorder.propagate(*(_f64(t) for t in examples))
    except Exception as exc:
        raise ModelLoadError(f"running {graph_name} on the example input failed: {exc}") from exc

    conv = _Converter(gm, recorder.values, dynamic)
    conv.run()
    if conv.unsupported:
        raise UnsupportedOpError(conv.unsupported, model=graph_name, kind="torch operation")
    if not conv.outputs:
        raise ModelLoadError(f"{graph_name} returns no tensor computed from its input")
    draft = NetworkGraph(conv.nodes, conv.inputs, conv.outputs, name=graph_name,
                         check_shapes=False)
    graph = draft.with_nodes(draft.nodes(), check_shapes=True)
    if check:
        check_against_module(graph, module, examples if len(examples) > 1 else examples[0],
                             n=4, tol=1e-6)
    return graph


def _module_outputs(out: Any) -> list[torch.Tensor]:
    return [leaf for leaf in _leaves(out) if isinstance(leaf, torch.Tensor)]


def check_against_module(graph: NetworkGraph, module: nn.Module,
                         example_input: torch.Tensor | Sequence[torch.Tensor], n: int = 16,
                         tol: float | None = 1e-5, seed: int = 0,
                         inputs: Sequence[torch.Tensor] | torch.Tensor | None = None) -> float:
    """Max abs difference between ``graph`` and ``module`` on ``n`` random inputs.

    The inputs are the example input plus standard normal noise (or ``inputs``: a batch
    ``(n, *example.shape)`` per graph input).  The module runs as a float64 copy in eval
    mode, one sample at a time.  When ``tol`` is not None, a difference above
    ``tol * max(1, max |module output|)`` raises :class:`ModelLoadError`.
    """
    from hybridver.ir.evaluate import evaluate_all

    examples = _as_inputs(example_input)
    if inputs is None:
        gen = torch.Generator().manual_seed(seed)
        batches = [_f64(e).unsqueeze(0) + torch.randn(n, *e.shape, generator=gen,
                                                       dtype=torch.float64)
                   if e.is_floating_point() else e.unsqueeze(0).expand(n, *e.shape)
                   for e in examples]
    else:
        batches = [_f64(b) for b in _as_inputs(inputs)]
        n = batches[0].shape[0]
    if len(batches) != len(graph.inputs):
        raise ModelLoadError(f"graph has {len(graph.inputs)} inputs, {len(batches)} given")
    m64 = _float64(module)
    expected: list[list[torch.Tensor]] = []
    with torch.no_grad():
        for i in range(n):
            expected.append(_module_outputs(m64(*(b[i] for b in batches))))
        values = evaluate_all(graph, dict(zip(graph.inputs, batches)))
    if any(len(e) != len(graph.outputs) for e in expected):
        raise ModelLoadError(f"module returns {len(expected[0])} tensors, graph has "
                             f"{len(graph.outputs)} outputs")
    diff, scale = 0.0, 0.0
    for j, out in enumerate(graph.outputs):
        got = values[out]
        got = got.expand(n, *got.shape[1:])
        want = torch.stack([e[j].to(torch.float64) for e in expected])
        if tuple(got.shape) != tuple(want.shape):
            raise ModelLoadError(f"output '{out}': graph gives shape {tuple(got.shape[1:])}, "
                                 f"module {tuple(want.shape[1:])}")
        if want.numel():
            diff = max(diff, float((got - want).abs().max()))
            scale = max(scale, float(want.abs().max()))
    if math.isnan(diff):
        diff = math.inf
    if tol is not None and diff > tol * max(1.0, scale):
        raise ModelLoadError(f"imported graph '{graph.name}' differs from the module by "
                             f"{diff:.3g} (output scale {scale:.3g})")
    return diff
