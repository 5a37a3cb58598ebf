"""What each fuzzer counts as agreement, and the outcome record they all return.

Every check returns a :class:`Finding` whose ``kind`` is one of

* ``agree``: both sides computed, and they agree (within the tolerance named below);
* ``refused``: hybridver refused the input with one of its clean errors
  (:class:`~hybridver.errors.HybridverInputError` and subclasses, or an
  ``UnsupportedBoundError`` for bounds): allowed, counted;
* ``undecided``: (back ends) no verdict within the time limit: allowed, counted;
* ``invalid``: the generated case is not a valid model (onnxruntime itself rejects it):
  not a test of hybridver, counted apart;
* ``disagree``: a wrong value, shape or verdict: a finding to report;
* ``crash``: a raw Python exception escaped hybridver: a finding to report.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import traceback
from pathlib import Path

import numpy as np

KINDS = ("agree", "refused", "undecided", "invalid", "disagree", "crash")
BAD = ("disagree", "crash")

#: Largest per-sample relative difference (the measure of
#: :func:`hybridver.frontends.onnx.runtime.compare_ir_with_onnxruntime`) accepted between the
#: IR and onnxruntime on the fuzzer's graphs of one to three ops.  Those graphs compute
#: in float32 with an error of a few ``k u |terms|`` (``k`` <= 30 terms, ``u = 2**-24``),
#: i.e. below 1e-6 of the output scale, so 1e-5 leaves ten times that, while an import
#: that drops a float16 rounding (relative error up to ``2**-11`` = 4.9e-4) is still
#: caught.  The load-time check's looser ``CHECK_TOLERANCE`` (1e-3) is reported beside it.
IMPORT_TOLERANCE = 1e-5

#: Bounds against onnxruntime: docs/soundness.md ("Floating point") says the bounds are
#: sound for the real-arithmetic network, and that float32 execution differs from it by
#: about 1e-6 relative.  A sampled onnxruntime output may leave the bounds by at most
#: this much relative to ``max(1, max |y|)`` of its sample.
BOUNDS_ORT_TOLERANCE = 1e-5
#: Bounds against the IR evaluated in float64 (the network the bounds are about): float64
#: evaluation is off by ~1e-15 relative; anything beyond 1e-9 is a real violation.
BOUNDS_F64_TOLERANCE = 1e-9


@dataclasses.dataclass
class Finding:
    kind: str
    detail: str = ""

    def __post_init__(self):
        assert self.kind in KINDS, self.kind


def _short(exc: BaseException) -> str:
    text = [re.sub(r"\S*case\.onnx", "case.onnx", line)
            for line in str(exc).strip().splitlines()]
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _crash(exc: BaseException) -> Finding:
    frames = traceback.extract_tb(exc.__traceback__)
    where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames)
                  if "hybridver" in f.filename), "?")
    return Finding("crash", f"{_short(exc)} at {where}")


def ort_session(model: bytes):
    """An onnxruntime CPU session, one thread, quiet."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 4
    return ort.InferenceSession(model, sess_options=options,
                                providers=["CPUExecutionProvider"])


def check_import(case, n_samples: int = 8, seed: int = 0) -> Finding:
    """The IR of ``case`` (an :class:`~tests.fuzz.import_cases.ImportCase`) against
    onnxruntime on ``n_samples`` uniform inputs in ``[case.low, case.high]``."""
    from hybridver.errors import HybridverInputError
    from hybridver.frontends.onnx import load_onnx
    from hybridver.frontends.onnx.runtime import CHECK_TOLERANCE, compare_ir_with_onnxruntime
    from hybridver.ir.passes import simplify

    try:
        session = ort_session(case.model)
        x = np.zeros(case.input_shape, dtype=np.float32)
        session.run(None, {"x": x})
    except Exception as exc:  # noqa: BLE001 - onnxruntime rejects the generated model
        return Finding("invalid", _short(exc))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "case.onnx"
        path.write_bytes(case.model)
        try:
            graph = simplify(load_onnx(path))
        except HybridverInputError as exc:
            return Finding("refused", _short(exc))
        except Exception as exc:  # noqa: BLE001 - the finding
            return _crash(exc)
        try:
            abs_diff, rel_diff = compare_ir_with_onnxruntime(
                path, graph, n_samples=n_samples, seed=seed, low=case.low, high=case.high)
        except HybridverInputError as exc:
            return Finding("refused", _short(exc))
        except ValueError as exc:
            if "differs from onnxruntime" in str(exc):
                return Finding("disagree", _short(exc))
            return _crash(exc)
        except Exception as exc:  # noqa: BLE001
            return _crash(exc)
    if rel_diff <= IMPORT_TOLERANCE:
        return Finding("agree", f"rel {rel_diff:.2e}")
    caught = "above" if rel_diff > CHECK_TOLERANCE else "below"
    return Finding("disagree", f"max rel diff {rel_diff:.3e} (abs {abs_diff:.3e}), {caught} "
                               f"CHECK_TOLERANCE")


def describe_ops(spec: list[dict]) -> str:
    """A short label of a case's ops, e.g. ``Conv+Relu``."""
    return "+".join(str(step.get("op")) for step in spec)
