"""Quadratic forms rewritten as weighted squares of linear forms, for bounding.

A Lyapunov function ``V(u) = u^T P u`` reaches the IR as ``REDUCE_SUM(MUL(u, LINEAR(u;
P)))`` over the last axis (lsnc's ``lyapunov`` block).  Bounding the products ``u_i (P
u)_i`` one by one (McCormick) loses their coupling: over a box, the lower bound of a
positive-definite ``V`` falls far below its minimum (quadrotor2d_state_0, whole box:
-46.5 where ``V >= 0``).  Here, with ``S = (P + P^T) / 2`` and ``S ~ Q diag(lam) Q^T``
(``numpy.linalg.eigh``, rounded to float32 values)::

    u^T P u = sum_k lam_k (q_k^T u)^2 + sum_m u^T E_m u

Each square is a POW node of exponent 2, a convex function whose tangents and chords are
its linear relaxation, so a positive-definite ``V`` is bounded below by a tangent plane
(the same box: ``V >= 0``).  **Exactness:** ``u^T P u = u^T S u`` over the reals (the skew
part adds 0), and the remainder ``E = S - Q diag(lam) Q^T`` is computed in exact rational
arithmetic (``fractions``) and written as a short sum of matrices of float32 values
``E_1 + E_2 + ...`` whose sum is *exactly* ``E``.  The rewritten graph is therefore the same
function as the original over the reals; only the evaluation order differs, as with every
decomposition of :mod:`hybridver.ir.decompose`.  Every new weight is a float32 value, so
the bound engine's float32 copy of it is the weight itself (a remainder that would need a
float32 subnormal leaves the form as it was).  The remainder terms (entries near
``1e-7 |S|`` and below) stay products of two variables, with correspondingly tiny bounds.

Only forms of one vector are rewritten: a bilinear ``u^T P w`` written as ``((u+w)^T S
(u+w) - (u-w)^T S (u-w)) / 4`` bounded the lsnc decrease condition worse than McCormick
(a box of 10% of state_0's: -1.79 against -0.08, true minimum 0.40).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from hybridver.ir.builder import GraphBuilder
from hybridver.ir.graph import NetworkGraph, Node
from hybridver.ir.ops import OpKind

__all__ = ["exact_float_terms", "find_quadratic_forms", "rewrite_quadratic_forms"]

#: forms over longer vectors are left alone (the exact remainder costs ``n^3`` rationals)
MAX_DIM = 32
#: at most this many float64 matrices express a remainder exactly (a product of three
#: float64 numbers, summed over n terms, needs a few dozen mantissas at the very worst)
MAX_TERMS = 64


def exact_float_terms(matrix: list[list[Fraction]]) -> list[np.ndarray] | None:
    """Matrices of float32 values (stored as float64) whose sum is exactly ``matrix``
    (dyadic rationals), largest first; None when that would need a float32 subnormal or
    more than ``MAX_TERMS`` terms.  float32 values, so that the bound engine's float32
    copies of these weights are the weights themselves."""
    rest = [row[:] for row in matrix]
    terms: list[np.ndarray] = []
    while any(v != 0 for row in rest for v in row):
        if len(terms) == MAX_TERMS:
            return None
        term = np.array([[float(v) for v in row] for row in rest]).astype(np.float32)
        nonzero = np.abs(term[term != 0])
        if nonzero.size == 0 or nonzero.min() < np.finfo(np.float32).tiny:
            return None
        term = term.astype(np.float64)
        terms.append(term)
        rest = [[v - Fraction(float(t)) for v, t in zip(row, trow)]
                for row, trow in zip(rest, term)]
    return terms


def _fractions(a: np.ndarray) -> list[list[Fraction]]:
    return [[Fraction(float(v)) for v in row] for row in np.asarray(a, dtype=np.float64)]


def _square_decomposition(sym: list[list[Fraction]]
                          ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]] | None:
    """``sym`` (exact, symmetric ``n x n``) -> ``(Q^T (n, n), lam (n,), [E_m])``, every
    entry a float32 value, with ``sym = Q diag(lam) Q^T + sum E_m`` exactly; None when
    the remainder has no such expansion."""
    s = np.array([[float(v) for v in row] for row in sym])
    lam, q = np.linalg.eigh(s)
    q = q.astype(np.float32).astype(np.float64)
    lam = lam.astype(np.float32).astype(np.float64)
    qf, lf = _fractions(q), [Fraction(float(v)) for v in lam]
    n = len(sym)
    remainder = [[sym[i][j] - sum(qf[i][k] * lf[k] * qf[j][k] for k in range(n))
                  for j in range(n)] for i in range(n)]
    rests = exact_float_terms(remainder)
    return None if rests is None else (q.T.copy(), lam, rests)


def find_quadratic_forms(g: NetworkGraph) -> dict[str, tuple[str, np.ndarray]]:
    """REDUCE_SUM nodes that sum ``u * LINEAR(u; P)`` (no bias) over the last axis of a
    ``(1, n)`` vector: ``{reduce_sum name: (u, P (n, n))}``; the MUL and the LINEAR must
    have no other consumer (they are replaced)."""
    found = {}
    for node in g.nodes():
        if node.op is not OpKind.REDUCE_SUM or len(node.inputs) != 1:
            continue
        mul = g.node(node.inputs[0])
        if (mul.op is not OpKind.MUL or len(mul.shape) != 2 or mul.shape[0] != 1
                or mul.shape[1] > MAX_DIM):
            continue
        if tuple(node.attrs.get("axes") or ()) not in ((1,), (-1,)):
            continue
        if g.successors(mul.name) != [node.name] or mul.name in g.outputs:
            continue
        for u, lin in (mul.inputs, mul.inputs[::-1]):
            lnode = g.node(lin)
            if (lnode.op is OpKind.LINEAR and lnode.consts.get("bias") is None
                    and g.successors(lin) == [mul.name] and lin not in g.outputs
                    and g.node(u).shape == mul.shape == lnode.shape
                    and g.node(lnode.inputs[0]).shape == mul.shape):
                if lnode.inputs[0] == u:
                    found[node.name] = (u, np.asarray(lnode.consts["weight"]))
                break
    return found


def _quadratic(b: GraphBuilder, z: str, dec, base: str) -> str:
    """``z^T S z`` for ``z`` of shape ``(1, n)`` from ``dec = (Q^T, lam, [E_m])`` of ``S``:
    squares of the eigen-coordinates plus the exact remainders; shape ``(1, 1)``."""
    qt, lam, rests = dec
    n = qt.shape[0]
    proj = b.emit(OpKind.LINEAR, (z,), (1, n), base=f"{base}/eigenbasis",
                  consts={"weight": qt})
    two = b.constant(np.array(2.0), base=f"{base}/two")
    sq = b.emit(OpKind.POW, (proj, two), (1, n), base=f"{base}/squares")
    total = b.emit(OpKind.LINEAR, (sq,), (1, 1), base=f"{base}/weighted",
                   consts={"weight": lam[None, :]})
    for m, e in enumerate(rests):
        total = b.emit(OpKind.ADD, (total, _bilinear(b, z, z, e, f"{base}/rest{m}")), (1, 1),
                       base=f"{base}/with_rest{m}")
    return total


def _bilinear(b: GraphBuilder, u: str, w: str, k: np.ndarray, base: str) -> str:
    """``u^T k w`` as the products ``u * LINEAR(w; k)`` summed: shape ``(1, 1)``."""
    n = k.shape[0]
    kw = b.emit(OpKind.LINEAR, (w,), (1, n), base=base, consts={"weight": k})
    prod = b.emit(OpKind.MUL, (u, kw), (1, n), base=f"{base}_products")
    return b.emit(OpKind.REDUCE_SUM, (prod,), (1, 1), base=f"{base}_sum",
                  attrs={"axes": (1,), "keepdims": True})


def rewrite_quadratic_forms(g: NetworkGraph) -> NetworkGraph:
    """Every form :func:`find_quadratic_forms` finds, rewritten (module docstring)."""
    plans = {}
    for name, (u, p) in find_quadratic_forms(g).items():
        pf = _fractions(p)
        n = len(pf)
        dec = _square_decomposition([[(pf[i][j] + pf[j][i]) / 2 for j in range(n)]
                                     for i in range(n)])
        if dec is not None:  # u^T P u = u^T S u: the skew part of P adds 0
            plans[name] = (u, dec)
    if not plans:
        return g
    replaced = set()
    for name, (u, _) in plans.items():
        mul = g.node(g.node(name).inputs[0])
        replaced.add(mul.name)
        replaced.update(i for i in mul.inputs if i != u)  # the LINEAR(u; P)
    b = GraphBuilder(taken=g.topological_order)
    for node in g.nodes():
        if node.name in replaced:
            continue
        if node.name not in plans:
            b.add(node)
            continue
        u, dec = plans[node.name]
        result = _quadratic(b, u, dec, node.name)
        b.emit(OpKind.RESHAPE, (result,), node.shape, name=node.name)
    return g.with_nodes(b.nodes(), check_shapes=False)
