"""Front ends: everything that turns a model file or object into the graph IR.

This package owns the importers and the reference execution of the original model:

* :mod:`hybridver.frontends.onnx`: ONNX (``.onnx`` / ``.onnx.gz``) -> NetworkGraph
  (reader, import driver, one table of op handlers split by op family) and the onnxruntime
  wrapper that confirms counterexamples on the real network;
* :mod:`hybridver.frontends.torch`: ``torch.nn.Module`` -> NetworkGraph via torch.fx, and
  the check of a graph against its module.
* :mod:`hybridver.frontends.model_check`: the check before every run that the IR agrees
  with the real model (onnxruntime or the module) on probe points of the spec's input
  region, naming the first ONNX node that differs when it does not.

It sits just above the IR (:mod:`hybridver.ir`, whose ``GraphBuilder`` it uses to make
nodes) and below everything that reads graphs.  The ONNX surface is re-exported here; the
torch importer (which needs torch.fx) is imported from :mod:`hybridver.frontends.torch`.
"""

from hybridver.frontends.onnx import (CHECK_TOLERANCE, OnnxRuntimeModel,
                                      compare_ir_with_onnxruntime, load_onnx,
                                      read_model_bytes, read_onnx_model)

__all__ = ["load_onnx", "read_model_bytes", "read_onnx_model", "OnnxRuntimeModel",
           "CHECK_TOLERANCE", "compare_ir_with_onnxruntime"]
