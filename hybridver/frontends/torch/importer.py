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

Modules: ``context`` (conversion state, helpers), ``tables`` (which converter handles which
fx node), one module per op family (``activations``, ``arithmetic``, ``shape_ops``,
``layers``), and this driver.
"""

from __future__ import annotations

import builtins
import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn
from torch.fx.passes.shape_prop import ShapeProp

from hybridver.errors import ModelLoadError, UnsupportedOpError
from hybridver.frontends.torch.context import (BAD, Meta, TorchContext, Unsupported, Var,
                                               leaves, map_values, qualname)
from hybridver.frontends.torch.tables import CONVERTERS, METHOD_KEYS, MODULES, function_key
from hybridver.ir.evaluate import evaluate_all
from hybridver.ir.graph import NetworkGraph
from hybridver.ir.node import Node
from hybridver.ir.ops import OpKind

__all__ = ["from_torch", "check_against_module"]


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


class _Recorder(ShapeProp):
    """ShapeProp that also keeps static values and the shapes of dynamic results."""

    def __init__(self, gm: fx.GraphModule, dynamic: Mapping[fx.Node, bool]):
        super().__init__(gm)
        self.dynamic = dynamic
        self.values: dict[fx.Node, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if self.dynamic.get(n, False):
            self.values[n] = map_values(
                result, lambda v: Meta(tuple(v.shape), v.dtype) if isinstance(v, torch.Tensor)
                else v)
        else:
            self.values[n] = result
        return result


class _Converter(TorchContext):
    """The conversion loop over the traced graph (node building is in TorchContext)."""

    # ------------------------------------------------------------ main loop
    def run(self) -> None:
        order = {n: i for i, n in enumerate(self.gm.graph.nodes)}
        for n in self.gm.graph.nodes:
            self.current = n
            if n.op == "placeholder":
                meta = self.values.get(n)
                if isinstance(meta, Meta):
                    self.env[n] = self.add(Node(n.name, OpKind.INPUT, shape=meta.shape))
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
            if any(v is BAD for v in leaves((args, kwargs))):
                # downstream of an unsupported node: still report ops unknown in themselves
                if not self._known(n, args):
                    self.unsupported.append((self._describe(n), n.name))
                self.env[n] = BAD
                continue
            try:
                self._check_inplace(n, order)
                self.env[n] = self._convert(n, args, kwargs)
            except Unsupported as exc:
                self.unsupported.append((str(exc), n.name))
                self.env[n] = BAD

    def _outputs(self, n: fx.Node) -> None:
        value = fx.node.map_arg(n.args[0], lambda a: self.env[a])
        for leaf in leaves(value):
            if leaf is BAD:
                continue
            if isinstance(leaf, Var):
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
            raise Unsupported(f"in-place {self._describe(n)} whose operand '{src.name}' is "
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
            return qualname(n.target)
        return f"{n.op} {n.target}"

    def _known(self, n: fx.Node, args: tuple) -> bool:
        if n.op == "call_module":
            mod = self.gm.get_submodule(n.target)
            return any(isinstance(mod, cls) for cls, _ in MODULES)
        if n.op == "call_function":
            if n.target is builtins.getattr:
                return args[1] in ("T", "mT", "data")
            return function_key(n.target) in CONVERTERS
        if n.op == "call_method":
            return METHOD_KEYS.get(n.target) in CONVERTERS
        return False

    def _convert(self, n: fx.Node, args: tuple, kwargs: dict) -> Any:
        if n.op == "call_module":
            mod = self.gm.get_submodule(n.target)
            for cls, fn in MODULES:
                if isinstance(mod, cls):
                    return fn(self, mod, args, kwargs)
            raise Unsupported(self._describe(n))
        if n.op == "call_function":
            key = function_key(n.target)
            if n.target is builtins.getattr:
                key = {"T": "T", "mT": "mT", "data": "alias"}.get(args[1])
                if key is None:
                    raise Unsupported(f"attribute Tensor.{args[1]}")
                args = args[:1]
        elif n.op == "call_method":
            key = METHOD_KEYS.get(n.target)
        else:
            key = None
        if key is None or key not in CONVERTERS:
            raise Unsupported(self._describe(n))
        self.current_key = key
        return CONVERTERS[key](self, args, kwargs)


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
    draft = NetworkGraph(conv.builder.nodes(), conv.inputs, conv.outputs, name=graph_name,
                         check_shapes=False)
    graph = draft.with_nodes(draft.nodes(), check_shapes=True)
    if check:
        check_against_module(graph, module, examples if len(examples) > 1 else examples[0],
                             n=4, tol=1e-6)
    return graph


def _module_outputs(out: Any) -> list[torch.Tensor]:
    return [leaf for leaf in leaves(out) if isinstance(leaf, torch.Tensor)]


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
