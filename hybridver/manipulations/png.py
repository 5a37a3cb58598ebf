"""A small PNG writer (zlib only): grayscale or RGB images of manipulated inputs."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["png_bytes", "write_png"]


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png_bytes(image: np.ndarray, lo: float = 0.0, hi: float = 1.0, scale: int = 1) -> bytes:
    """PNG file contents of ``image`` ``(H, W)`` (gray) or ``(C, H, W)`` with C in {1, 3}:
    values mapped linearly from ``[lo, hi]`` to 0..255 (clipped); every pixel drawn as a
    ``scale x scale`` block (small images stay visible)."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[0] in (1, 3):
        img = np.moveaxis(img, 0, -1)
        if img.shape[-1] == 1:
            img = img[..., 0]
    if img.ndim not in (2, 3):
        raise ValueError(f"cannot write an image of shape {np.shape(image)} as PNG")
    span = (hi - lo) or 1.0
    px = np.clip(np.rint((img - lo) / span * 255.0), 0, 255).astype(np.uint8)
    px = np.repeat(np.repeat(px, scale, axis=0), scale, axis=1)
    color = 2 if px.ndim == 3 else 0
    height, width = px.shape[:2]
    rows = px.reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b""))


def write_png(path, image: np.ndarray, lo: float = 0.0, hi: float = 1.0,
              scale: int = 1) -> None:
    """Write :func:`png_bytes` to ``path``."""
    Path(path).write_bytes(png_bytes(image, lo, hi, scale))
