"""Running the original ONNX model with onnxruntime, and checking the IR against it.

:class:`OnnxRuntimeModel` is the reference execution used to confirm counterexamples
(a ``sat`` claim must hold on the real network) and to cross-check the importer.  It
speaks the IR's batch convention: ``x`` has shape ``(batch, *input_shape)`` where
``input_shape`` is the model's ONNX input shape with dynamic dimensions fixed to 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hybridver.errors import ModelLoadError
from hybridver.frontends.onnx.importer import load_onnx
from hybridver.frontends.onnx.reader import read_model_bytes
from hybridver.ir.evaluate import evaluate

__all__ = ["CHECK_TOLERANCE", "OnnxRuntimeModel", "compare_ir_with_onnxruntime",
           "output_differences"]

#: Largest ``max_rel_diff`` (see :func:`compare_ir_with_onnxruntime`) for which the IR
#: (evaluated in float64) is taken to agree with onnxruntime (which runs the model in its
#: own dtype: float32 for every shared model).
#:
#: Why 1e-3, and why relative to each sample's largest output: float32 rounds every
#: operation with relative error ~6e-8, but the error that reaches an output is relative
#: to the magnitude of the values computed on the way, not to the output entry itself.
#: Uniform random inputs in [-1, 1] drive the benchmark networks far outside their training
#: range (MNIST nets see negative pixels, logits reach ~1e4; ml4acopf's power-flow layers
#: produce outputs up to ~2e5 next to outputs of order 1, computed by cancellation), so an
#: entry-wise measure ``|diff| / max(1, |ref_i|)`` reaches 9e-4 on float32 noise alone
#: (mnist5x20_leaky_relu, 300-bus ml4acopf), while the per-sample measure used here stays
#: below 6e-5 on every shared model over 40 seeds x 20 samples (worst: dist_shift
#: mnist_concat 5.6e-5, 300-bus ml4acopf 6.6e-6, most models 1e-7..1e-5).  Conversion
#: mistakes (a wrong axis, a transposed weight, a lost bias, wrong padding or softmax
#: grouping) give errors of order 1e-2..1 on that same scale.  1e-3 leaves more than an
#: order of magnitude of room on both sides.
CHECK_TOLERANCE = 1e-3

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
}


def _static(shape) -> tuple[int, ...]:
    """ONNX (onnxruntime) shape with dynamic/unknown dimensions fixed to 1."""
    if shape is None:
        return ()
    return tuple(int(d) if isinstance(d, int) and d > 0 else 1 for d in shape)


class OnnxRuntimeModel:
    """An onnxruntime CPU session for a ``.onnx`` / ``.onnx.gz`` model with one input.

    ``input_shape`` / ``output_shape`` are the ONNX shapes with dynamic dims fixed to 1
    (the output shape is measured by running one zero sample, so it is always concrete).
    Calling the model with ``x: (batch, *input_shape)`` returns ``(batch, *output_shape)``
    float64 (the first output only).  When the ONNX batch dimension is dynamic the whole
    batch runs in one session call (checked once against a single-sample run; models that
    silently hard-code batch 1 fall back to a loop), otherwise samples run one by one.
    """

    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime as ort  # heavy: imported when a session is made

        self.path = Path(path)
        data = read_model_bytes(self.path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(data, sess_options=options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"{self.path}: onnxruntime cannot load the model: {first}"
                                 ) from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelLoadError(f"{self.path}: model has {len(inputs)} inputs; exactly one is "
                                 "supported")
        inp = inputs[0]
        if inp.type not in _DTYPES:
            raise ModelLoadError(f"{self.path}: input '{inp.name}' has unsupported type "
                                 f"{inp.type}")
        self.input_name: str = inp.name
        self.input_dtype = np.dtype(_DTYPES[inp.type])
        self.input_shape: tuple[int, ...] = _static(inp.shape)
        out = self.session.get_outputs()[0]
        self.output_name: str = out.name
        declared_batch_dynamic = bool(out.shape) and not (isinstance(out.shape[0], int)
                                                          and out.shape[0] > 0)
        self._batchable = (bool(inp.shape) and not (isinstance(inp.shape[0], int)
                                                    and inp.shape[0] > 0)
                           and declared_batch_dynamic)
        self._batch_checked = False
        zero = np.zeros(self.input_shape, dtype=self.input_dtype)
        self.output_shape: tuple[int, ...] = tuple(self._run(zero).shape)
        if self._batchable and (not self.input_shape or not self.output_shape
                                or self.output_shape[0] != 1 or self.input_shape[0] != 1):
            self._batchable = False

    def _run(self, feed: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run([self.output_name], {self.input_name: feed})[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"expected inputs of shape (batch, *{self.input_shape}), got "
                             f"{x.shape}")
        batch = x.shape[0]
        feed = np.ascontiguousarray(x.astype(self.input_dtype))
        if batch == 0:
            return np.zeros((0, *self.output_shape))
        if self._batchable and batch > 1:
            y = self._run_batched(feed)
            if y is not None:
                return y
        return np.stack([self._run(feed[i]).reshape(self.output_shape)
                         for i in range(batch)]).astype(np.float64)

    def _run_batched(self, feed: np.ndarray) -> np.ndarray | None:
        batch = feed.shape[0]
        try:
            y = self._run(feed.reshape(batch, *self.input_shape[1:]))
        except Exception:
            self._batchable = False
            return None
        if tuple(y.shape) != (batch, *self.output_shape[1:]):
            self._batchable = False
            return None
        y = y.reshape(batch, *self.output_shape).astype(np.float64)
        if not self._batch_checked:
            single = self._run(feed[0]).astype(np.float64).reshape(self.output_shape)
            scale = max(1.0, float(np.nanmax(np.abs(single), initial=0.0)))
            close = np.abs(y[0] - single) <= CHECK_TOLERANCE * scale
            if not bool(np.all(close | (np.isnan(y[0]) & np.isnan(single)))):
                self._batchable = False
                return None
            self._batch_checked = True
        return y


def output_differences(ours: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample differences of two output batches ``(batch, ...)`` of the same size.

    Returns ``(abs_diff, rel_diff)``, each of shape ``(batch,)``: ``max_i |ours_i - ref_i|``
    and that divided by ``max(1, max_j |ref_j|)`` (the sample's largest finite reference
    magnitude; see :data:`CHECK_TOLERANCE`).  Entries where both sides are NaN, or equal
    infinities, count as equal; a NaN or infinity on one side only gives ``inf``.
    """
    batch = ref.shape[0]
    ours = np.asarray(ours, dtype=np.float64).reshape(batch, -1)
    ref = np.asarray(ref, dtype=np.float64).reshape(batch, -1)
    if ref.shape[1] == 0:
        return np.zeros(batch), np.zeros(batch)
    with np.errstate(invalid="ignore", over="ignore"):
        same = (ours == ref) | (np.isnan(ours) & np.isnan(ref))  # equal infinities, both NaN
        diff = np.where(same, 0.0, np.abs(ours - ref))
        diff = np.where(np.isfinite(diff), diff, np.inf)
        finite_ref = np.where(np.isfinite(ref), np.abs(ref), 0.0)
        scale = np.maximum(1.0, finite_ref.max(axis=1))
        worst = diff.max(axis=1)
        return worst, worst / scale


def compare_ir_with_onnxruntime(path: str | Path, graph=None, n_samples: int = 20,
                                seed: int = 0, low: float = -1.0, high: float = 1.0,
                                points: np.ndarray | None = None) -> tuple[float, float]:
    """Largest differences between the IR ``graph`` and onnxruntime on random inputs.

    ``n_samples`` inputs are drawn uniformly from ``[low, high]`` (numpy ``default_rng``
    with ``seed``), or ``points`` (``(n, n_inputs)``, e.g. probe points of a spec's input
    region) are used instead; they are rounded to the model's input dtype and both sides
    get exactly those values.  ``graph`` defaults to ``load_onnx(path)``.  With ``ref[s]``
    onnxruntime's output for sample ``s`` and ``ir[s]`` the IR's float64 output, returns::

        max_abs_diff = max_s max_i |ir[s]_i - ref[s]_i|
        max_rel_diff = max_s max_i |ir[s]_i - ref[s]_i| / max(1, max_j |ref[s]_j|)

    i.e. ``max_rel_diff`` is each sample's worst error relative to that sample's largest
    output magnitude (an absolute error when all outputs are below 1), the normwise
    measure that float32 rounding noise is bounded by (see :data:`CHECK_TOLERANCE`).
    Entries where both sides are NaN count as equal; a NaN or infinity on one side only
    gives ``inf``.  Agreement means ``max_rel_diff <= CHECK_TOLERANCE``.
    """
    if graph is None:
        graph = load_onnx(path)
    model = OnnxRuntimeModel(path)
    in_shape = graph.input_node.shape
    if tuple(in_shape) != model.input_shape:
        raise ValueError(f"IR input shape {in_shape} differs from onnxruntime's "
                         f"{model.input_shape}")
    if points is None:
        rng = np.random.default_rng(seed)
        x = rng.uniform(low, high, size=(n_samples, *in_shape))
    else:
        x = np.asarray(points, dtype=np.float64).reshape(-1, *in_shape)
    x = x.astype(model.input_dtype)
    ref = model(x)
    ours = evaluate(graph, x.astype(np.float64)).detach().cpu().numpy()
    if ours.shape != ref.shape:
        raise ValueError(f"IR output shape {ours.shape[1:]} differs from onnxruntime's "
                         f"{ref.shape[1:]}")
    if ref.size == 0:
        return 0.0, 0.0
    abs_diff, rel_diff = output_differences(ours, ref)
    return float(abs_diff.max()), float(rel_diff.max())
