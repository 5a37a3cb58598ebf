"""A network as affine expressions over solver variables: the common core of the MILP and
SMT encoders.

Variables are the flattened network input and one variable per output element of every
nonlinear node.  Every other node's flattened output is an :class:`Affine` expression
``A @ v + b`` over those variables (``A``: sparse ``(node.size, n_vars)``).  Linear ops
compose into the expressions; a nonlinear node becomes a :class:`NonlinearSite` tying its
output variables to the expressions of its operands, so each encoder only decides how to
write ``out = f(pre)`` for each op it supports.

Coefficients: a LINEAR node applied to variables (the usual case: a layer after an
activation) gets exactly the model's weights; data movement copies coefficients; other
linear ops are evaluated in float64 on unit vectors without their bias (exact for
convolutions of unit vectors, rounded for composed or folded operations).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp
import torch

from hybridver.ir.evaluate import EVALUATORS
from hybridver.ir.graph import NetworkGraph, Node
from hybridver.ir.ops import ELEMENTWISE_NONLINEAR, OpKind

#: Ops that only move, copy or select values (their matrix is a 0/1 selection).
DATA_MOVEMENT = frozenset({OpKind.RESHAPE, OpKind.TRANSPOSE, OpKind.SLICE, OpKind.GATHER,
                           OpKind.CONCAT, OpKind.PAD, OpKind.EXPAND, OpKind.UPSAMPLE,
                           OpKind.IDENTITY})
#: Ops linear in their single variable operand (weights/constants inside the node).
LINEAR_UNARY = frozenset({OpKind.LINEAR, OpKind.CONV, OpKind.CONV_TRANSPOSE,
                          OpKind.BATCH_NORM, OpKind.REDUCE_SUM, OpKind.REDUCE_MEAN,
                          OpKind.AVERAGE_POOL, OpKind.GLOBAL_AVERAGE_POOL})


class NotEncodableError(Exception):
    """The graph contains an op the affine form cannot express (the caller reports it)."""


@dataclasses.dataclass(frozen=True)
class Affine:
    """``A @ v + b``: ``A`` sparse CSR ``(k, n_vars)``, ``b`` ``(k,)`` float64."""

    A: sp.csr_array
    b: np.ndarray

    @property
    def size(self) -> int:
        return self.b.size

    @property
    def is_constant(self) -> bool:
        return self.A.nnz == 0

    def rows(self, index: np.ndarray) -> "Affine":
        return Affine(sp.csr_array(self.A[index]), self.b[index])

    def widen(self, n_vars: int) -> "Affine":
        """The same expression over a longer variable vector."""
        A = self.A.tocoo()
        return Affine(sp.csr_array((A.data, (A.row, A.col)), shape=(self.size, n_vars)), self.b)


@dataclasses.dataclass(frozen=True)
class NonlinearSite:
    """``outputs = f(operands)`` elementwise for one nonlinear node.

    ``operands``: one :class:`Affine` per variable operand (``(k,)`` rows each; MUL/DIV of
    two variables have two); ``outputs``: variable indices ``(k,)``; ``attrs``: the node's
    attributes (for POW plus ``"exponent"``); ``operand_bounds``: ``(lower, upper)`` per
    operand, flattened, sound on the region (from the subproblem or interval bounds).
    """

    node: str
    op: OpKind
    attrs: Mapping
    operands: tuple[Affine, ...]
    outputs: np.ndarray
    operand_bounds: tuple[tuple[np.ndarray, np.ndarray], ...]


@dataclasses.dataclass(frozen=True)
class NetworkForm:
    """The whole network over ``n_vars`` variables.

    ``var_lower``/``var_upper``: ``(n_vars,)`` sound bounds (input box for input variables,
    interval bounds of the node outputs for the others); ``input_vars``: ``(n_in,)``;
    ``sites`` in topological order; ``output``: the flattened network output.
    """

    n_vars: int
    var_lower: np.ndarray
    var_upper: np.ndarray
    input_vars: np.ndarray
    sites: tuple[NonlinearSite, ...]
    output: Affine
    var_names: tuple[str, ...]


def _selection_rows(node: Node, operand_sizes: list[int], operand_shapes: list[tuple]):
    """For a data-movement node: for each output element, the (operand, index) it copies,
    or (-1, -1) for a constant (padding).  Traced by running the op on index tensors."""
    offsets = np.cumsum([0] + operand_sizes)
    args = [torch.arange(offsets[i] + 1, offsets[i + 1] + 1, dtype=torch.float64)
            .reshape(1, *shape) for i, shape in enumerate(operand_shapes)]
    traced = EVALUATORS[node.op](node, args).reshape(-1).numpy()
    zeros = [torch.zeros((1, *shape), dtype=torch.float64) for shape in operand_shapes]
    base = EVALUATORS[node.op](node, zeros).reshape(-1).numpy()
    flat = np.rint(traced - base).astype(np.int64) - 1   # -1: not from any operand
    operand = np.searchsorted(offsets, flat, side="right") - 1
    operand[flat < 0] = -1
    index = np.where(flat >= 0, flat - offsets[np.clip(operand, 0, None)], -1)
    return operand, index


def _broadcast_index(shape_from: tuple, shape_to: tuple) -> np.ndarray:
    """Flat source index of each element of ``shape_to`` when ``shape_from`` broadcasts to it
    (numpy rule, right-aligned)."""
    src = np.arange(int(np.prod(shape_from, dtype=np.int64))).reshape(shape_from)
    return np.broadcast_to(src.reshape((1,) * (len(shape_to) - len(shape_from)) + shape_from),
                           shape_to).reshape(-1)


def _linear_matrix(node: Node, in_shape: tuple) -> tuple[sp.csr_array, np.ndarray]:
    """The matrix ``M`` ``(out, in)`` of a LINEAR_UNARY op without its bias and the op's value
    at zero (its bias), by evaluating unit vectors in float64."""
    size = int(np.prod(in_shape, dtype=np.int64))
    if node.op is OpKind.LINEAR and len(in_shape) >= 1 and size == in_shape[-1]:
        W = np.asarray(node.consts["weight"], dtype=np.float64)
        bias = np.asarray(node.consts.get("bias", np.zeros(W.shape[0])), dtype=np.float64)
        return sp.csr_array(W), bias.reshape(-1).copy()
    no_bias = node.replace(consts={k: v for k, v in node.consts.items() if k != "bias"})
    if node.op is OpKind.BATCH_NORM:  # affine per channel: isolate the shift
        no_bias = node
    eye = torch.eye(size, dtype=torch.float64).reshape(size, *in_shape)
    zero = torch.zeros((1, *in_shape), dtype=torch.float64)
    with torch.no_grad():
        at_zero = EVALUATORS[node.op](node, [zero]).reshape(-1).numpy()
        cols = EVALUATORS[node.op](no_bias, [eye]).reshape(size, -1).numpy()
        if node.op is OpKind.BATCH_NORM:
            cols = cols - at_zero[None, :]
    M = sp.csr_array(cols.T)
    M.eliminate_zeros()
    return M, at_zero


def build_network_form(graph: NetworkGraph, input_lower: np.ndarray, input_upper: np.ndarray,
                       node_bounds: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> NetworkForm:
    """Express ``graph`` over variables.  ``node_bounds`` must hold flattened sound bounds for
    every nonlinear node and for each of its variable operands (use
    :func:`hybridver.bounds.interval_bounds` when nothing better is known)."""
    n_in = graph.input_node.size
    exprs: dict[str, Affine] = {}
    lower = [np.asarray(input_lower, dtype=np.float64).reshape(-1)]
    upper = [np.asarray(input_upper, dtype=np.float64).reshape(-1)]
    names = [f"x{i}" for i in range(n_in)]
    n_vars = n_in
    sites: list[NonlinearSite] = []
    exprs[graph.input_node.name] = Affine(sp.csr_array(sp.identity(n_in, format="csr")),
                                          np.zeros(n_in))
    for name in graph.topological_order:
        node = graph.node(name)
        if node.op is OpKind.INPUT:
            continue
        ops = [exprs[i].widen(n_vars) if exprs[i].A.shape[1] != n_vars else exprs[i]
               for i in node.inputs]
        shapes = [graph.node(i).shape for i in node.inputs]
        size = node.size
        if node.op is OpKind.CONSTANT:
            value = np.asarray(node.consts["value"], dtype=np.float64).reshape(-1)
            exprs[name] = Affine(sp.csr_array((value.size, n_vars)), value)
        elif node.op in DATA_MOVEMENT:
            operand, index = _selection_rows(node, [e.size for e in ops], shapes)
            zeros = [torch.as_tensor(e.b).reshape(1, *s) for e, s in zip(ops, shapes)]
            b = EVALUATORS[node.op](node, zeros).reshape(-1).numpy().astype(np.float64)
            blocks = []
            for k, expr in enumerate(ops):
                pick = np.where(operand == k)[0]
                sel = sp.csr_array((np.ones(pick.size), (pick, index[pick])),
                                   shape=(size, expr.size))
                blocks.append(sel @ expr.A)
            A = blocks[0]
            for block in blocks[1:]:
                A = A + block
            exprs[name] = Affine(sp.csr_array(A), b)
        elif node.op in (OpKind.ADD, OpKind.SUB):
            a, c = (e.rows(_broadcast_index(s, node.shape)) for e, s in zip(ops, shapes))
            sign = 1.0 if node.op is OpKind.ADD else -1.0
            exprs[name] = Affine(sp.csr_array(a.A + sign * c.A), a.b + sign * c.b)
        elif node.op is OpKind.NEG:
            exprs[name] = Affine(-ops[0].A, -ops[0].b)
        elif node.op in (OpKind.MUL, OpKind.DIV) and ops[1].is_constant:
            a, c = (e.rows(_broadcast_index(s, node.shape)) for e, s in zip(ops, shapes))
            factor = c.b if node.op is OpKind.MUL else 1.0 / c.b
            exprs[name] = Affine(sp.csr_array(sp.diags_array(factor) @ a.A), a.b * factor)
        elif node.op is OpKind.MUL and ops[0].is_constant:
            a, c = (e.rows(_broadcast_index(s, node.shape)) for e, s in zip(ops, shapes))
            exprs[name] = Affine(sp.csr_array(sp.diags_array(a.b) @ c.A), a.b * c.b)
        elif node.op in LINEAR_UNARY:
            M, at_zero = _linear_matrix(node, shapes[0])
            exprs[name] = Affine(sp.csr_array(M @ ops[0].A), M @ ops[0].b + at_zero)
        elif node.op is OpKind.MATMUL and sum(not e.is_constant for e in ops) == 1:
            # a product with a constant matrix: linear in the variable operand; its matrix
            # comes from evaluating unit vectors with the constant operand fixed
            var = 0 if not ops[0].is_constant else 1
            k = ops[var].size
            args = [torch.as_tensor(e.b).reshape(1, *s) for e, s in zip(ops, shapes)]
            unit = list(args)
            unit[var] = torch.eye(k, dtype=torch.float64).reshape(k, *shapes[var])
            cols = EVALUATORS[OpKind.MATMUL](node, unit).reshape(k, -1).numpy()
            b = EVALUATORS[OpKind.MATMUL](node, args).reshape(-1).numpy()
            exprs[name] = Affine(sp.csr_array(sp.csr_array(cols.T) @ ops[var].A), b)
        elif all(e.is_constant for e in ops):
            vals = [torch.as_tensor(e.b).reshape(1, *s) for e, s in zip(ops, shapes)]
            value = EVALUATORS[node.op](node, vals).reshape(-1).numpy().astype(np.float64)
            exprs[name] = Affine(sp.csr_array((size, n_vars)), value)
        else:
            attrs = dict(node.attrs)
            if node.op is OpKind.POW:
                if not ops[1].is_constant or ops[1].size != 1:
                    raise NotEncodableError(f"Pow '{name}' with a variable exponent")
                attrs["exponent"] = float(ops[1].b[0])
                operand_exprs = (ops[0].rows(_broadcast_index(shapes[0], node.shape)),)
                operand_names = [node.inputs[0]]
            elif node.op in (OpKind.MUL, OpKind.DIV):
                operand_exprs = tuple(e.rows(_broadcast_index(s, node.shape))
                                      for e, s in zip(ops, shapes))
                operand_names = list(node.inputs)
            elif node.op in ELEMENTWISE_NONLINEAR and len(node.inputs) == 1:
                operand_exprs = (ops[0],)
                operand_names = [node.inputs[0]]
            else:
                raise NotEncodableError(
                    f"{node.op.value} node '{name}' cannot be encoded (max-pool and softmax "
                    "must be rewritten into elementwise ops first)")
            bounds = []
            for operand_name, expr, shape in zip(operand_names, operand_exprs, shapes):
                bounds.append(_operand_bounds(operand_name, expr, node, shape, node_bounds,
                                              graph))
            if name not in node_bounds:
                raise NotEncodableError(f"no bounds given for nonlinear node '{name}'")
            out_lo, out_hi = (np.asarray(v, dtype=np.float64).reshape(-1)
                              for v in node_bounds[name])
            out_vars = np.arange(n_vars, n_vars + size)
            n_vars += size
            lower.append(out_lo)
            upper.append(out_hi)
            names.extend(f"{name}[{i}]" for i in range(size))
            sites.append(NonlinearSite(name, node.op, attrs, operand_exprs, out_vars,
                                       tuple(bounds)))
            exprs[name] = Affine(sp.csr_array((np.ones(size), (np.arange(size), out_vars)),
                                              shape=(size, n_vars)), np.zeros(size))
    out = exprs[graph.output_node.name]
    sites = [dataclasses.replace(s, operands=tuple(e.widen(n_vars) for e in s.operands))
             for s in sites]
    return NetworkForm(n_vars, np.concatenate(lower), np.concatenate(upper),
                       np.arange(n_in), tuple(sites), out.widen(n_vars), tuple(names))


def _operand_bounds(operand: str, expr: Affine, node: Node, shape: tuple, node_bounds, graph
                    ) -> tuple[np.ndarray, np.ndarray]:
    if operand not in node_bounds:
        raise NotEncodableError(f"no bounds given for '{operand}', input of '{node.name}'")
    lo, hi = (np.asarray(v, dtype=np.float64).reshape(-1) for v in node_bounds[operand])
    index = _broadcast_index(graph.node(operand).shape, node.shape)
    return lo[index], hi[index]


def interval_node_bounds(graph: NetworkGraph, input_lower: np.ndarray, input_upper: np.ndarray
                         ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Flattened interval bounds of every node (the fallback when no tighter bounds exist)."""
    from hybridver.bounds.intervals import interval_bounds

    values = interval_bounds(graph, np.asarray(input_lower)[None], np.asarray(input_upper)[None])
    return {name: (v.lower[0].reshape(-1).numpy(), v.upper[0].reshape(-1).numpy())
            for name, v in values.items()}
