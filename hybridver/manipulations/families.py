"""Manipulation families from their text form, applied to a point as affine maps.

Grammar of one ``--family`` (values are decimals; ``H x W @ ROW , COL`` a patch of ``H``
rows and ``W`` columns whose top-left pixel is ``(ROW, COL)``, 0-based)::

    brightness=D            x0 + b,            b in [-D, D]          (1 parameter)
    contrast=D              c * x0,            c in [1-D, 1+D]       (1 parameter)
    patch=HxW@ROW,COL:D     each patch pixel (every channel) moves by [-D, D]
    occlude=HxW@ROW,COL     each patch pixel takes any value of the pixel range
    linf=E | l1=E | l2=E    per-pixel changes d with |d|_inf / |d|_1 / |d|_2 <= E
    F1>F2>...               F1, then F2 on its result (sequential composition)

Several ``--family`` options are SUMMED: ``x0 + sum_f (f(x0) - x0)``.  A sequential
composition stays affine unless a multiplicative family (contrast) acts on an image
another family already moves: ``contrast`` after ``brightness`` is ``c * (x0 + b)``,
a product of two parameters, and is refused (:class:`ManipulationError`).

Images are ``(C, H, W)`` read row-major from the model's input (leading 1s dropped); a flat
input of ``n = s * s`` entries is one ``s x s`` channel (:func:`image_layout`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from fractions import Fraction

import numpy as np

from hybridver.manipulations.affine import AffineMap, ManipulationError

__all__ = ["FAMILIES", "ImageLayout", "apply_families", "image_layout", "parse_family"]

FAMILIES = ("brightness", "contrast", "patch", "occlude", "linf", "l1", "l2")
_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_PATCH = re.compile(rf"^(\d+)x(\d+)@(\d+),(\d+)(?::({_NUMBER}))?$")


@dataclasses.dataclass(frozen=True)
class ImageLayout:
    """Channels, rows, columns of the flattened input (row-major ``(C, H, W)``)."""

    channels: int
    height: int
    width: int

    @property
    def size(self) -> int:
        return self.channels * self.height * self.width

    def pixel(self, index: int) -> str:
        """``"row,col"`` (``"channel,row,col"`` for several channels) of a flat index."""
        c, rest = divmod(index, self.height * self.width)
        r, k = divmod(rest, self.width)
        return f"{r},{k}" if self.channels == 1 else f"{c},{r},{k}"

    def patch_indices(self, h: int, w: int, row: int, col: int) -> np.ndarray:
        """Flat indices of the patch's pixels in every channel, ``(C * h * w,)``."""
        if h < 1 or w < 1:
            raise ManipulationError(f"patch {h}x{w} is empty")
        if row + h > self.height or col + w > self.width:
            raise ManipulationError(
                f"patch {h}x{w}@{row},{col} does not fit the {self.height}x{self.width} image "
                f"(rows {row}..{row + h - 1}, columns {col}..{col + w - 1})")
        c, r, k = np.meshgrid(np.arange(self.channels), np.arange(row, row + h),
                              np.arange(col, col + w), indexing="ij")
        return ((c * self.height + r) * self.width + k).reshape(-1)


def image_layout(input_shape, image_shape=None) -> ImageLayout:
    """The image layout of a model input of per-sample shape ``input_shape``.

    ``image_shape``: ``(H, W)`` or ``(C, H, W)`` given by the user, else read from the
    shape: its last three axes after leading 1s (``(C, H, W)``), two axes ``(H, W)``, or one
    axis of a square size ``s * s``.
    """
    n = int(np.prod(input_shape, dtype=np.int64))
    if image_shape is not None:
        dims = tuple(int(d) for d in image_shape)
        if len(dims) == 2:
            dims = (1,) + dims
        if len(dims) != 3 or min(dims) < 1 or int(np.prod(dims)) != n:
            raise ManipulationError(f"image shape {tuple(image_shape)} does not fit the "
                                    f"model input of {n} entries (shape {tuple(input_shape)})")
        return ImageLayout(*dims)
    dims = list(input_shape)
    while len(dims) > 1 and dims[0] == 1:
        dims.pop(0)
    if len(dims) >= 3 and all(d == 1 for d in dims[:-3]):
        return ImageLayout(*dims[-3:])
    if len(dims) == 2:
        return ImageLayout(1, *dims)
    side = math.isqrt(n)
    if len(dims) == 1 and side * side == n:
        return ImageLayout(1, side, side)
    raise ManipulationError(f"cannot read the model input of shape {tuple(input_shape)} as "
                            f"an image; give its shape (--image-shape HxW or CxHxW)")


def _value(text: str, what: str) -> Fraction:
    if not re.fullmatch(_NUMBER, text.strip()):
        raise ManipulationError(f"{what}: not a non-negative decimal: {text!r}")
    return Fraction(text.strip())


def parse_family(text: str) -> list[tuple[str, str]]:
    """``"brightness=0.1>patch=2x2@0,0:0.3"`` -> ``[("brightness", "0.1"), ("patch",
    "2x2@0,0:0.3")]``, checking names (values are checked where they are applied)."""
    steps = []
    for part in str(text).split(">"):
        name, sep, arg = part.strip().partition("=")
        name = name.strip().lower()
        if name not in FAMILIES:
            raise ManipulationError(f"unknown manipulation family {name!r} in {text!r} "
                                    f"(known: {', '.join(FAMILIES)})")
        if not sep or not arg.strip():
            raise ManipulationError(f"family {name!r} needs a value ({name}=...) in {text!r}")
        steps.append((name, arg.strip()))
    return steps


def _patch(arg: str, name: str, need_delta: bool):
    m = _PATCH.fullmatch(arg.replace(" ", ""))
    if m is None or (m.group(5) is None) == need_delta:
        form = "HxW@ROW,COL:DELTA" if need_delta else "HxW@ROW,COL"
        raise ManipulationError(f"{name}={arg!r}: expected {name}={form}")
    h, w, row, col = (int(m.group(i)) for i in range(1, 5))
    return h, w, row, col, (Fraction(m.group(5)) if need_delta else None)


def _step(amap: AffineMap, name: str, arg: str, layout: ImageLayout,
          pixel_range: tuple[Fraction, Fraction], done: list[str]) -> AffineMap:
    """``amap`` followed by one family (the family acts on ``amap``'s images)."""
    n = amap.offset.size
    what = f"{name}={arg}"
    if name == "brightness":
        d = _value(arg, what)
        return amap.with_columns(np.ones((n, 1)), -d, d, ["brightness"], name)
    if name == "contrast":
        d = _value(arg, what)
        if np.any(amap.columns != 0):
            raise ManipulationError(
                f"{what} after {'>'.join(done)} is not affine: contrast multiplies an image "
                f"that other parameters already move (c * (x0 + A p)); list the families as "
                f"separate --family options (their changes are summed) instead")
        if d > 1:
            raise ManipulationError(f"{what}: the contrast factor 1-{d} would be negative")
        return amap.with_columns(amap.offset.reshape(n, 1).copy(), -d, d, ["contrast-1"], name)
    if name in ("patch", "occlude"):
        h, w, row, col, d = _patch(arg, name, name == "patch")
        idx = layout.patch_indices(h, w, row, col)
        cols = np.zeros((n, idx.size))
        cols[idx, np.arange(idx.size)] = 1.0
        labels = [f"{name}[{layout.pixel(int(i))}]" for i in idx]
        if name == "patch":
            return amap.with_columns(cols, -d, d, labels, name)
        lo, hi = pixel_range  # occluded pixels: lo + q, q in [0, hi - lo], whatever came before
        columns = amap.columns.copy()
        columns[idx, :] = 0.0
        offset = amap.offset.copy()
        offset[idx] = float(lo)
        moved = dataclasses.replace(amap, offset=offset, columns=columns)
        return moved.with_columns(cols, Fraction(0), hi - lo, labels, name)
    eps = _value(arg, what)
    order = {"linf": None, "l1": 1, "l2": 2}[name]
    labels = [f"{name}[{i}]" for i in range(n)]
    return amap.with_columns(np.eye(n), -eps, eps, labels, name,
                             norm=None if order is None else (order, eps))


def apply_families(x0: np.ndarray, families, layout: ImageLayout | None,
                   pixel_range=(Fraction(0), Fraction(1))) -> AffineMap:
    """The affine map of the SUM of ``families`` (each a text of :func:`parse_family`)
    around the flattened point ``x0``.  ``layout`` is needed by patch families only."""
    x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
    families = list(families)
    if not families:
        raise ManipulationError("no manipulation family given (e.g. --family brightness=0.1)")
    pixel_range = tuple(Fraction(v) for v in pixel_range)
    total = None
    for text in families:
        amap, done = AffineMap.identity(x0), []
        for name, arg in parse_family(text):
            if name in ("patch", "occlude") and layout is None:
                raise ManipulationError(f"{name} needs an image layout")
            amap = _step(amap, name, arg, layout, pixel_range, done)
            done.append(f"{name}={arg}")
        total = amap if total is None else total.plus(amap, x0)
    return total
