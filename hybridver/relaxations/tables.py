"""Loader for the data tables shipped in ``encodings/`` (tangent points, branching points).

The tables are DATA, generated offline by ``tools/make_tangent_tables.py`` and listed with
their sha256 in ``encodings/manifest.json``.  They are found

1. as package data ``hybridver/_encodings/`` (``importlib.resources``): in an installed
   wheel the files are copied there; in the source tree ``hybridver/_encodings`` is a
   symbolic link to ``../encodings`` so an editable install finds them the same way;
2. failing that, in ``<source tree>/encodings/`` next to the ``hybridver`` package (a
   checkout where the link was lost, e.g. on a file system without symbolic links).

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
from pathlib import Path
from typing import Any

import numpy as np
import torch

PACKAGE_DATA_DIR = "_encodings"
MANIFEST = "manifest.json"
SOURCE_TREE_DIR = Path(__file__).resolve().parents[2] / "encodings"


class TableError(RuntimeError):
    """A data table is missing or does not match its manifest entry."""


def _read_bytes(name: str) -> bytes:
    """The bytes of ``name`` from the first location that has it (see module docstring)."""
    try:
        entry = resources.files("hybridver").joinpath(PACKAGE_DATA_DIR, name)
        if entry.is_file():
            return entry.read_bytes()
    except (FileNotFoundError, ModuleNotFoundError, NotADirectoryError):
        pass
    path = SOURCE_TREE_DIR / name
    # only a real source tree (never the standard library's ``encodings`` package)
    in_source_tree = ((SOURCE_TREE_DIR.parent / "pyproject.toml").is_file()
                      and not (SOURCE_TREE_DIR / "__init__.py").exists())
    if in_source_tree and path.is_file():
        return path.read_bytes()
    raise TableError(f"data table {name!r} not found in package data "
                     f"(hybridver/{PACKAGE_DATA_DIR}) nor in {SOURCE_TREE_DIR}")


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
