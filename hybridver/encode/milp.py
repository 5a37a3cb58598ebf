"""A solver-neutral MILP model of a :class:`~hybridver.problem.Subproblem`.

The model (no solver imported here)::

    minimize  t
    subject to   row_lower <= A v <= row_upper          (sparse rows)
                 var_lower <= v <= var_upper,  v_j integer where ``integer[j]``
                 C_i o + d_i <= t  for every row i of the property

where ``o`` are the network outputs and ``t`` the *violation margin*: a counterexample of
the subproblem exists iff the optimum ``t* <= 0`` (for a piecewise-linear network, in exact
arithmetic).  How back ends read ``t*`` against their tolerances is in
``hybridver/backends/options.py``; the argument is in ``docs/soundness.md``.

Variables, in this order: the network variables of
:func:`~hybridver.encode.affine_form.build_network_form` (inputs, then one per output
element of every nonlinear node), one pre-activation variable ``z`` per nonlinear element
(``z = a . v + b`` as an equality row: the model's weights appear unrounded), binaries, the
outputs ``o = A_out v + b_out`` (equality rows), and ``t``.  Every right-hand side that
needs arithmetic is rounded outward (the row gets looser), so the exact feasible set always
contains the network's true behaviour.

Nonlinear nodes:

* ReLU, LeakyReLU(alpha), Abs are ``y = max(z, alpha z)`` (``alpha < 1``; Abs is
  ``alpha = -1``) or ``y = min(z, alpha z)`` (``alpha > 1``).  Stable elements (from the
  bounds or a ReLU split) are linear; unstable ones get a binary with big-M taken from the
  pre-activation bounds ``[l, u]``; an unstable element with an infinite bound raises
  :class:`NotEncodableError`.
* MaxPool: ``y_j = max_{k in window j} z_k`` with one binary per window element.
* Smooth functions (sigmoid, tanh, ...) and products of two variables: sound linear
  envelopes from the relaxation registry (``envelopes.py``); the model is then a relaxation
  and ``MilpModel.exact`` is False.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from hybridver.bounds.intervals import UnsupportedBoundError
from hybridver.encode.affine_form import (NonlinearSite, NotEncodableError, build_network_form,
                                          interval_node_bounds)
from hybridver.encode.envelopes import encode_envelope_site
from hybridver.encode.milp_model import (EnvelopeSite, MilpModel, ModelBuilder, SiteVars,
                                         add_definition_rows, add_operand_vars, format_lp,
                                         format_mps)
from hybridver.ir.decompose import decompose_max_pool
from hybridver.numerics import U64
from hybridver.problem import Subproblem
from hybridver.relaxations.base import kink_slope

__all__ = ["MilpModel", "EnvelopeSite", "NotEncodableError", "encode_milp", "merged_bounds",
           "Breakpoints", "format_mps", "format_lp"]

#: Extra split points of envelope pieces: node name -> element index -> sorted points.
Breakpoints = Mapping[str, Mapping[int, tuple[float, ...]]]


def _up(x: float | np.ndarray) -> np.ndarray:
    """Round toward +inf by one ulp (covers one rounded float64 operation)."""
    return np.nextafter(x, np.inf)


def _down(x: float | np.ndarray) -> np.ndarray:
    return np.nextafter(x, -np.inf)


def merged_bounds(problem: Subproblem) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The subproblem's node bounds intersected with interval bounds on its box.

    Both are sound on the subproblem's region, so their intersection is; the interval
    bounds fill in nodes the subproblem does not bound.  Flattened ``(node.size,)`` each.
    """
    try:
        merged = interval_node_bounds(problem.graph, problem.box.lower, problem.box.upper)
    except UnsupportedBoundError:
        merged = {}
    for name, (lo, hi) in problem.node_bounds.items():
        lo = np.asarray(lo, dtype=np.float64).reshape(-1)
        hi = np.asarray(hi, dtype=np.float64).reshape(-1)
        if name in merged:
            lo = np.maximum(lo, merged[name][0])
            hi = np.minimum(hi, merged[name][1])
        merged[name] = (lo, hi)
    return merged


def encode_milp(problem: Subproblem, envelope_pieces: int = 4,
                breakpoints: Breakpoints | None = None) -> MilpModel:
    """The MILP of ``problem`` (see the module docstring).

    ``envelope_pieces``: linear pieces per side of the initial envelope of a smooth
    nonlinearity (that many tangent/chord cuts over the node's whole interval, no
    binaries); ``breakpoints``: split points added by refinement (each split adds binaries
    selecting the piece, see ``envelopes.py``).  Raises :class:`NotEncodableError` for an
    op without an exact encoding or a registered relaxation, or for missing/infinite bounds
    a big-M needs.
    """
    graph = decompose_max_pool(problem.graph)  # exact: max(a, b) = a + relu(b - a)
    if graph is not problem.graph:
        problem = dataclasses.replace(problem, graph=graph)
    bounds = merged_bounds(problem)
    form = build_network_form(graph, problem.box.lower, problem.box.upper, bounds)
    b = ModelBuilder()
    names = list(form.var_names)
    for s, site in enumerate(form.sites):
        for i, var in enumerate(site.outputs):
            names[var] = f"y{s}_{i}"
    b.add_vars(form.var_lower, form.var_upper, names)
    breakpoints = breakpoints or {}
    envelope_sites: list[EnvelopeSite] = []
    comments = [f"hybridver MILP: {problem.label or graph.name}; minimize t = max_i (C o + d)_i",
                f"inputs x*, outputs o*, margin t; nonlinear node s: y<s>_<i> = f(z<s>_<i>)"]
    sites: list[SiteVars] = []
    for s, site in enumerate(form.sites):
        comments.append(f"node {s}: {site.node} ({site.op.value}, {site.outputs.size} elements)")
        operand = graph.node(site.node).inputs[0]
        first = b.n_vars
        alpha = kink_slope(site.op, site.attrs)   # x / alpha*x: two lines, exact
        if alpha is not None:
            split = problem.relu_splits.get(site.node)
            z = _encode_two_lines(b, s, site, alpha, split)
        else:
            envelope_sites.append(encode_envelope_site(
                b, s, site, envelope_pieces, breakpoints.get(site.node, {})))
            z = envelope_sites[-1].z_vars
        sites.append(SiteVars(site.node, site.op, operand, z, site.outputs.copy(),
                              (first, b.n_vars)))
    out = form.output
    out_node = graph.output_node.name
    lo, hi = bounds.get(out_node, (np.full(out.size, -np.inf), np.full(out.size, np.inf)))
    o = b.add_vars(lo, hi, [f"o{i}" for i in range(out.size)])
    add_definition_rows(b, o, out, "out")
    C, d = problem.constraints.C, problem.constraints.d
    if C.shape[0] == 0:   # output condition 'true': any point of the region is a witness
        t = b.add_vars([-1.0], [np.inf], ["t"])
    else:
        t = b.add_vars(*_margin_range(C, d, lo, hi), ["t"])
        k = C.shape[0]
        b.add_matrix_rows([(C, o), (-np.ones((k, 1)), t)], -np.inf, -d, "spec")
    return b.build(input_vars=np.asarray(form.input_vars), output_vars=o,
                   margin_var=int(t[0]), C=np.asarray(C), d=np.asarray(d),
                   envelope_sites=tuple(envelope_sites), sites=tuple(sites),
                   label=problem.label, comments=tuple(comments))


def _margin_range(C: np.ndarray, d: np.ndarray, lo: np.ndarray, hi: np.ndarray
                  ) -> tuple[list[float], list[float]]:
    """Bounds of ``t`` that keep every point ``t = max_i (C o + d)_i`` with ``o`` in
    ``[lo, hi]``: interval arithmetic, widened by its float64 rounding error (infinite
    where an output bound is)."""
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        return [-np.inf], [np.inf]
    Cp, Cn = np.maximum(C, 0.0), np.minimum(C, 0.0)
    row_lo = Cp @ lo + Cn @ hi + d
    row_hi = Cp @ hi + Cn @ lo + d
    err = 2 * (C.shape[1] + 2) * U64 * (np.abs(C) @ np.maximum(np.abs(lo), np.abs(hi))
                                        + np.abs(d))
    return [float(np.max(row_lo - err))], [float(np.max(row_hi + err))]


def _encode_two_lines(b: ModelBuilder, s: int, site: NonlinearSite, alpha: float,
                      split: np.ndarray | None) -> np.ndarray:
    """``y = max(z, alpha z)`` (alpha < 1) or ``min`` (alpha > 1), one binary per unstable
    element; ReLU is alpha = 0, Abs alpha = -1."""
    l, u = (np.asarray(v, dtype=np.float64) for v in site.operand_bounds[0])
    z = add_operand_vars(b, s, site.operands[0], l, u)
    y = site.outputs
    k = y.size
    if split is not None:
        split = np.asarray(split).reshape(-1)
        b.tighten(z[split > 0], lower=0.0)
        b.tighten(z[split < 0], upper=0.0)
        l, u = b.bounds_of(z)
    if alpha == 1.0:
        active = np.ones(k, dtype=bool)
        inactive = np.zeros(k, dtype=bool)
    else:
        active = l >= 0
        inactive = (u <= 0) & ~active
    unstable = ~active & ~inactive
    one = np.ones(1)
    for mask, slope, name in ((active, 1.0, "act"), (inactive, alpha, "inact")):
        idx = np.nonzero(mask)[0]
        if idx.size:
            n = idx.size
            b.add_rows(np.r_[np.arange(n), np.arange(n)], np.r_[y[idx], z[idx]],
                       np.r_[np.ones(n), np.full(n, -slope)], n, 0.0, 0.0, f"{name}{s}")
    idx = np.nonzero(unstable)[0]
    if not idx.size:
        return z
    if not (np.all(np.isfinite(l[idx])) and np.all(np.isfinite(u[idx]))):
        raise NotEncodableError(f"node '{site.node}': an unstable element has an infinite "
                                "pre-activation bound, so no big-M exists")
    n = idx.size
    delta = b.add_vars(np.zeros(n), np.ones(n), [f"d{s}_{i}" for i in idx], integer=True)
    yy, zz = y[idx], z[idx]
    gap = abs(1.0 - alpha)
    m1 = _up(gap * -l[idx]) if gap != 1.0 else -l[idx]   # |y - z| bound when z <= 0
    m2 = _up(gap * u[idx]) if gap != 1.0 else u[idx]     # |y - alpha z| bound when z >= 0
    r = np.arange(n)
    sign = 1.0 if alpha < 1.0 else -1.0   # max(...) for alpha < 1, min(...) for alpha > 1
    # y >= z and y >= alpha z (max); <= for min
    lo_hi = (0.0, np.inf) if sign > 0 else (-np.inf, 0.0)
    b.add_rows(np.r_[r, r], np.r_[yy, zz], np.r_[np.ones(n), -np.ones(n)], n, *lo_hi, f"ge{s}")
    if alpha != 0.0:
        b.add_rows(np.r_[r, r], np.r_[yy, zz], np.r_[np.ones(n), np.full(n, -alpha)], n,
                   *lo_hi, f"gea{s}")
    else:  # y >= 0 as a bound
        b.tighten(yy, lower=0.0) if sign > 0 else b.tighten(yy, upper=0.0)
    # delta = 1: y = z;  delta = 0: y = alpha z
    # max: y - z + m1 delta <= m1 ; y - alpha z - m2 delta <= 0
    # min: y - z - m1 delta >= -m1 ; y - alpha z + m2 delta >= 0
    b.add_rows(np.r_[r, r, r], np.r_[yy, zz, delta], np.r_[one.repeat(n), -one.repeat(n),
                                                           sign * m1], n,
               *((-np.inf, m1) if sign > 0 else (-m1, np.inf)), f"bigm{s}")
    if alpha != 0.0:
        b.add_rows(np.r_[r, r, r], np.r_[yy, zz, delta],
                   np.r_[one.repeat(n), np.full(n, -alpha), -sign * m2], n,
                   *((-np.inf, 0.0) if sign > 0 else (0.0, np.inf)), f"bigma{s}")
    else:
        b.add_rows(np.r_[r, r], np.r_[yy, delta], np.r_[one.repeat(n), -m2], n, -np.inf, 0.0,
                   f"bigma{s}")
    return z

