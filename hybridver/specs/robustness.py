"""Local robustness properties, and writing any Spec back as VNN-LIB.

:func:`robustness` builds the classic VNN-COMP classification property: an L_inf ball
around a flattened input ``x0`` (clipped to the valid input domain) and a counterexample
whenever some other class scores at least as high as the true label.
"""

from __future__ import annotations

import numpy as np

from hybridver.errors import SpecError
from hybridver.specs.spec import InputBox, OutputConstraints, Spec, SpecCase
from hybridver.specs.vnnlib import format_vnnlib, write_vnnlib

__all__ = ["robustness", "write_vnnlib", "format_vnnlib"]


def _array(value) -> np.ndarray:
    """``value`` as float64 numbers; a torch tensor (also one that requires grad, or on a
    GPU) is detached and copied to the CPU first."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _broadcast(value, shape: tuple, n: int, what: str) -> np.ndarray:
    """A scalar, an array of ``x0``'s shape, or a flat ``(n,)`` array -> flat ``(n,)``."""
    arr = _array(value)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape == shape or (arr.ndim == 1 and arr.size == n):
        return arr.reshape(n).copy()
    try:
        return np.broadcast_to(arr, shape).reshape(n).copy()
    except ValueError:
        raise SpecError(f"{what} of shape {arr.shape} does not fit the input of shape "
                        f"{shape} ({n} entries)") from None


def robustness(x0, eps, label: int, n_classes: int, *, lower=None, upper=None,
               name: str | None = None) -> Spec:
    """L_inf robustness of a classifier around ``x0``.

    ``x0``: the input (any shape; it is flattened row-major; a numpy array, a list, or a
    torch tensor, which may require grad).  ``eps`` >= 0: a scalar, or
    one radius per input entry.  ``lower``/``upper``: the valid input domain (scalars or
    arrays like ``x0``); the ball ``[x0 - eps, x0 + eps]`` is clipped to it.  ``label``:
    the true class, ``0 <= label < n_classes``.

    The result has one case whose output condition has one disjunct per class
    ``j != label``: the single row ``y_label - y_j <= 0`` (``C = e_label - e_j``, ``d = 0``),
    i.e. a counterexample is an input in the ball for which class ``j`` scores at least
    as high as the label (ties count as violations).
    """
    x = _array(x0)
    shape, n = x.shape, int(x.size)
    flat = x.reshape(n)
    if n == 0:
        raise SpecError("robustness: x0 is empty")
    if not np.all(np.isfinite(flat)):
        raise SpecError("robustness: x0 must be finite")
    n_classes = int(n_classes)
    if n_classes < 2:
        raise SpecError(f"robustness: need at least 2 classes, got {n_classes}")
    if int(label) != label or not 0 <= int(label) < n_classes:
        raise SpecError(f"robustness: label {label!r} is not in 0..{n_classes - 1}")
    label = int(label)
    radius = _broadcast(eps, shape, n, "eps")
    if not np.all(np.isfinite(radius)) or np.any(radius < 0):
        raise SpecError("robustness: eps must be finite and >= 0")
    lo, hi = flat - radius, flat + radius
    if lower is not None:
        lo = np.maximum(lo, _broadcast(lower, shape, n, "lower"))
    if upper is not None:
        hi = np.minimum(hi, _broadcast(upper, shape, n, "upper"))
    empty = np.nonzero(lo > hi)[0]
    if empty.size:
        i = int(empty[0])
        raise SpecError(f"robustness: the eps-ball misses the input domain at entry {i} "
                        f"(x0 = {flat[i]!r}, clipped bounds {lo[i]!r} > {hi[i]!r})")
    disjuncts = []
    for j in range(n_classes):
        if j == label:
            continue
        row = np.zeros((1, n_classes))
        row[0, label], row[0, j] = 1.0, -1.0
        disjuncts.append(OutputConstraints(row, np.zeros(1)))
    if name is None:
        eps_text = repr(float(radius[0])) if np.ndim(eps) == 0 else "array"
        name = f"robustness(label={label}, eps={eps_text})"
    return Spec((SpecCase(InputBox(lo, hi), tuple(disjuncts)),), n, n_classes, name=name)
