"""Generate the data tables of ``hybridver/tables/`` used by the S-shaped relaxations.

    .venv/bin/python tools/make_tangent_tables.py [--check]

Writes (deterministically: same bytes on every run)

* ``hybridver/tables/tangent_points.npz``: for sigmoid, tanh and erf, on a grid
  ``g_0 < ... < g_{N-1} = 0`` of lower bounds ``l`` (``l_k = -expm1(t_k)``, ``t`` uniform in
  ``[0, log(1 + 1e6)]``, so dense near 0 and geometric far out), a bracket
  ``{fn}_lo[k] < d*(g_k) < {fn}_hi[k]`` (equal to 0 at ``g = 0``) of the tangent point
  ``d* > 0`` whose tangent passes through ``(l, f(l))``, i.e. the root of
  ``phi(d) = f(d) + f'(d)(l - d) - f(l)``.  Each bracket is found by float64 bisection,
  widened until the signs ``phi(lo) < 0 < phi(hi)`` are CONFIRMED in 50-digit arithmetic
  (mpmath) at the exact float64 values stored.  Also checks ``lo`` and ``hi`` decrease
  with ``l`` (``d*`` is decreasing; the proof is in ``s_shaped.py``).
* ``hybridver/tables/branch_points.npz``: for each function, on the grid ``axis``
  (-10..10, step 0.1) of interval ends, ``{fn}_fraction[i, j]`` = the split fraction
  ``(p - l) / (u - l)`` with ``l = axis[i] < u = axis[j]`` minimizing the total
  relaxation gap of the two halves (``SShapedRelaxation.split_gap``, default lines) over
  fractions 0.02, 0.025, ..., 0.98; 0.5 where ``i >= j`` (never used as such, only as
  bilinear neighbours).
* ``hybridver/tables/manifest.json``: sha256 and size of each file, the generator and
  grid facts.

``--check`` regenerates in memory and fails if the bytes differ from the files on disk.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import mpmath
import numpy as np
from scipy import special

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "hybridver" / "tables"
N_TANGENT = 8192
L_MIN = -1e6
BRANCH_AXIS = np.round(np.linspace(-10.0, 10.0, 201), 12)
FRACTIONS = np.round(np.arange(0.02, 0.98 + 1e-9, 0.005), 12)
FUNCTIONS = ("sigmoid", "tanh", "erf")
mpmath.mp.dps = 50


# ---- the functions, in float64 (numpy) and in 50 digits (mpmath) ---------------------------

def f64(name: str, x: np.ndarray) -> np.ndarray:
    return {"sigmoid": special.expit, "tanh": np.tanh, "erf": special.erf}[name](x)


def df64(name: str, x: np.ndarray) -> np.ndarray:
    if name == "sigmoid":
        return special.expit(x) * special.expit(-x)
    if name == "tanh":
        return 4.0 * special.expit(2 * x) * special.expit(-2 * x)
    return 2.0 / np.sqrt(np.pi) * np.exp(-x * x)


def f_mp(name: str, x):
    if name == "sigmoid":
        return 1 / (1 + mpmath.exp(-x))
    if name == "tanh":
        return mpmath.tanh(x)
    return mpmath.erf(x)


def df_mp(name: str, x):
    if name == "sigmoid":
        e = mpmath.exp(-abs(x))
        return e / (1 + e) ** 2
    if name == "tanh":
        return mpmath.sech(x) ** 2
    return 2 / mpmath.sqrt(mpmath.pi) * mpmath.exp(-x * x)


def phi_mp(name: str, d: float, l: float):
    d, l = mpmath.mpf(d), mpmath.mpf(l)
    return f_mp(name, d) + df_mp(name, d) * (l - d) - f_mp(name, l)


# ---- tangent points -------------------------------------------------------------------

def tangent_grid() -> np.ndarray:
    t = np.linspace(np.log1p(-L_MIN), 0.0, N_TANGENT)
    grid = -np.expm1(t)
    grid[-1] = 0.0
    assert np.all(np.diff(grid) > 0)
    return grid


def approx_roots(name: str, grid: np.ndarray) -> np.ndarray:
    """Float64 bisection for the root of phi on [0, 60], all grid points at once."""
    l = grid[:-1]
    lo, hi = np.zeros_like(l), np.full_like(l, 60.0)
    fl = f64(name, l)
    for _ in range(200):
        mid = (lo + hi) / 2
        val = f64(name, mid) + df64(name, mid) * (l - mid) - fl
        lo, hi = np.where(val < 0, mid, lo), np.where(val < 0, hi, mid)
    return (lo + hi) / 2


def certified_bracket(name: str, l: float, d0: float) -> tuple[float, float]:
    """Float64 ``lo < d*(l) < hi`` with the signs of phi confirmed in 50 digits."""
    eps = 1e-12
    while True:
        lo, hi = d0 * (1 - eps), d0 * (1 + eps)
        if phi_mp(name, lo, l) < 0 < phi_mp(name, hi, l):
            return lo, hi
        eps *= 10
        if eps > 0.5:
            raise RuntimeError(f"no bracket for {name} at l={l!r} around {d0!r}")


def tangent_tables() -> dict[str, np.ndarray]:
    grid = tangent_grid()
    arrays = {"grid": grid}
    for name in FUNCTIONS:
        roots = approx_roots(name, grid)
        lo, hi = np.zeros_like(grid), np.zeros_like(grid)
        for k, (l, d0) in enumerate(zip(grid[:-1], roots)):
            lo[k], hi[k] = certified_bracket(name, float(l), float(d0))
        if not (np.all(np.diff(lo) <= 0) and np.all(np.diff(hi) <= 0)):
            raise RuntimeError(f"{name}: tangent points are not decreasing in l")
        arrays[f"{name}_lo"], arrays[f"{name}_hi"] = lo, hi
        print(f"  {name}: d* from {hi[0]:.4f} (l={grid[0]:.3g}) to {hi[-2]:.3g} "
              f"(l={grid[-2]:.3g})")
    return arrays


# ---- branching points -----------------------------------------------------------------

def branch_tables() -> dict[str, np.ndarray]:
    import torch

    from hybridver.relaxations.families import s_shaped

    relaxations = {"sigmoid": s_shaped.Sigmoid(), "tanh": s_shaped.Tanh(), "erf": s_shaped.Erf()}
    axis = BRANCH_AXIS
    n = axis.size
    i_idx, j_idx = np.triu_indices(n, k=1)
    l = torch.as_tensor(axis[i_idx], dtype=torch.float64)[:, None]
    u = torch.as_tensor(axis[j_idx], dtype=torch.float64)[:, None]
    t = torch.as_tensor(FRACTIONS, dtype=torch.float64)[None, :]
    arrays = {"axis": axis}
    for name in FUNCTIONS:
        relax = relaxations[name]
        best = np.empty(i_idx.size)
        for start in range(0, i_idx.size, 2048):
            lc, uc = l[start:start + 2048], u[start:start + 2048]
            lb, ub = lc.expand(-1, t.shape[1]), uc.expand(-1, t.shape[1])
            total = relax.split_gap(lb, lb + t * (ub - lb), ub)
            best[start:start + 2048] = FRACTIONS[total.argmin(dim=1).numpy()]
        table = np.full((n, n), 0.5, dtype=np.float32)
        table[i_idx, j_idx] = best
        arrays[f"{name}_fraction"] = table
        print(f"  {name}: split fraction in [{best.min():.3f}, {best.max():.3f}], "
              f"{np.mean(np.abs(best - 0.5) > 0.01):.0%} of the grid away from the midpoint")
    return arrays


# ---- files ----------------------------------------------------------------------------

def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``.npz`` with fixed timestamps and order, so equal arrays give equal bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[key]),
                                      allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def manifest_bytes(files: dict[str, bytes], descriptions: dict[str, str]) -> bytes:
    manifest = {
        "format": 1,
        "generator": "tools/make_tangent_tables.py",
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                         "description": descriptions[name]}
                  for name, data in sorted(files.items())},
    }
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="regenerate in memory and compare with the files on disk")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from hybridver.relaxations import tables

    descriptions = {
        "tangent_points.npz": (f"S-shaped upper tangent points d*(l): certified brackets "
                               f"{{fn}}_lo < d* < {{fn}}_hi on grid (N={N_TANGENT}, "
                               f"l in [{L_MIN:g}, 0]) for fn in {', '.join(FUNCTIONS)}"),
        "branch_points.npz": ("S-shaped branching fractions {fn}_fraction[i, j] on "
                              "axis x axis (l = axis[i] < u = axis[j], -10..10 step 0.1)"),
    }
    print("tangent points (certified with mpmath, 50 digits)...")
    files = {"tangent_points.npz": npz_bytes(tangent_tables())}
    if not args.check:
        OUT.mkdir(exist_ok=True)
        (OUT / "tangent_points.npz").write_bytes(files["tangent_points.npz"])
        # the branch table is optimized against the runtime relaxation, which reads the
        # tangent table just written through the manifest
        (OUT / "manifest.json").write_bytes(manifest_bytes(files, descriptions))
        tables.clear_cache()
    print("branching points (grid search of the split fraction)...")
    files["branch_points.npz"] = npz_bytes(branch_tables())
    files["manifest.json"] = manifest_bytes(files, descriptions)
    if args.check:
        stale = [name for name, data in files.items()
                 if not (OUT / name).is_file() or (OUT / name).read_bytes() != data]
        print("up to date" if not stale else f"stale: {', '.join(stale)}")
        return 1 if stale else 0
    for name, data in files.items():
        (OUT / name).write_bytes(data)
        print(f"wrote {OUT / name} ({len(data):,} bytes, sha256 "
              f"{hashlib.sha256(data).hexdigest()[:16]}...)")
    tables.clear_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
