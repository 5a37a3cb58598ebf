"""The PNG writer: files that an image library reads back with the same pixels."""

from __future__ import annotations

import zlib

import numpy as np

from hybridver.manipulations.png import png_bytes, write_png


def _decode(data: bytes):
    """Width, height, colour type and the pixel rows of a PNG of ours (one IDAT)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        assert zlib.crc32(kind + body) == int.from_bytes(data[pos + 8 + n:pos + 12 + n], "big")
        chunks[kind] = body
        pos += 12 + n
    w, h = int.from_bytes(chunks[b"IHDR"][:4], "big"), int.from_bytes(chunks[b"IHDR"][4:8], "big")
    raw = zlib.decompress(chunks[b"IDAT"])
    return w, h, chunks[b"IHDR"][9], raw


def test_gray_png_round_trip(tmp_path):
    img = np.array([[0.0, 0.5], [1.0, 2.0]])  # 2.0 is clipped to white
    w, h, color, raw = _decode(png_bytes(img, scale=3))
    assert (w, h, color) == (6, 6, 0)
    rows = [raw[i * 7 + 1:(i + 1) * 7] for i in range(6)]
    assert list(rows[0]) == [0, 0, 0, 128, 128, 128] and list(rows[5]) == [255] * 6
    path = tmp_path / "x.png"
    write_png(path, img[None], 0.0, 1.0)
    try:
        from PIL import Image
    except ImportError:
        return
    assert np.array_equal(np.asarray(Image.open(path)), [[0, 128], [255, 255]])


def test_rgb_png(tmp_path):
    img = np.zeros((3, 2, 2))
    img[0, 0, 0] = 1.0
    w, h, color, raw = _decode(png_bytes(img))
    assert (w, h, color) == (2, 2, 2) and list(raw[1:7]) == [255, 0, 0, 0, 0, 0]
