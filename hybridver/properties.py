"""Properties for the Python API: :func:`robustness` with the class count read from the
model, so ``hybridver.robustness(x0, eps, label, model=net)`` is enough."""

from __future__ import annotations

from typing import Any

from hybridver.errors import SpecError
from hybridver.specs import Spec
from hybridver.specs import robustness as _robustness


def robustness(x0, eps, label: int, n_classes: int | None = None, *, model: Any = None,
               lower=None, upper=None, name: str | None = None) -> Spec:
    """L_inf robustness of a classifier around ``x0``: a counterexample is an input of the
    ball ``[x0 - eps, x0 + eps]`` (clipped to ``[lower, upper]``) where some class other
    than ``label`` scores at least as high (:func:`hybridver.specs.robustness` says more).

    ``x0``, ``eps``, ``lower``, ``upper``: numbers, arrays or torch tensors (also ones that
    require grad).  ``n_classes``: the number of outputs; when None it is read from
    ``model``: a :class:`hybridver.api.LoadedModel` (its output size), or a
    ``torch.nn.Module`` (run once on an input like ``x0``).
    """
    if n_classes is None:
        if model is None:
            raise SpecError("robustness: give n_classes, or model= to read it from")
        n_classes = _output_count(model, x0)
    return _robustness(x0, eps, label, n_classes, lower=lower, upper=upper, name=name)


def _output_count(model: Any, x0) -> int:
    if hasattr(model, "n_outputs"):  # a LoadedModel
        return int(model.n_outputs)
    import torch

    if not isinstance(model, torch.nn.Module):
        raise SpecError(f"robustness: cannot read the class count from a "
                        f"{type(model).__name__}: give n_classes, or a LoadedModel or "
                        f"torch.nn.Module as model=")
    from hybridver.frontends.torch.example import output_size
    return output_size(model, x0)
