"""Exhaustive search over a parameter grid: the reference the verdicts are compared with."""

from __future__ import annotations

import itertools

import numpy as np

from hybridver.manipulations import ManipulationSpec


def parameter_grid(spec: ManipulationSpec, steps: int, limit: int = 20000) -> np.ndarray:
    """``steps`` evenly spaced values per parameter over its box (``steps ** k`` points,
    at most ``limit``), filtered to the norm balls; float64 ``(m, k)``."""
    a = spec.amap
    axes = [np.linspace(lo, hi, steps) for lo, hi in zip(a.lower, a.upper)]
    axes = [np.clip(ax, float(ql), float(qh)) for ax, ql, qh in
            zip(axes, a.exact_lower, a.exact_upper)]
    assert steps ** len(axes) <= limit, "grid too large for an exhaustive search"
    p = np.array(list(itertools.product(*axes)), dtype=np.float64).reshape(-1, len(axes))
    for g in a.norms:
        p = p[g.norm(p) <= g.eps]
    return p


def misclassified(real_model, spec: ManipulationSpec, images: np.ndarray) -> np.ndarray:
    """Which images ``(m, n)`` the real model (float32 input) misclassifies."""
    x = images.reshape(-1, 1, *spec.input_shape).astype(np.float32)
    y = np.stack([np.asarray(real_model(row), dtype=np.float64).reshape(-1) for row in x])
    return spec.misclassified(y)


def grid_counterexample(real_model, spec: ManipulationSpec, steps: int) -> bool:
    """Whether some point of the parameter grid is misclassified."""
    return bool(np.any(misclassified(real_model, spec, spec.images(parameter_grid(spec, steps)))))
