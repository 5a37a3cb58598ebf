"""A subproblem as an SMT formula over the reals (QF_LRA), for z3 or any SMT-LIB2 solver.

One encoding, two outlets: :func:`smt_script` writes the formula as SMT-LIB2 text (pure
Python, no solver import); :func:`to_smt2` is that text with ``(check-sat)`` for external
solvers, and :func:`hybridver.backends.z3_backend.encode_smt` parses the very same text into
z3, so what is exported is exactly what the z3 back end decides.

Exactness: every coefficient (the IR's float64 weights and biases, the box, the spec's
``C``/``d``, the node bounds) is written as the rational it denotes
(``fractions.Fraction(float)`` is exact), so for networks of ReLU, LeakyReLU, Abs and
MaxPool the formula is satisfiable iff the real-arithmetic network with the IR's weights
has a counterexample in the subproblem (given that ``node_bounds`` are sound).

Nonlinear sites (see :mod:`hybridver.encode.affine_form`), with ``z`` the operand and ``y``
the output of one element:

* ReLU-like ``y = z`` for ``z >= 0``, ``y = a z`` for ``z <= 0`` (ReLU ``a = 0``, LeakyReLU
  ``a = alpha``, Abs ``a = -1``): linear when stable or split; otherwise, for ``a <= 1``
  (convex) ``y >= z, y >= a z, (y = z or y = a z)`` plus the chord through ``(l, a l)`` and
  ``(u, u)`` as an upper bound (the "triangle", a redundant lemma that helps z3); for
  ``a > 1`` the mirror image.
* MaxPool: rewritten first as pairwise maxima ``max(a, b) = a + relu(b - a)`` (exact; the
  rewrite is shared with the MILP encoding), so it becomes ReLUs.
* Smooth ops (sigmoid, tanh, exp, products of two variables...): the interval bounds plus
  a few linear cuts from the relaxation registry (several ``alpha``), widened outward by
  ``1e-12`` relative to cover float64 rounding in their computation and dropped if sampling
  shows them violated (:mod:`hybridver.encode.envelopes`, shared with the MILP encoding).
  The formula is then a sound over-approximation: unsat is a proof, a model is only a
  candidate.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np

from hybridver.encode.affine_form import (Affine, NetworkForm, NonlinearSite, NotEncodableError,
                                          build_network_form, interval_node_bounds)
from hybridver.ir.ops import OpKind
from hybridver.problem import Subproblem
from hybridver.relaxations.base import kink_slope

#: Cuts per smooth element and side: the relaxation's default plus this many alphas.
ENVELOPE_PIECES = 5
#: Relative precision of the outward-rounded bounds written into the (redundant) lemmas:
#: 8 bits loosen them by <= 1% of their magnitude and roughly halve z3's time per pivot
#: against 24 bits (large rationals in the tableau dominate its run time).
BOUND_BITS = 8


# --------------------------------------------------------------------------- text helpers

def rational(value: float | Fraction) -> Fraction:
    """The exact rational value of a finite float (raises on inf/nan)."""
    if isinstance(value, Fraction):
        return value
    v = float(value)
    if not math.isfinite(v):
        raise NotEncodableError(f"non-finite coefficient {v!r}")
    return Fraction(v)


def smt_number(value: float | Fraction) -> str:
    """An SMT-LIB2 Real literal denoting exactly ``value``: ``3.0``, ``(/ 1.0 8.0)``,
    ``(- (/ 3.0 4.0))``."""
    q = rational(value)
    n, d = abs(q.numerator), q.denominator
    text = f"{n}.0" if d == 1 else f"(/ {n}.0 {d}.0)"
    return f"(- {text})" if q < 0 else text


def smt_linear(terms: list[tuple[Fraction, str]], const: Fraction = Fraction(0)) -> str:
    """``sum c_i * v_i + const`` as an SMT-LIB2 term (zero coefficients dropped)."""
    parts = []
    for c, name in terms:
        if c == 0:
            continue
        parts.append(name if c == 1 else f"(- {name})" if c == -1
                     else f"(* {smt_number(c)} {name})")
    if const != 0 or not parts:
        parts.append(smt_number(const))
    return parts[0] if len(parts) == 1 else f"(+ {' '.join(parts)})"


def outward(lower: float, upper: float, bits: int = BOUND_BITS) -> tuple[Fraction, Fraction]:
    """``[lower, upper]`` widened to the grid of step ``2**(e - bits)``, ``2**e`` the
    magnitude of the larger end: contains the interval, has short numerators/denominators
    (bounds from float computations are otherwise ~100-bit rationals that slow z3)."""
    scale = max(abs(lower), abs(upper))
    if scale == 0.0:
        return Fraction(0), Fraction(0)
    step = Fraction(2) ** (math.frexp(scale)[1] - bits)
    return (math.floor(rational(lower) / step) * step, math.ceil(rational(upper) / step) * step)


@dataclasses.dataclass(frozen=True)
class SmtScript:
    """The formula as SMT-LIB2 text pieces.

    ``declarations``: names of Real constants; ``assertions``: Bool terms; ``inputs``
    ``(n_in,)`` and ``outputs`` ``(n_out,)``: names of the network input / output variables;
    ``exact``: True when no envelope was used (then a model is an exact witness for the
    real-arithmetic network); ``n_unstable``: disjunctions (unstable ReLU-like neurons,
    including those of rewritten max-pools); ``notes``: comment lines (variable map).
    """

    declarations: tuple[str, ...]
    assertions: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    exact: bool
    n_unstable: int
    notes: tuple[str, ...] = ()

    def body(self) -> str:
        """Declarations and assertions only (what ``z3_backend.encode_smt`` parses)."""
        lines = [f"(declare-fun {name} () Real)" for name in self.declarations]
        lines += [f"(assert {term})" for term in self.assertions]
        return "\n".join(lines) + "\n"

    def text(self, get_values: bool = False) -> str:
        """A complete SMT-LIB2 script: logic, declarations, assertions, ``(check-sat)`` and
        optionally ``(get-value ...)`` of the input variables (an error for solvers when
        the answer is unsat, hence off by default)."""
        status = "exact" if self.exact else "over-approximation (smooth envelopes)"
        head = [f"; hybridver SMT encoding: {status}; {self.n_unstable} disjunctions",
                "; sat: a model is a counterexample (inputs x_i, network outputs y_j); "
                "unsat: none exists",
                *(f"; {note}" for note in self.notes),
                "(set-info :smt-lib-version 2.6)",
                "(set-logic QF_LRA)"]
        if get_values:
            head.append("(set-option :produce-models true)")
        tail = ["(check-sat)"]
        if get_values and self.inputs:
            tail.append(f"(get-value ({' '.join(self.inputs)}))")
        tail.append("(exit)")
        return "\n".join(head) + "\n" + self.body() + "\n".join(tail) + "\n"


class _Writer:
    """Collects declarations and assertions while the sites are encoded."""

    def __init__(self, form: NetworkForm):
        n_in = form.input_vars.size
        self.names = [f"x_{i}" if i < n_in else f"a_{i - n_in}" for i in range(form.n_vars)]
        self.declarations: list[str] = list(self.names)
        self.assertions: list[str] = []
        self.n_aux = 0

    def fresh(self, prefix: str) -> str:
        name = f"{prefix}_{self.n_aux}"
        self.n_aux += 1
        self.declarations.append(name)
        return name

    def add(self, term: str) -> None:
        self.assertions.append(term)

    def row_terms(self, expr: Affine, row: int) -> tuple[list[tuple[Fraction, str]], Fraction]:
        A = expr.A
        lo, hi = A.indptr[row], A.indptr[row + 1]
        terms = [(rational(c), self.names[j]) for j, c in zip(A.indices[lo:hi], A.data[lo:hi])
                 if c != 0.0]
        return terms, rational(expr.b[row])

    def operand(self, expr: Affine, row: int) -> str:
        """A name for row ``row`` of ``expr``: an existing variable when the row is one,
        else a fresh ``z_k`` tied to the expression."""
        terms, const = self.row_terms(expr, row)
        if const == 0 and len(terms) == 1 and terms[0][0] == 1:
            return terms[0][1]
        name = self.fresh("z")
        self.add(f"(= {name} {smt_linear(terms, const)})")
        return name

    def bound(self, name: str, lower: float | Fraction, upper: float | Fraction) -> None:
        """``lower <= name <= upper`` (infinite ends omitted)."""
        if isinstance(lower, Fraction) or math.isfinite(lower):
            self.add(f"(>= {name} {smt_number(lower)})")
        if isinstance(upper, Fraction) or math.isfinite(upper):
            self.add(f"(<= {name} {smt_number(upper)})")

    def loose_bound(self, name: str, lower: float, upper: float) -> None:
        """A sound bound (from bound propagation), rounded outwards to short rationals."""
        if math.isfinite(lower) and math.isfinite(upper) and lower <= upper:
            self.bound(name, *outward(lower, upper))
        else:
            self.bound(name, lower, upper)


# --------------------------------------------------------------------------- sites

def _two_piece(w: _Writer, y: str, z: str, a: Fraction, lower: float, upper: float,
               split: int) -> bool:
    """``y = z`` for ``z >= 0``, ``y = a z`` for ``z <= 0``; returns True when a disjunction
    was needed (an unstable neuron)."""
    az = smt_linear([(a, z)])
    if a == 1:
        w.add(f"(= {y} {z})")
        return False
    if split > 0 or (split == 0 and lower >= 0):
        if split > 0:
            w.add(f"(>= {z} 0.0)")
        w.add(f"(= {y} {z})")
        return False
    if split < 0 or (split == 0 and upper <= 0):
        if split < 0:
            w.add(f"(<= {z} 0.0)")
        w.add(f"(= {y} {az})")
        return False
    ge, le = (">=", "<=") if a < 1 else ("<=", ">=")    # convex (max) or concave (min)
    w.add(f"({ge} {y} {z})")
    w.add(f"({ge} {y} {az})")
    w.add(f"(or (= {y} {z}) (= {y} {az}))")
    # chord through (l, a l) and (u, u): (u - l) y <=/>= (u - a l)(z - l) + a l (u - l),
    # with l, u rounded outwards to short rationals (sound, and cheaper for the simplex)
    if math.isfinite(lower) and math.isfinite(upper):
        lo, hi = outward(lower, upper)
        slope = hi - a * lo
        const = -slope * lo + a * lo * (hi - lo)
        w.add(f"({le} {smt_linear([(hi - lo, y)])} {smt_linear([(slope, z)], const)})")
        w.bound(z, lo, hi)
    return True


def _encode_two_piece(w: _Writer, site: NonlinearSite, a: Fraction,
                      split: np.ndarray | None) -> int:
    (expr,), ((lower, upper),) = site.operands, site.operand_bounds
    unstable = 0
    for k, out in enumerate(site.outputs):
        z = w.operand(expr, k)
        s = 0 if split is None else int(split[k])
        unstable += _two_piece(w, w.names[out], z, a, float(lower[k]), float(upper[k]), s)
    return unstable


def _encode_smooth(w: _Writer, site: NonlinearSite, form: NetworkForm) -> None:
    """Interval bounds of operands and output, plus the registry's cuts (computed, widened
    and checked by sampling in :mod:`hybridver.encode.envelopes`, shared with the MILP
    encoding) at every element whose operand interval is finite."""
    from hybridver.encode.envelopes import binary_cuts, unary_cuts
    from hybridver.relaxations.base import (BinaryRelaxation, UnaryRelaxation,
                                            get_relaxation)

    relaxation = get_relaxation(site.op)
    arity = len(site.operands)
    expected = UnaryRelaxation if arity == 1 else BinaryRelaxation
    if relaxation is None or not isinstance(relaxation, expected):
        raise NotEncodableError(
            f"no sound envelope for {site.op.value} node '{site.node}': the relaxation "
            "registry has no " + ("unary" if arity == 1 else "binary") +
            " relaxation for this op, so it cannot be encoded for SMT")
    operand_names = [[w.operand(expr, k) for k in range(expr.size)] for expr in site.operands]
    for (lo, hi), names in zip(site.operand_bounds, operand_names):
        for k, name in enumerate(names):
            w.loose_bound(name, float(lo[k]), float(hi[k]))
    for out in site.outputs:
        w.loose_bound(w.names[out], float(form.var_lower[out]), float(form.var_upper[out]))
    valid = np.ones(len(site.outputs), dtype=bool)
    for lo, hi in site.operand_bounds:
        valid &= np.isfinite(lo) & np.isfinite(hi) & (lo <= hi)
    index = np.nonzero(valid)[0]
    if index.size == 0:
        return
    bounds = [(lo[index], hi[index]) for lo, hi in site.operand_bounds]
    if arity == 1:
        sides = unary_cuts(relaxation, site.attrs, *bounds[0], ENVELOPE_PIECES)
    else:
        sides = binary_cuts(relaxation, site.attrs, bounds, ENVELOPE_PIECES)
    for sense, cuts in zip((">=", "<="), sides):
        slopes = cuts.slopes.reshape(*cuts.biases.shape, arity)
        for k_local, k in enumerate(index):
            seen = set()
            for n in range(cuts.biases.shape[0]):
                if not cuts.valid[n, k_local]:
                    continue
                key = (tuple(slopes[n, k_local]), float(cuts.biases[n, k_local]))
                if key in seen:
                    continue
                seen.add(key)
                terms = [(rational(c), names[k]) for c, names in zip(key[0], operand_names)]
                w.add(f"({sense} {w.names[site.outputs[k]]} "
                      f"{smt_linear(terms, rational(key[1]))})")


# --------------------------------------------------------------------------- entry points

def _network_form(problem: Subproblem) -> NetworkForm:
    """The affine form with the subproblem's node bounds; where some node has none,
    interval bounds on the box complete them (intersected with the given ones, both being
    sound)."""
    from hybridver.bounds.intervals import UnsupportedBoundError

    graph, box = problem.graph, problem.box
    given = {k: tuple(np.asarray(v, dtype=np.float64).reshape(-1) for v in b)
             for k, b in problem.node_bounds.items()}
    if all(node.name in given for node in graph.nodes()
           if node.op not in (OpKind.INPUT, OpKind.CONSTANT)):
        return build_network_form(graph, box.lower, box.upper, given)
    try:
        merged = interval_node_bounds(graph, box.lower, box.upper)
    except UnsupportedBoundError as exc:  # an op the interval rules cannot bound
        raise NotEncodableError(f"no bounds for the encoding: {exc}") from exc
    for name, (lo, hi) in given.items():
        if name in merged:
            flo, fhi = merged[name]
            merged[name] = (np.maximum(lo, flo), np.minimum(hi, fhi))
        else:
            merged[name] = (lo, hi)
    return build_network_form(graph, box.lower, box.upper, merged)


def smt_script(problem: Subproblem) -> SmtScript:
    """The subproblem as SMT-LIB2 pieces (see the module docstring for the encoding).

    Raises :class:`NotEncodableError` for ops without an exact encoding or a registered
    relaxation (softmax, ``Where`` on a variable condition, ...)."""
    from hybridver.ir.decompose import decompose_max_pool

    graph = decompose_max_pool(problem.graph)
    if graph is not problem.graph:
        problem = dataclasses.replace(problem, graph=graph)
    form = _network_form(problem)
    w = _Writer(form)
    for i in form.input_vars:
        w.bound(w.names[i], float(form.var_lower[i]), float(form.var_upper[i]))
    exact, unstable = True, 0
    for site in form.sites:
        slope = kink_slope(site.op, site.attrs)   # piecewise linear x / a*x: exact
        if slope is not None:
            unstable += _encode_two_piece(w, site, rational(slope),
                                          problem.relu_splits.get(site.node))
        else:
            exact = False
            _encode_smooth(w, site, form)
    outputs = []
    for j in range(form.output.size):
        name = f"y_{j}"
        w.declarations.append(name)
        terms, const = w.row_terms(form.output, j)
        w.add(f"(= {name} {smt_linear(terms, const)})")
        outputs.append(name)
    C, d = problem.constraints.C, problem.constraints.d
    for r in range(C.shape[0]):
        terms = [(rational(c), outputs[j]) for j, c in enumerate(C[r]) if c != 0.0]
        w.add(f"(<= {smt_linear(terms, rational(d[r]))} 0.0)")
    n_in = form.input_vars.size
    notes = (f"x_0 .. x_{n_in - 1}: the flattened network input",
             *(f"a_{site.outputs[0] - n_in} .. a_{site.outputs[-1] - n_in}: the flattened "
               f"output of {site.op.value} node {site.node!r}" for site in form.sites),
             "z_k: operands of the nonlinear nodes (affine expressions of the above)",
             f"y_0 .. y_{len(outputs) - 1}: the flattened network output")
    return SmtScript(tuple(w.declarations), tuple(w.assertions),
                     tuple(w.names[i] for i in form.input_vars), tuple(outputs), exact,
                     unstable, notes)


def to_smt2(problem: Subproblem, get_values: bool = False) -> str:
    """A complete SMT-LIB2 script (``QF_LRA``, ending in ``(check-sat)``; with
    ``get_values`` also ``(get-value)`` of the inputs) that any SMT solver reads: ``sat``
    means a counterexample of the subproblem (exact for piecewise-linear networks; a
    candidate with smooth envelopes), ``unsat`` means none exists."""
    return smt_script(problem).text(get_values)


__all__ = ["ENVELOPE_PIECES", "SmtScript", "rational", "smt_linear",
           "smt_number", "smt_script", "to_smt2"]
