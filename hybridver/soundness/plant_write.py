"""Writing a planted benchmark: ONNX export, VNN-LIB properties, the CSV files, the sealed
witnesses and the report.

Layout (the contract ``hybridver crosscheck`` reads)::

    OUT_DIR/onnx/<model>.onnx
    OUT_DIR/vnnlib/<instance>.vnnlib
    OUT_DIR/instances.csv            onnx/<m>.onnx,vnnlib/<i>.vnnlib,<timeout_s>  (no header)
    OUT_DIR/expected_results.csv     onnx,vnnlib,timeout_s,expected,files_present
    OUT_DIR/plant_report.json        settings, seeds, training times, attack results, counts
    SEALED/witnesses.json            outside OUT_DIR (default OUT_DIR-sealed/)

Instance names do not tell planted from clean ones (``<model>_prop_<k>``, in a shuffled
order); only ``expected_results.csv`` and the sealed file do.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from hybridver.specs import Spec, robustness

__all__ = ["WITNESS_FORMAT", "export_onnx", "box_spec", "write_tables", "write_witnesses",
           "write_report"]

WITNESS_FORMAT = "hybridver-witnesses/1"

#: the ONNX opset of the exported models (GELU is written with Erf, Softmax per axis)
OPSET = 13


def export_onnx(model: torch.nn.Module, shape: tuple, path: Path) -> Path:
    """Export ``model`` with one input ``X`` of shape ``(1, *shape)`` (batch fixed to 1, as
    VNN-COMP models are) and one output ``Y`` ``(1, n_classes)``, float32."""
    model = model.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, *shape), buffer, input_names=["X"],
                          output_names=["Y"], opset_version=OPSET, dynamo=False)
    path.write_bytes(buffer.getvalue())
    return path


def box_spec(lower: np.ndarray, upper: np.ndarray, label: int, n_classes: int,
             name: str) -> Spec:
    """The robustness property of one box: every input in ``[lower, upper]`` (flat ``(n,)``)
    must score ``label`` strictly highest; a counterexample is a point where some other
    class scores at least as high."""
    center = (lower + upper) / 2
    radius = float(np.max(upper - lower))  # wide enough; the box is cut to [lower, upper]
    return robustness(center, radius, int(label), n_classes, lower=lower, upper=upper,
                      name=name)


def write_tables(out_dir: Path, rows: list[dict], timeout_s: float) -> None:
    """``instances.csv`` and ``expected_results.csv``; ``rows``: ``{"onnx", "vnnlib",
    "expected"}`` with paths relative to ``out_dir``."""
    timeout = f"{timeout_s:g}"
    with open(out_dir / "instances.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        for row in rows:
            writer.writerow([row["onnx"], row["vnnlib"], timeout])
    with open(out_dir / "expected_results.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["onnx", "vnnlib", "timeout_s", "expected", "files_present"])
        for row in rows:
            writer.writerow([row["onnx"], row["vnnlib"], timeout, row["expected"], "yes"])


def write_witnesses(path: Path, benchmark: str, witnesses: list[dict]) -> None:
    """The sealed file: ``{"format", "benchmark", "instances": [{"onnx", "vnnlib", "x",
    "y", "margin"}]}``; ``x``: the flat input onnxruntime ran, ``y``: its flat output,
    ``margin``: ``max(C y + d)`` of the most violated disjunct (< 0: violated)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": WITNESS_FORMAT, "benchmark": benchmark, "instances": witnesses}
    path.write_text(json.dumps(data, indent=1) + "\n")


def write_report(path: Path, report: dict) -> None:
    path.write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")
