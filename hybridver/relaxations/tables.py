"""Loader for the data tables in ``hybridver/tables/`` (tangent points, branching points).

The tables are DATA, generated offline by ``tools/make_tangent_tables.py`` and listed with
their sha256 in ``hybridver/tables/manifest.json``.  The folder is package data inside
``hybridver`` (no ``__init__.py``, no ``.py`` files), so a source checkout, an editable
install and an installed wheel all find it the same way, through ``importlib.resources``.

Every file is checked against the manifest's sha256 when it is first loaded: a table
that does not match is refused (a corrupted tangent table would give unsound bounds).
Loaded arrays are cached per process; tensors are cached per (table, key, device).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from importlib import resources
from typing import Any

import numpy as np
import torch

PACKAGE_DATA_DIR = "tables"
MANIFEST = "manifest.json"


class TableError(RuntimeError):
    """A data table is missing or does not match its manifest entry."""


def _read_bytes(name: str) -> bytes:
    """The bytes of ``name`` from the package data folder ``hybridver/tables/``."""
    try:
        entry = resources.files("hybridver").joinpath(PACKAGE_DATA_DIR, name)
        if entry.is_file():
            return entry.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        pass
    raise TableError(f"data table {name!r} not found in package data "
                     f"(hybridver/{PACKAGE_DATA_DIR}/)")


@functools.lru_cache(maxsize=None)
def manifest() -> dict[str, Any]:
    """The parsed ``manifest.json``: ``{"files": {name: {"sha256": ..., ...}}, ...}``."""
    return json.loads(_read_bytes(MANIFEST).decode("utf-8"))


@functools.lru_cache(maxsize=None)
def load_npz(name: str) -> dict[str, np.ndarray]:
    """All arrays of the ``.npz`` table ``name``, after checking its sha256."""
    data = _read_bytes(name)
    entry = manifest()["files"].get(name)
    if entry is None:
        raise TableError(f"data table {name!r} is not listed in {MANIFEST}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise TableError(f"data table {name!r} has sha256 {digest}, manifest says "
                         f"{entry['sha256']}: regenerate with tools/make_tangent_tables.py")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {key: npz[key].copy() for key in npz.files}


@functools.lru_cache(maxsize=None)
def tensor(name: str, key: str, device: torch.device) -> torch.Tensor:
    """Array ``key`` of table ``name`` as a float64 tensor on ``device`` (cached, read-only
    by convention: never modify it in place)."""
    array = load_npz(name)[key]
    return torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float64, device=device)


def clear_cache() -> None:
    """Forget every loaded table (used by the generator after it rewrites them)."""
    manifest.cache_clear()
    load_npz.cache_clear()
    tensor.cache_clear()
