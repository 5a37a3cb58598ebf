"""ONNX -> :class:`~hybridver.ir.graph.NetworkGraph`, and the original model run by onnxruntime.

:func:`load_onnx` reads ``.onnx`` and gzip-compressed ``.onnx.gz`` files, checks them with
the ONNX checker and canonicalizes them into the IR's small static-shaped vocabulary:

* every tensor that does not depend on a graph input (initializers, ``Constant`` nodes,
  shape subgraphs such as ``Shape -> Gather -> Concat -> ConstantOfShape``, ``Equal``,
  ``Where`` and ``Cast`` on constants...) is folded at import time with ONNX's reference
  implementation, in the model's own dtypes, so folded values are exactly what ONNX
  defines.  ``Shape`` of a variable tensor is its static shape (dynamic dims fixed to 1);
* a constant operand of a variable op becomes a ``CONSTANT`` node feeding the op (named
  after the ONNX tensor); weights are stored as float64 numpy arrays;
* ``Gemm`` / ``MatMul`` with a constant 2-D right operand become ``LINEAR`` (weight
  ``(out, in)``, Gemm's ``alpha`` folded in, ``beta * C`` folded as bias when it broadcasts
  over the last axis); Flatten/Squeeze/Unsqueeze/Reshape become ``RESHAPE``, Split becomes
  ``SLICE`` nodes, old-opset Softmax (coerce-to-2-D semantics) becomes
  ``RESHAPE -> SOFTMAX -> RESHAPE``, nearest Upsample/Resize becomes ``UPSAMPLE`` (integer
  scales) or ``GATHER`` nodes (any other nearest index map, as onnxruntime computes it);
  Identity, inference-mode Dropout and Casts that cannot change a value (same type, or
  float16/bfloat16 -> float32 -> float64) are removed; ``Clip`` with constant scalar
  bounds becomes ReLUs (``lo + relu(x - lo) - relu(x - hi)``);
* ops onnxruntime computes differently from any fixed float64 network are refused, never
  dropped: Casts that round (narrowing float, float8, float -> int) on input-dependent
  values, Dropout in training mode, random ops (RandomUniform, RandomNormal, their *Like
  forms, Bernoulli, Multinomial, even on constants), nearest Resize maps that depend on
  float rounding, Resize options not modelled, and pooling with ``auto_pad`` SAME where
  onnxruntime departs from the ONNX definition (dilations; a negative head padding)
  (docs/soundness.md).

IR node names are the ONNX output tensor names (helper nodes get ``<output>/<suffix>``
names); graph inputs and outputs keep their ONNX names.  Only nodes that the graph
outputs depend on are imported.

Errors: a missing, unreadable, truncated or malformed file, or one the ONNX checker
rejects, raises :class:`~hybridver.errors.ModelLoadError` with one readable message;
operators (or operator variants) that cannot be converted raise
:class:`~hybridver.errors.UnsupportedOpError` listing every offending node at once.

Modules: ``reader`` (files, initializers, attributes), ``context`` (import state, helpers),
``importer`` (driver and the op table), one module per op family (``elementwise``,
``linear``, ``normalization``, ``pooling``, ``shape_ops``), ``runtime`` (onnxruntime).
"""

from hybridver.frontends.onnx.importer import load_onnx
from hybridver.frontends.onnx.reader import read_model_bytes, read_onnx_model
from hybridver.frontends.onnx.runtime import (CHECK_TOLERANCE, OnnxRuntimeModel,
                                              compare_ir_with_onnxruntime)

__all__ = ["load_onnx", "read_model_bytes", "read_onnx_model", "OnnxRuntimeModel",
           "CHECK_TOLERANCE", "compare_ir_with_onnxruntime"]
