"""The grid of representable images (``--grid N``: pixel values ``lo + m * (hi - lo) / N``,
``0 <= m <= N``; N = 255 for 8-bit images).

The grid verdict is about ``G``: the images of the manipulation region whose pixels are
all grid values.  ``G`` is a subset of the continuous region, so:

* ``unsat`` over the continuous region is ``unsat`` over ``G``;
* a continuous counterexample is SNAPPED (:func:`snap`): every parameter is rounded to a
  multiple of the grid step (toward zero, to the nearest, and at random), clamped into
  the box.  With ``x0`` on the grid and families whose columns are 0/1 vectors
  (brightness, patch, occlude, linf/l1/l2), the snapped image is a grid image of the
  region (roundings that leave a norm ball are dropped; toward zero never does).  The
  snapped images are run on the real model: ``sat`` only if one is misclassified there;
* one-parameter families (brightness alone, contrast alone) have a finite ``G`` that
  :func:`enumerate_grid` lists completely, in exact integer arithmetic; running the real
  model on all of it decides the grid property exactly.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from hybridver.manipulations.affine import ManipulationError, ManipulationSpec

__all__ = ["enumerable", "enumerate_grid", "grid_images", "grid_units", "snap"]

#: how far (in grid steps) a pixel of the point may be from a grid value and still count
#: as that value: float32 values of ``m / 255`` are within 1e-5 steps of it
GRID_MATCH = 1e-4


def _step(spec: ManipulationSpec) -> Fraction:
    lo, hi = (Fraction(v) for v in spec.pixel_range)
    return (hi - lo) / spec.grid


def grid_units(spec: ManipulationSpec, x: np.ndarray, what: str = "the point") -> np.ndarray:
    """``m`` with ``x == lo + m * step`` for every pixel (``int64``), or a
    :class:`ManipulationError` naming the first pixel that is no grid value."""
    lo, hi = spec.pixel_range
    u = (np.asarray(x, dtype=np.float64) - lo) / (hi - lo) * spec.grid
    m = np.rint(u)
    bad = np.nonzero((np.abs(u - m) > GRID_MATCH) | (m < 0) | (m > spec.grid))[0]
    if bad.size:
        i = int(bad[0])
        raise ManipulationError(
            f"--grid {spec.grid}: {what} is not a grid image: entry {i} = {float(x[i])!r} is "
            f"not {lo:g} + m*{(hi - lo):g}/{spec.grid} with 0 <= m <= {spec.grid} (round it "
            f"to the grid first, or pick the grid it is on)")
    return m.astype(np.int64)


def grid_images(spec: ManipulationSpec, units: np.ndarray) -> np.ndarray:
    """Grid units ``(m, n)`` -> pixel values (nearest float64)."""
    lo, hi = spec.pixel_range
    return lo + np.asarray(units, dtype=np.float64) * ((hi - lo) / spec.grid)


def _units_in_range(spec: ManipulationSpec, u: np.ndarray) -> np.ndarray | None:
    """Clip units to ``[0, N]`` under ``--clip``; without it, None when one leaves it."""
    if spec.clip is not None:
        return np.clip(u, 0, spec.grid)
    return None if (np.any(u < 0) or np.any(u > spec.grid)) else u


def snap(spec: ManipulationSpec, p: np.ndarray, tries: int = 64, seed: int = 0) -> list:
    """Grid images near the continuous counterexample ``p``: ``[(p_snapped, units), ...]``
    for every parameter rounded to a multiple of the step toward zero, to the nearest, and
    ``tries`` random roundings (down or up with the odds of the fraction), each clamped into
    the exact box and kept only if inside every norm ball (checked in exact arithmetic).
    Empty when the families cannot be snapped (contrast moves pixels by a multiple of
    ``x0``) or no rounding keeps the image in the pixel range without ``--clip``."""
    a = spec.amap
    cols = a.columns
    if "contrast" in a.kinds or not np.all((cols == 0) | (cols == 1)):
        return []
    step = _step(spec)
    lo = np.array([math.ceil(q / step) for q in a.exact_lower], dtype=np.int64)
    hi = np.array([math.floor(q / step) for q in a.exact_upper], dtype=np.int64)
    u = np.asarray(p, dtype=np.float64).reshape(-1) / float(step)
    rng = np.random.default_rng(seed)
    rounded = [np.trunc(u), np.rint(u)]
    rounded += [np.floor(u) + (rng.random(u.size) < u - np.floor(u)) for _ in range(tries)]
    base = grid_units(spec, a.offset, "the manipulation's base image")
    step_sq = step * step
    found, seen = [], set()
    for r in rounded:
        m = np.clip(r.astype(np.int64), lo, hi)
        if m.tobytes() in seen:
            continue
        seen.add(m.tobytes())
        ok = True
        for g in a.norms:
            mg = [int(m[c]) for c in g.columns]
            size = (sum(abs(v) for v in mg) * step if g.order == 1
                    else sum(v * v for v in mg) * step_sq)
            ok = ok and size <= -g.cut_offset()
        units = _units_in_range(spec, base + cols.astype(np.int64) @ m) if ok else None
        if units is not None:
            found.append((np.array([float(mi * step) for mi in m.tolist()]), units))
    return found


def enumerable(spec: ManipulationSpec) -> bool:
    """One parameter of brightness, or of contrast with pixel range starting at 0."""
    a = spec.amap
    if a.n_params != 1 or len(a.kinds) != 1:
        return False
    kind = next(iter(a.kinds))
    return kind == "brightness" or (kind == "contrast" and spec.pixel_range[0] == 0)


def enumerate_grid(spec: ManipulationSpec, limit: int) -> tuple[np.ndarray, list[Fraction]]:
    """Every image of ``G`` (module docstring) as grid units ``(m, n)``, with the parameter
    of each; a :class:`ManipulationError` when there are more than ``limit``."""
    if not enumerable(spec):
        raise ManipulationError("grid enumeration needs one brightness or contrast parameter")
    a = spec.amap
    k = grid_units(spec, spec.x0)
    step = _step(spec)
    lo_p, hi_p = a.exact_lower[0], a.exact_upper[0]
    found: dict[bytes, tuple[np.ndarray, Fraction]] = {}

    def consider(units: np.ndarray | None, param: Fraction) -> None:
        if units is not None and len(found) <= limit:
            found.setdefault(units.tobytes(), (units, param))

    if "brightness" in a.kinds:
        # an unclipped pixel is on the grid iff b is a multiple of the step; a fully
        # clipped image is also reached at the ends of [lo_p, hi_p] (checked exactly)
        for mi in range(math.ceil(lo_p / step), math.floor(hi_p / step) + 1):
            consider(_units_in_range(spec, k + mi), mi * step)
        for b in (lo_p, hi_p):
            units = _exact_units(spec, [Fraction(int(v)) + b / step for v in k])
            consider(units, b)
    else:
        # c * k_i must be an integer for every unclipped pixel: c = m / k_j for some j
        for kj in sorted(set(int(v) for v in k if v > 0)):
            lo_m = math.ceil((1 + lo_p) * kj)
            hi_m = math.floor((1 + hi_p) * kj)
            for mm in range(lo_m, hi_m + 1):
                num = mm * k  # c * k_i in units of 1/kj: exact integers
                if spec.clip is not None:
                    num = np.clip(num, 0, spec.grid * kj)
                if np.all(num % kj == 0) and np.all(num <= spec.grid * kj):
                    consider(num // kj, Fraction(mm, kj) - 1)
        for t in (lo_p, hi_p, Fraction(0)):
            if lo_p <= t <= hi_p:
                consider(_exact_units(spec, [(1 + t) * int(v) for v in k]), t)
    if len(found) > limit:
        raise ManipulationError(f"the grid has more than {limit} images to enumerate")
    if not found:
        return np.zeros((0, k.size), dtype=np.int64), []
    units, params = zip(*found.values())
    return np.stack(units), list(params)


def _exact_units(spec: ManipulationSpec, values: list[Fraction]) -> np.ndarray | None:
    """Exact pixel values in grid units -> clipped integer units, or None off the grid."""
    n = spec.grid
    out = []
    for v in values:
        if spec.clip is not None:
            v = min(max(v, Fraction(0)), Fraction(n))
        if v.denominator != 1 or not 0 <= v <= n:
            return None
        out.append(int(v))
    return np.array(out, dtype=np.int64)
