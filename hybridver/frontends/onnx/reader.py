"""Reading ONNX files: bytes (gzip or not), the checked ModelProto, initializers, attributes.

Every failure is a :class:`~hybridver.errors.ModelLoadError` with one readable message
naming the file: a missing, unreadable, truncated or malformed file, corrupt gzip data,
missing external tensor data, or a model the ONNX checker rejects.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from hybridver.errors import ModelLoadError

__all__ = ["read_model_bytes", "read_onnx_model", "read_initializers", "node_attributes",
           "one_line"]


def one_line(text: object, limit: int = 300) -> str:
    """First line of a (possibly long, multi-line) message, shortened."""
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def read_model_bytes(path: str | Path) -> bytes:
    """The serialized model in ``path``, gunzipped when it is gzip-compressed."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"model path is not a file: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ModelLoadError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    elif path.suffix == ".gz":
        raise ModelLoadError(f"{path}: file ends in .gz but is not gzip-compressed")
    return data


def read_onnx_model(path: str | Path, check: bool = True) -> onnx.ModelProto:
    """Parse (and by default check) the ONNX model in ``path`` (``.onnx`` or ``.onnx.gz``)."""
    path = Path(path)
    data = read_model_bytes(path)
    if not data:
        raise ModelLoadError(f"{path}: file is empty")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(
            f"{path}: not a valid ONNX model (truncated or malformed protobuf: {exc})") from None
    if not model.HasField("graph") or not model.graph.node and not model.graph.output:
        raise ModelLoadError(f"{path}: not a valid ONNX model (no graph)")
    try:
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
            from onnx.external_data_helper import load_external_data_for_model
            load_external_data_for_model(model, str(path.parent))
    except Exception as exc:  # missing external data file
        raise ModelLoadError(f"{path}: cannot load external tensor data: {exc}") from None
    if check:
        try:
            onnx.checker.check_model(model)
        except Exception as exc:  # onnx.checker.ValidationError and friends
            first = one_line(exc) or type(exc).__name__
            raise ModelLoadError(f"{path}: the ONNX checker rejects the model: {first}") from None
    return model


def read_initializers(graph: onnx.GraphProto, source: str) -> dict[str, np.ndarray]:
    """Every initializer of ``graph`` as a numpy array, in the model's own dtype."""
    values: dict[str, np.ndarray] = {}
    for init in graph.initializer:
        try:
            values[init.name] = numpy_helper.to_array(init)
        except Exception as exc:
            raise ModelLoadError(
                f"{source}: cannot read initializer '{init.name}': {exc}") from None
    return values


def node_attributes(onode: onnx.NodeProto) -> dict[str, Any]:
    """The node's attributes as python values (strings decoded from bytes)."""
    out: dict[str, Any] = {}
    for a in onode.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8", errors="replace")
        out[a.name] = v
    return out
