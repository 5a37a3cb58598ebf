"""VNN-COMP instance lists: ``instances.csv`` and ``expected_results.csv``.

``instances.csv`` has rows ``onnx, vnnlib, timeout`` (no header; a first row starting with
``onnx`` is skipped) with paths relative to a root folder (by default the CSV's own).
Files named without ``.gz`` may exist only as ``.gz`` copies (:func:`existing_file`).
``expected_results.csv`` (header ``onnx, vnnlib, ..., expected``) gives known answers.
Read by ``hybridver run-instances`` and ``hybridver crosscheck``.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from hybridver.errors import HybridverInputError

__all__ = ["Instance", "read_instances", "read_expected", "strip_gz", "existing_file"]


@dataclasses.dataclass(frozen=True)
class Instance:
    onnx: str
    vnnlib: str
    timeout_s: float


def read_instances(path: Path) -> list[Instance]:
    if not path.is_file():
        raise HybridverInputError(f"file not found: {path}")
    instances = []
    with path.open(newline="", encoding="utf-8-sig") as handle:  # a BOM is not a cell
        for line_no, row in enumerate(csv.reader(handle), start=1):
            row = [cell.strip() for cell in row]
            if not row or not any(row) or row[0].startswith("#"):
                continue
            if line_no == 1 and row[0].lower() == "onnx":
                continue  # header
            if len(row) < 3:
                raise HybridverInputError(f"{path}:{line_no}: expected 'onnx,vnnlib,timeout'")
            try:
                timeout = float(row[2])
            except ValueError:
                raise HybridverInputError(
                    f"{path}:{line_no}: timeout '{row[2]}' is not a number") from None
            instances.append(Instance(row[0], row[1], timeout))
    return instances


def read_expected(path: Path) -> dict[tuple[str, str], str]:
    """``{(onnx, vnnlib): expected}`` from an expected_results.csv, or {} when absent
    (names without ``.gz``)."""
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8-sig") as handle:  # a BOM is not a cell
        return {(strip_gz(r["onnx"]), strip_gz(r["vnnlib"])): r["expected"].strip().lower()
                for r in csv.DictReader(handle) if r.get("expected")}


def strip_gz(name: str) -> str:
    name = name.strip()
    return name[:-3] if name.endswith(".gz") else name


def existing_file(path: str | Path) -> Path:
    """``path``, or its gzip copy ``path.gz`` when only that exists (as VNN-COMP's folders
    keep them); :class:`HybridverInputError` when neither does."""
    path = Path(path)
    if path.exists():
        return path
    gz = path.with_name(path.name + ".gz")
    if gz.exists():
        return gz
    raise HybridverInputError(f"file not found: {path}")
