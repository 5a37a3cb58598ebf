"""Decompositions for the bound engine: ops without a direct relaxation become relaxable ones.

Every pass is a free function ``NetworkGraph -> NetworkGraph`` that preserves evaluation
(up to floating-point rounding), keeps input and output names, and gives the last node of
each rewrite the name of the node it replaces (so consumers and outputs are untouched).
Helper nodes are named ``<node>/<role>`` (made unique).  The rewrites use only linear data
movement (GATHER, SLICE, RESHAPE, EXPAND, CONCAT), SUB/ADD, REDUCE_SUM and the
nonlinearities that have relaxations (EXP, RECIPROCAL, RELU, MUL of two variables):

* :func:`decompose_softmax`: ``softmax(x)_i = 1 / (1 + sum_{j != i} exp(x_j - x_i))``.  The
  differences are formed explicitly (GATHER of ``x_j`` and of ``x_i`` over ``(n, n - 1)``
  index grids, then SUB), so ``x_i - x_i`` never appears and every bound method sees each
  difference as one linear expression; this is much tighter than bounding
  ``exp(x_i) / sum_j exp(x_j)`` as a quotient.
* :func:`decompose_max_pool`: an im2col GATHER of each window's *valid* positions (padding
  is ``-inf`` in ONNX, so it is never the max and is simply left out; windows with fewer
  valid positions repeat one, since ``max(a, a) = a``), then a pairwise tree of
  ``max(a, b) = a + relu(b - a)`` over the window axis.
* :func:`decompose_matmul_of_variables`: ``(A @ B)[.., i, j] = sum_t A[.., i, t] B[.., t, j]``
  as ``A -> (.., m, k, 1)`` and ``B -> (.., 1, k, n)``, an elementwise MUL broadcasting
  them to ``(*batch, m, k, n)``, and REDUCE_SUM over ``k``.  Only for MATMULs whose
  operands both depend on a graph input (a constant operand keeps the MATMUL linear).
* :func:`decompose_for_bounds`: all of them, after the quadratic forms of
  :mod:`hybridver.ir.quadratic`, then shape validation.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from hybridver.ir.builder import GraphBuilder
from hybridver.ir.graph import NetworkGraph, Node
from hybridver.ir.ops import OpKind
from hybridver.ir.quadratic import rewrite_quadratic_forms

__all__ = ["decompose_softmax", "decompose_max_pool", "decompose_matmul_of_variables",
           "decompose_for_bounds"]


Rewrite = Callable[[GraphBuilder, Node], bool]


def _run(g: NetworkGraph, rewrite: Rewrite) -> NetworkGraph:
    """Visit nodes in topological order; ``rewrite`` either emits a replacement (ending in
    a node with the same name) and returns True, or returns False to keep the node."""
    b = GraphBuilder(taken=g.topological_order)
    changed = False
    for node in g.nodes():
        if rewrite(b, node):
            changed = True
        else:
            b.add(node)
    return g.with_nodes(b.nodes(), check_shapes=False) if changed else g


def _reshape(b: GraphBuilder, src: str, shape: tuple[int, ...], base: str) -> str:
    """``src`` reshaped to ``shape`` (``src`` itself when it has that shape already)."""
    if b.shape(src) == tuple(shape):
        return src
    return b.emit(OpKind.RESHAPE, (src,), shape, base=base)


def _input_dependent(g: NetworkGraph) -> set[str]:
    dep: set[str] = set()
    for node in g.nodes():
        if node.op is OpKind.INPUT or any(i in dep for i in node.inputs):
            dep.add(node.name)
    return dep


# ---------------------------------------------------------------------------- softmax
def _softmax(b: GraphBuilder, node: Node) -> bool:
    if node.op is not OpKind.SOFTMAX:
        return False
    shape, axis, x = node.shape, int(node.attrs["axis"]), node.inputs[0]
    n = shape[axis]
    if n == 1:  # softmax over one element is 1
        b.constant(np.ones(shape), name=node.name)
        return True
    # row i lists j != i: others[i] = (0..n-1 without i), own[i] = (i, ..., i)
    others = np.array([[j for j in range(n) if j != i] for i in range(n)], dtype=np.int64)
    own = np.repeat(np.arange(n, dtype=np.int64)[:, None], n - 1, axis=1)
    grid = (*shape[:axis], n, n - 1, *shape[axis + 1:])
    xj = b.emit(OpKind.GATHER, (x,), grid, base=f"{node.name}/others", attrs={"axis": axis},
                consts={"indices": others})
    xi = b.emit(OpKind.GATHER, (x,), grid, base=f"{node.name}/own", attrs={"axis": axis},
                consts={"indices": own})
    diff = b.emit(OpKind.SUB, (xj, xi), grid, base=f"{node.name}/diff")
    e = b.emit(OpKind.EXP, (diff,), grid, base=f"{node.name}/exp")
    total = b.emit(OpKind.REDUCE_SUM, (e,), shape, base=f"{node.name}/sum",
                   attrs={"axes": (axis + 1,), "keepdims": False})
    one = b.constant(np.array(1.0), base=f"{node.name}/one")
    denom = b.emit(OpKind.ADD, (total, one), shape, base=f"{node.name}/denominator")
    b.emit(OpKind.RECIPROCAL, (denom,), shape, name=node.name)
    return True


def decompose_softmax(g: NetworkGraph) -> NetworkGraph:
    """SOFTMAX over any axis -> GATHER, GATHER, SUB, EXP, REDUCE_SUM, ADD 1, RECIPROCAL.

    ``x: (*pre, n, *post)`` gives differences ``(*pre, n, n - 1, *post)`` (``[.., i, jj, ..] =
    x_j - x_i`` over ``j != i``), summed back to ``(*pre, n, *post)``.
    """
    return _run(g, _softmax)


# ---------------------------------------------------------------------------- max pool
def _window_indices(node: Node, in_spatial: tuple[int, ...], out_spatial: tuple[int, ...]
                    ) -> np.ndarray | None:
    """``(Q, K)`` flat input indices of each output position's valid window positions."""
    kernel = tuple(int(k) for k in node.attrs["kernel_shape"])
    s = len(kernel)
    strides = tuple(int(v) for v in node.attrs["strides"])
    begin = tuple(int(v) for v in node.attrs["pads"])[:s]
    dilations = tuple(int(v) for v in node.attrs.get("dilations", (1,) * s))
    rows = []
    for out in itertools.product(*(range(o) for o in out_spatial)):
        flat = []
        for offset in itertools.product(*(range(k) for k in kernel)):
            pos = [out[i] * strides[i] - begin[i] + offset[i] * dilations[i] for i in range(s)]
            if all(0 <= p < n for p, n in zip(pos, in_spatial)):
                flat.append(int(np.ravel_multi_index(pos, in_spatial)))
        if not flat:
            return None  # a window of padding only: its max would be -inf
        rows.append(flat)
    width = max(len(r) for r in rows)
    return np.array([r + [r[0]] * (width - len(r)) for r in rows], dtype=np.int64)


def _max_pool(b: GraphBuilder, node: Node) -> bool:
    if node.op is not OpKind.MAX_POOL:
        return False
    s = len(node.attrs["kernel_shape"])
    in_shape = b.shape(node.inputs[0])
    lead, in_spatial, out_spatial = in_shape[:-s], in_shape[-s:], node.shape[-s:]
    if node.shape[:-s] != lead:
        return False
    idx = _window_indices(node, in_spatial, out_spatial)
    if idx is None:
        return False
    q, k = idx.shape
    axis = len(lead)
    flat = _reshape(b, node.inputs[0], (*lead, int(np.prod(in_spatial))), f"{node.name}/flat")
    cur = b.emit(OpKind.GATHER, (flat,), (*lead, q, k), base=f"{node.name}/windows",
                 attrs={"axis": axis}, consts={"indices": idx})

    def part(src: str, start: int, end: int, role: str) -> str:
        return b.emit(OpKind.SLICE, (src,), (*lead, q, end - start),
                      base=f"{node.name}/{role}",
                      attrs={"starts": (start,), "ends": (end,), "axes": (axis + 1,),
                             "steps": (1,)})

    while k > 1:  # max(a, b) = a + relu(b - a), pairwise over the window axis
        h = k // 2
        a, c = part(cur, 0, h, "a"), part(cur, h, 2 * h, "b")
        d = b.emit(OpKind.SUB, (c, a), (*lead, q, h), base=f"{node.name}/b_minus_a")
        r = b.emit(OpKind.RELU, (d,), (*lead, q, h), base=f"{node.name}/relu")
        m = b.emit(OpKind.ADD, (a, r), (*lead, q, h), base=f"{node.name}/max")
        if k % 2:
            rest = part(cur, 2 * h, k, "rest")
            m = b.emit(OpKind.CONCAT, (m, rest), (*lead, q, h + 1),
                       base=f"{node.name}/carry", attrs={"axis": axis + 1})
        cur, k = m, h + k % 2
    b.emit(OpKind.RESHAPE, (cur,), node.shape, name=node.name)
    return True


def decompose_max_pool(g: NetworkGraph) -> NetworkGraph:
    """MAX_POOL (any pads, strides, dilations, ceil_mode) -> im2col GATHER + relu tree.

    ``x: (*lead, *spatial)`` is flattened to ``(*lead, P)``, gathered to ``(*lead, Q, K)``
    (``Q`` output positions, ``K`` valid positions per window at most), reduced pairwise to
    ``(*lead, Q, 1)`` and reshaped to the pool's output shape.  A pool with a window made
    only of padding (its value would be ``-inf``) is left as it is.
    """
    return _run(g, _max_pool)


# ---------------------------------------------------------------------------- matmul
def _matmul(b: GraphBuilder, node: Node, dependent: set[str], broadcast: bool) -> bool:
    if node.op is not OpKind.MATMUL or not all(i in dependent for i in node.inputs):
        return False
    a_name, b_name = node.inputs
    sa, sb = b.shape(a_name), b.shape(b_name)
    a2 = (1, *sa) if len(sa) == 1 else sa
    b2 = (*sb, 1) if len(sb) == 1 else sb
    (m, k), (k2, n) = a2[-2:], b2[-2:]
    if k != k2:
        return False
    batch = tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))
    full = (*batch, m, k, n)
    ar = _reshape(b, a_name, (*a2[:-2], m, k, 1), f"{node.name}/lhs")
    br = _reshape(b, b_name, (*b2[:-2], 1, k, n), f"{node.name}/rhs")
    if not broadcast and b.shape(ar) != full:
        ar = b.emit(OpKind.EXPAND, (ar,), full, base=f"{node.name}/lhs_expanded")
    if not broadcast and b.shape(br) != full:
        br = b.emit(OpKind.EXPAND, (br,), full, base=f"{node.name}/rhs_expanded")
    prod = b.emit(OpKind.MUL, (ar, br), full, base=f"{node.name}/products")
    out = (*batch, m, n)
    if out == node.shape:
        b.emit(OpKind.REDUCE_SUM, (prod,), out, name=node.name,
               attrs={"axes": (len(full) - 2,), "keepdims": False})
    else:  # 1-D operands: drop the unit axis numpy's matmul removes
        total = b.emit(OpKind.REDUCE_SUM, (prod,), out, base=f"{node.name}/sum",
                       attrs={"axes": (len(full) - 2,), "keepdims": False})
        b.emit(OpKind.RESHAPE, (total,), node.shape, name=node.name)
    return True


def decompose_matmul_of_variables(g: NetworkGraph, broadcast: bool = True) -> NetworkGraph:
    """MATMUL of two input-dependent operands -> RESHAPE, MUL, REDUCE_SUM.

    ``A: (*ba, m, k)``, ``B: (*bb, k, n)`` (1-D operands as numpy: ``(k,)`` is ``(1, k)`` on
    the left and ``(k, 1)`` on the right) give products ``(*batch, m, k, n)`` with
    ``batch = broadcast(ba, bb)``, summed over ``k``.  ``broadcast``: the MUL takes
    ``(*ba, m, k, 1)`` and ``(*bb, 1, k, n)`` and broadcasts them itself, so the operands
    whose intervals the bound engine needs have ``m k`` and ``k n`` entries (one
    backward row each), not ``m k n`` each; False: both are EXPANDed to the full shape
    first (the same bounds at ``n`` and ``m`` times the rows; for ablation).
    """
    dependent = _input_dependent(g)
    return _run(g, lambda b, node: _matmul(b, node, dependent, broadcast))


# ---------------------------------------------------------------------------- all
DECOMPOSITIONS = (decompose_softmax, decompose_max_pool, decompose_matmul_of_variables)


def decompose_for_bounds(g: NetworkGraph, broadcast_products: bool = True,
                         quadratic_forms: bool = True) -> NetworkGraph:
    """All decompositions, then a graph validated with ``check_shapes=True``
    (``broadcast_products``: :func:`decompose_matmul_of_variables`'s ``broadcast``;
    ``quadratic_forms``: first :func:`hybridver.ir.quadratic.rewrite_quadratic_forms`)."""
    if quadratic_forms:
        g = rewrite_quadratic_forms(g)
    g = decompose_softmax(g)
    g = decompose_max_pool(g)
    g = decompose_matmul_of_variables(g, broadcast_products)
    return NetworkGraph(g.nodes(), g.inputs, g.outputs, name=g.name, check_shapes=True)
