"""The example input a torch module is traced with, when the caller gives only a spec.

:func:`example_input` makes zeros of ``(1, *sample_shape)``: the shape the caller gives,
or one read from the module's first layer with parameters and the spec's input dimension
``n_inputs`` (``nn.Linear``: ``(1, n)``; ``nn.ConvNd`` with ``C`` input channels:
``(1, C, s, ..., s)`` with ``C * s**N == n``, square images for ``Conv2d``).  Anything
else is refused with a clear error asking for ``input_shape``: a wrong guess would trace
a different network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from hybridver.errors import HybridverInputError


def plain_tensor(value) -> torch.Tensor:
    """``value`` as a tensor cut from autograd (inputs that require grad are accepted)."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    return torch.as_tensor(value)


def _first_layer(module: nn.Module) -> nn.Module | None:
    """The first submodule (in definition order) that owns parameters directly."""
    for sub in module.modules():
        if any(True for _ in sub.parameters(recurse=False)):
            return sub
    return None


def _dtype(module: nn.Module) -> torch.dtype:
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def inferred_shape(module: nn.Module, n_inputs: int) -> tuple[int, ...]:
    """``(1, *sample_shape)`` for ``module`` fed ``n_inputs`` numbers per sample; a
    :class:`HybridverInputError` when the first layer does not tell."""
    name = type(module).__name__
    first = _first_layer(module)
    ask = (f"pass input_shape=(1, ...), the shape of one input with its batch dimension "
           f"({n_inputs} numbers per sample)")
    if isinstance(first, nn.Linear):
        if first.in_features != n_inputs:
            raise HybridverInputError(
                f"cannot infer the input shape of {name}: its first layer "
                f"(Linear, {first.in_features} inputs) does not match the spec's "
                f"{n_inputs} inputs; {ask}")
        return (1, n_inputs)
    conv = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}
    dims = next((d for cls, d in conv.items() if isinstance(first, cls)), None)
    if dims is not None:
        channels = first.in_channels
        side = round((n_inputs / channels) ** (1 / dims)) if n_inputs % channels == 0 else 0
        if side >= 1 and channels * side ** dims == n_inputs:
            return (1, channels, *([side] * dims))
        raise HybridverInputError(
            f"cannot infer the input shape of {name}: {n_inputs} inputs are not "
            f"{channels} channel(s) of a {'square ' if dims == 2 else ''}{dims}-d grid; {ask}")
    kind = "no layer with parameters" if first is None else f"first layer {type(first).__name__}"
    raise HybridverInputError(f"cannot infer the input shape of {name} ({kind}); {ask}")


def example_input(module: nn.Module, n_inputs: int,
                  input_shape: Sequence[int] | None = None) -> torch.Tensor:
    """Zeros of ``input_shape`` (batch dimension included, e.g. ``(1, 1, 28, 28)``) or of
    the shape :func:`inferred_shape` reads from ``module``, in its parameters' dtype."""
    if input_shape is None:
        shape = inferred_shape(module, n_inputs)
    else:
        shape = tuple(int(s) for s in input_shape)
        if not shape or shape[0] != 1 or math.prod(shape[1:]) != n_inputs:
            raise HybridverInputError(
                f"input_shape {shape} does not fit the spec's {n_inputs} inputs: give the "
                f"shape of one input with its batch dimension 1, (1, ...) with "
                f"{n_inputs} numbers after the 1")
    return torch.zeros(shape, dtype=_dtype(module))


def output_size(module: nn.Module, x0) -> int:
    """Numbers per sample the module outputs for an input like ``x0`` (any shape with
    ``x0``'s numbers: a flat vector is reshaped as :func:`inferred_shape` says)."""
    x = plain_tensor(x0)
    shape = tuple(x.shape) if x.dim() >= 2 and x.shape[0] == 1 else None
    example = example_input(module, int(x.numel()), shape)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(example)
    except Exception as exc:  # noqa: BLE001 - the user's module: say what failed
        raise HybridverInputError(f"running {type(module).__name__} on an input of shape "
                                  f"{tuple(example.shape)} failed: {exc}") from None
    finally:
        module.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise HybridverInputError(f"{type(module).__name__} does not return one tensor")
    return int(out.numel())
