"""A :class:`ManipulationSpec` from the user's point, label, families and options."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from hybridver.manipulations.affine import ManipulationError, ManipulationSpec
from hybridver.manipulations.families import apply_families, image_layout, parse_family
from hybridver.manipulations.grid import grid_units

__all__ = ["manipulation_spec"]


def _point(point, n: int) -> np.ndarray:
    if hasattr(point, "detach"):
        point = point.detach().cpu().numpy()
    x0 = np.asarray(point, dtype=np.float64)
    if x0.size != n:
        raise ManipulationError(f"the point has {x0.size} entries (shape {x0.shape}), the "
                                f"model input has {n}")
    x0 = x0.reshape(-1).copy()
    if not np.all(np.isfinite(x0)):
        raise ManipulationError("the point must be finite")
    return x0


def manipulation_spec(point, label: int, families, input_shape, n_classes: int, *,
                      clip=None, grid: int | None = None, image_shape=None,
                      pixel_range=None, norm_cut: bool = True) -> ManipulationSpec:
    """Pointwise safety of ``label`` at ``point`` under the SUM of ``families``.

    ``point``: the input (any shape with the model's number of entries); ``families``:
    texts like ``"brightness=0.1"`` (:mod:`hybridver.manipulations.families`);
    ``input_shape``: the model's per-sample input shape; ``clip``: ``(lo, hi)`` to clip the
    manipulated image to, or None; ``pixel_range``: the valid pixel values (default: the
    clip range, else ``(0, 1)``); ``grid``: steps of the pixel grid (255 for 8-bit), the
    point must then be a grid image; ``image_shape``: ``(H, W)`` or ``(C, H, W)`` when the
    input shape does not say it; ``norm_cut``: add the L1/L2 cuts as network outputs.
    """
    input_shape = tuple(int(d) for d in input_shape)
    n = int(np.prod(input_shape, dtype=np.int64))
    x0 = _point(point, n)
    n_classes = int(n_classes)
    if n_classes < 2:
        raise ManipulationError(f"need a classifier with at least 2 outputs, got {n_classes}")
    if isinstance(label, bool) or int(label) != label or not 0 <= int(label) < n_classes:
        raise ManipulationError(f"label {label!r} is not in 0..{n_classes - 1}")
    if isinstance(families, str):
        families = [families]
    families = tuple(str(f) for f in families)
    rng = clip if pixel_range is None else pixel_range
    rng = (0.0, 1.0) if rng is None else tuple(float(v) for v in rng)
    if clip is not None:
        clip = tuple(float(v) for v in clip)
    for r, what in ((rng, "pixel range"), (clip, "clip range")):
        if r is not None and (len(r) != 2 or not np.all(np.isfinite(r)) or not r[0] < r[1]):
            raise ManipulationError(f"the {what} must be two finite numbers LO < HI, got {r}")
    if grid is not None and (isinstance(grid, bool) or int(grid) != grid or int(grid) < 1):
        raise ManipulationError(f"the grid must be a positive integer, got {grid!r}")
    needs_layout = any(name in ("patch", "occlude")
                       for text in families for name, _ in parse_family(text))
    layout = image_layout(input_shape, image_shape) if (needs_layout or image_shape) else None
    amap = apply_families(x0, families, layout, tuple(Fraction(v) for v in rng))
    spec = ManipulationSpec(x0, input_shape, int(label), n_classes, amap, clip, rng,
                            None if grid is None else int(grid), families, bool(norm_cut))
    if spec.grid is not None:
        grid_units(spec, x0)
    return spec
