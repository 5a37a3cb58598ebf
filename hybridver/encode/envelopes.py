"""Sound piecewise-linear envelopes of smooth nonlinearities for the MILP encoding, and
their counterexample-guided refinement.

For an elementwise ``y = f(z)`` with ``z`` in ``[l, u]`` the relaxation registry gives, for
any ``alpha`` in ``[0, 1]``, lines with ``s_lo z + b_lo <= f(z) <= s_hi z + b_hi`` on
``[l, u]``.  Several alphas give several valid cuts; together they bound ``f`` by the
maximum of the lower lines and the minimum of the upper lines (a PWL envelope):

* **global cuts** (no binaries): ``envelope_pieces`` alphas spread over ``[0, 1]`` plus the
  relaxation's default, on the whole interval;
* **pieces** (refinement): split points ``l < p_1 < ... < p_{m-1} < u`` add one binary per
  piece ``q_k = [p_{k-1}, p_k]`` (exactly one is 1, and ``z`` lies in the chosen piece) and
  the cuts of each piece, switched off by big-M outside it:
  ``y >= s z + b - M (1 - beta_k)`` with ``M >= max_{z in [l,u]} (s z + b) - y_lo``, so a
  cut of another piece never removes a true point (``y_lo``/``y_hi`` are sound bounds of
  ``y``).

Why sound: each row holds at every ``(z, f(z))`` with ``z`` in ``[l, u]`` in exact
arithmetic.  The relaxations are computed in float64; every bias is then moved outward by
``REL_SLACK (|b| + |s| max(|l|, |u|) + 1)`` (``numerics.REL_SLACK``, far above float64 rounding
of a few operations)
and every big-M and right-hand side is rounded outward.  Each cut is also checked at 17
points of its interval (ends included): one that passes on the wrong side of ``f`` by more
than ``1e-6 (1 + |f|)`` (a broken relaxation) is dropped, a smaller excess is added to its
bias (doubled).

Products of two variables (MUL/DIV) get the registry's planes the same way, without
pieces.  Refinement (:func:`refine_breakpoints`) reads a spurious solution: where the
solver's ``y*`` differs from ``f(z*)`` it adds a split point at ``z*`` (where the piece cuts
meet ``f``), or halves the piece around ``z*`` when ``z*`` is already a split point.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch

from hybridver.encode.affine_form import NonlinearSite, NotEncodableError
from hybridver.encode.milp_model import (EnvelopeSite, MilpModel, ModelBuilder,
                                         add_operand_vars)
from hybridver.numerics import REL_SLACK
from hybridver.relaxations import base as relaxation_base
from hybridver.relaxations.base import BinaryRelaxation, UnaryRelaxation

__all__ = ["Cuts", "unary_cuts", "binary_cuts", "encode_envelope_site", "refine_breakpoints",
           "envelope_error"]

_SAMPLES = 17


@dataclasses.dataclass(frozen=True)
class Cuts:
    """``n`` cuts for ``k`` elements: ``slopes (n, k[, 2])``, ``biases (n, k)``, ``valid (n, k)``.

    Lower cuts: ``y >= slopes . z + biases``; upper cuts: ``y <= slopes . z + biases``.
    """

    slopes: np.ndarray
    biases: np.ndarray
    valid: np.ndarray


def _relaxation(site_op):
    return relaxation_base.get_relaxation(site_op)


def _alphas(pieces: int) -> list[float | None]:
    return [None] + ([float(a) for a in np.linspace(0.0, 1.0, pieces)] if pieces > 1 else [])


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def _screen(bias: np.ndarray, bad: np.ndarray, f_grid: np.ndarray, side: str
            ) -> tuple[np.ndarray, np.ndarray]:
    """Sampling check of cuts: ``bad`` ``(samples, k)`` is how far each cut passes on the
    wrong side of ``f``.  A cut off by more than ``1e-6 (1 + |f|)`` is broken and dropped;
    a smaller excess (rounding inside the relaxation) is added to the bias, doubled."""
    with np.errstate(invalid="ignore"):
        worst = np.max(np.where(np.isfinite(bad), bad, np.inf), axis=0)
        ok = worst <= 1e-6 * (1.0 + np.max(np.abs(f_grid), axis=0))
        fix = np.where(ok & (worst > 0), 2.0 * worst, 0.0)
    return (bias - fix if side == "lower" else bias + fix), ok


def unary_cuts(relaxation, attrs: Mapping, lower: np.ndarray, upper: np.ndarray,
               pieces: int) -> tuple[Cuts, Cuts]:
    """Lower and upper cuts of ``f`` on ``[lower, upper]`` (each ``(k,)``), widened and
    checked by sampling (see the module docstring)."""
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    k = lower.size
    reach = np.maximum(np.abs(lower), np.abs(upper))
    grid = lower[None, :] + (upper - lower)[None, :] * np.linspace(0, 1, _SAMPLES)[:, None]
    with torch.no_grad():
        f_grid = relaxation.function(_t(grid), attrs).numpy()
    out = {"lower": ([], [], []), "upper": ([], [], [])}
    for alpha in _alphas(pieces):
        a = None if alpha is None else torch.full((k,), alpha, dtype=torch.float64)
        with torch.no_grad():
            lb = relaxation.bounds(_t(lower), _t(upper), attrs, a, a)
        for side, slope, bias in (("lower", lb.lower_slope, lb.lower_bias),
                                  ("upper", lb.upper_slope, lb.upper_bias)):
            s = np.broadcast_to(slope.detach().numpy().astype(np.float64), (k,)).copy()
            c = np.broadcast_to(bias.detach().numpy().astype(np.float64), (k,)).copy()
            slack = REL_SLACK * (np.abs(c) + np.abs(s) * reach + 1.0)
            c = c - slack if side == "lower" else c + slack
            line = s[None, :] * grid + c[None, :]
            bad = line - f_grid if side == "lower" else f_grid - line
            c, ok = _screen(c, bad, f_grid, side)
            ok &= np.isfinite(s) & np.isfinite(c)
            out[side][0].append(s)
            out[side][1].append(c)
            out[side][2].append(ok)
    return tuple(Cuts(np.stack(out[side][0]), np.stack(out[side][1]), np.stack(out[side][2]))
                 for side in ("lower", "upper"))


def binary_cuts(relaxation, attrs: Mapping, bounds, pieces: int) -> tuple[Cuts, Cuts]:
    """Planes for ``y = g(z1, z2)``; ``bounds`` = ``((l1, u1), (l2, u2))``; slopes ``(n, k, 2)``."""
    (l1, u1), (l2, u2) = ((np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
                          for a, b in bounds)
    k = l1.size
    reach1 = np.maximum(np.abs(l1), np.abs(u1))
    reach2 = np.maximum(np.abs(l2), np.abs(u2))
    t = np.linspace(0, 1, 5)
    g1 = (l1[None, None, :] + (u1 - l1)[None, None, :] * t[:, None, None]).repeat(5, axis=1)
    g2 = (l2[None, None, :] + (u2 - l2)[None, None, :] * t[None, :, None]).repeat(5, axis=0)
    with torch.no_grad():
        f_grid = relaxation.function(_t(g1), _t(g2), attrs).numpy()
    out = {"lower": ([], [], []), "upper": ([], [], [])}
    for alpha in _alphas(pieces):
        a = None if alpha is None else torch.full((k,), alpha, dtype=torch.float64)
        with torch.no_grad():
            pb = relaxation.bounds(_t(l1), _t(u1), _t(l2), _t(u2), attrs, a, a)
        for side, sx, sy, bias in (("lower", pb.lower_x, pb.lower_y, pb.lower_bias),
                                   ("upper", pb.upper_x, pb.upper_y, pb.upper_bias)):
            s1 = np.broadcast_to(sx.detach().numpy().astype(np.float64), (k,)).copy()
            s2 = np.broadcast_to(sy.detach().numpy().astype(np.float64), (k,)).copy()
            c = np.broadcast_to(bias.detach().numpy().astype(np.float64), (k,)).copy()
            slack = REL_SLACK * (np.abs(c) + np.abs(s1) * reach1 + np.abs(s2) * reach2 + 1.0)
            c = c - slack if side == "lower" else c + slack
            plane = s1 * g1 + s2 * g2 + c
            bad = plane - f_grid if side == "lower" else f_grid - plane
            n = bad.shape[-1]
            c, ok = _screen(c, bad.reshape(-1, n), f_grid.reshape(-1, n), side)
            ok &= np.isfinite(s1) & np.isfinite(s2) & np.isfinite(c)
            out[side][0].append(np.stack([s1, s2], axis=-1))
            out[side][1].append(c)
            out[side][2].append(ok)
    return tuple(Cuts(np.stack(out[side][0]), np.stack(out[side][1]), np.stack(out[side][2]))
                 for side in ("lower", "upper"))


def _cut_rows(b: ModelBuilder, s: int, z: np.ndarray, y: np.ndarray, cuts: Cuts,
              side: str) -> None:
    """Global cuts ``y - slopes . z >= bias`` (lower) or ``<= bias`` (upper)."""
    for n in range(cuts.slopes.shape[0]):
        idx = np.nonzero(cuts.valid[n])[0]
        if not idx.size:
            continue
        m = idx.size
        r = np.arange(m)
        slopes = cuts.slopes[n][idx]
        zz = z[idx]
        if slopes.ndim == 1:
            rows, cols, vals = np.r_[r, r], np.r_[y[idx], zz], np.r_[np.ones(m), -slopes]
        else:
            rows = np.r_[r, r, r]
            cols = np.r_[y[idx], zz[:, 0], zz[:, 1]]
            vals = np.r_[np.ones(m), -slopes[:, 0], -slopes[:, 1]]
        bias = cuts.biases[n][idx]
        lo, hi = (bias, np.inf) if side == "lower" else (-np.inf, bias)
        b.add_rows(rows, cols, vals, m, lo, hi, f"env{side[0]}{s}")


def encode_envelope_site(b: ModelBuilder, s: int, site: NonlinearSite, pieces: int,
                         breakpoints: Mapping[int, tuple[float, ...]]) -> EnvelopeSite:
    """Add the envelope of one smooth node to the model (see the module docstring)."""
    relaxation = _relaxation(site.op)
    y = site.outputs
    if isinstance(relaxation, UnaryRelaxation) and len(site.operands) == 1:
        l, u = (np.asarray(v, dtype=np.float64) for v in site.operand_bounds[0])
        if not (np.all(np.isfinite(l)) and np.all(np.isfinite(u))):
            raise NotEncodableError(f"node '{site.node}' ({site.op.value}): infinite "
                                    "operand bounds, no envelope")
        z = add_operand_vars(b, s, site.operands[0], l, u)
        lower, upper = unary_cuts(relaxation, site.attrs, l, u, pieces)
        _cut_rows(b, s, z, y, lower, "lower")
        _cut_rows(b, s, z, y, upper, "upper")
        kept = {}
        for i, points in sorted(breakpoints.items()):
            inside = tuple(sorted(p for p in set(points) if l[i] < p < u[i]))
            if inside:
                _add_pieces(b, s, i, relaxation, site.attrs, z[i], y[i], l[i], u[i], inside,
                            pieces)
                kept[i] = inside
        return EnvelopeSite(site.node, site.op, site.attrs, z, y.copy(), l, u, kept)
    if isinstance(relaxation, BinaryRelaxation) and len(site.operands) == 2:
        bounds = [tuple(np.asarray(v, dtype=np.float64) for v in ob)
                  for ob in site.operand_bounds]
        if not all(np.all(np.isfinite(v)) for ob in bounds for v in ob):
            raise NotEncodableError(f"node '{site.node}' ({site.op.value}): infinite "
                                    "operand bounds, no envelope")
        z1 = add_operand_vars(b, s, site.operands[0], *bounds[0], tag="z")
        z2 = add_operand_vars(b, s, site.operands[1], *bounds[1], tag="w")
        z = np.stack([z1, z2], axis=-1)
        lower, upper = binary_cuts(relaxation, site.attrs, bounds, pieces)
        _cut_rows(b, s, z, y, lower, "lower")
        _cut_rows(b, s, z, y, upper, "upper")
        lo = np.stack([bounds[0][0], bounds[1][0]], axis=-1)
        hi = np.stack([bounds[0][1], bounds[1][1]], axis=-1)
        return EnvelopeSite(site.node, site.op, site.attrs, z, y.copy(), lo, hi, {})
    raise NotEncodableError(
        f"{site.op.value} node '{site.node}' has no MILP encoding: no exact rule and no "
        "registered relaxation for it (hybridver.relaxations)")


def _add_pieces(b: ModelBuilder, s: int, i: int, relaxation, attrs, z: int, y: int,
                l: float, u: float, inside: tuple[float, ...], pieces: int) -> None:
    """Binaries selecting the piece of ``[l, u]`` that holds ``z``, and each piece's cuts
    switched off by big-M outside it."""
    ylo, yhi = b.bounds_of(np.array([y]))
    ylo, yhi = float(ylo[0]), float(yhi[0])
    if not (np.isfinite(ylo) and np.isfinite(yhi)):
        raise NotEncodableError(f"element {i} of a smooth node has infinite output bounds")
    q = np.array([l, *inside, u])
    m = q.size - 1
    beta = b.add_vars(np.zeros(m), np.ones(m), [f"p{s}_{i}_{k}" for k in range(m)],
                      integer=True)
    zero = np.zeros(m, dtype=np.int64)
    b.add_rows(zero, beta, np.ones(m), 1, 1.0, 1.0, f"one{s}_{i}")
    # q_left(beta) <= z <= q_right(beta)
    b.add_rows(np.zeros(m + 1, dtype=np.int64), np.r_[z, beta], np.r_[1.0, -q[:-1]], 1,
               0.0, np.inf, f"pcl{s}_{i}")
    b.add_rows(np.zeros(m + 1, dtype=np.int64), np.r_[z, beta], np.r_[1.0, -q[1:]], 1,
               -np.inf, 0.0, f"pcu{s}_{i}")
    lower, upper = unary_cuts(relaxation, attrs, q[:-1], q[1:], pieces)
    for cuts, side in ((lower, "lower"), (upper, "upper")):
        for n in range(cuts.slopes.shape[0]):
            for k in np.nonzero(cuts.valid[n])[0]:
                sl, c = float(cuts.slopes[n, k]), float(cuts.biases[n, k])
                ext = np.array([sl * l, sl * u])
                if side == "lower":   # y - sl z - M beta_k >= c - M
                    big = np.nextafter(np.nextafter(ext.max() + c, np.inf) - ylo, np.inf)
                    big = max(float(big) * (1 + REL_SLACK), 0.0)
                    rhs = np.nextafter(c - big, -np.inf)
                    b.add_rows(np.zeros(3, dtype=np.int64), np.r_[y, z, beta[k]],
                               np.r_[1.0, -sl, -big], 1, rhs, np.inf, f"pwl{s}_{i}")
                else:                 # y - sl z + M beta_k <= c + M
                    big = np.nextafter(yhi - np.nextafter(ext.min() + c, -np.inf), np.inf)
                    big = max(float(big) * (1 + REL_SLACK), 0.0)
                    rhs = np.nextafter(c + big, np.inf)
                    b.add_rows(np.zeros(3, dtype=np.int64), np.r_[y, z, beta[k]],
                               np.r_[1.0, -sl, big], 1, -np.inf, rhs, f"pwu{s}_{i}")


def envelope_error(model: MilpModel, values: np.ndarray) -> list[tuple[float, int, int]]:
    """``(|y* - f(z*)|, site index, element)`` for every unary envelope element, largest
    first: how far the solution's smooth outputs are from the true function."""
    values = np.asarray(values, dtype=np.float64)
    found = []
    for si, site in enumerate(model.envelope_sites):
        if site.z_vars.ndim != 1:
            continue
        relaxation = _relaxation(site.op)
        zs = values[site.z_vars]
        with torch.no_grad():
            fz = relaxation.function(_t(zs), site.attrs).numpy()
        err = np.abs(values[site.y_vars] - fz)
        found += [(float(e), si, int(i)) for i, e in enumerate(err)]
    found.sort(reverse=True)
    return found


def refine_breakpoints(model: MilpModel, values: np.ndarray, max_new: int = 16,
                       min_error: float = 1e-7) -> dict[str, dict[int, tuple[float, ...]]] | None:
    """Split points that cut off the solution ``values`` (``(n_vars,)``): for the
    ``max_new`` elements with the largest ``|y* - f(z*)| > min_error (1 + |f(z*)|)``, a new
    split point at ``z*``, or the midpoint of the piece holding ``z*`` when ``z*`` is
    (almost) a split point or an end already.  None when nothing can be refined."""
    values = np.asarray(values, dtype=np.float64)
    result: dict[str, dict[int, tuple[float, ...]]] = {
        site.node: {i: tuple(p) for i, p in site.breakpoints.items()}
        for site in model.envelope_sites}
    added = 0
    for err, si, i in envelope_error(model, values):
        site = model.envelope_sites[si]
        y_star = values[site.y_vars[i]]
        if added >= max_new or err <= min_error * (1.0 + abs(y_star)):
            break
        l, u = float(site.lower[i]), float(site.upper[i])
        zs = float(np.clip(values[site.z_vars[i]], l, u))
        points = sorted(result[site.node].get(i, ()))
        ends = np.array([l, *points, u])
        width = u - l
        if width <= 1e-9 * (1.0 + abs(l) + abs(u)):
            continue
        gaps = np.abs(ends - zs)
        if np.min(gaps) > 1e-3 * width:
            new = [zs]
        else:   # z* is (almost) a split point or an end: halve the pieces next to it
            j = int(np.argmin(gaps))
            new = [0.5 * (ends[a] + ends[a + 1]) for a in (j - 1, j)
                   if 0 <= a < ends.size - 1 and ends[a + 1] - ends[a] > 1e-6 * width]
            if not new:
                continue
        result[site.node][i] = tuple(sorted({*points, *(float(p) for p in new)}))
        added += 1
    return result if added else None
