"""Differentiable bounds for certified training: IBP, CROWN-IBP and CROWN on a torch module.

:func:`for_training` bounds ``C f(x')`` for every ``x'`` of the L-inf boxes around a
batch ``x`` and returns bounds that are differentiable functions of the module's
parameters (and of ``x`` and ``eps``), on whatever device the module and ``x`` live: a
training loss can be built on them (Gowal et al. 2018; Zhang et al., ICLR 2020).

Why not :func:`~hybridver.bounds.engine.compute_bounds` itself: the engine reads the
network from the IR (:class:`~hybridver.ir.graph.NetworkGraph`), whose weights are frozen
float64 numpy copies, runs under ``torch.no_grad`` and subtracts rigorous rounding margins
(:mod:`hybridver.bounds.crown`).  Here the module's layers are read once into a short
program of steps (:func:`program`; cached per module, parameters read live at every call)
and walked with the engine's formulas: IBP in centre/radius form as
:mod:`hybridver.bounds.intervals`, CROWN's backward rule ``lam+ * lower_slope + lam- *
upper_slope`` with the engine's own relaxations (:func:`hybridver.relaxations.base.get_relaxation`:
the same adaptive ReLU slope and sigmoid/tanh tangent tables), the engine's choice of
which pre-activation neurons CROWN tightens (the unstable ones, intersected with IBP),
and the final bounds intersected with IBP as the engine does.  What is left out is the
rounding analysis: these bounds equal the engine's to rounding (``tests/bounds/
test_training.py`` checks it), but they are NOT a proof; the verifier decides that, with
its margins (``docs/certified_training.md``).

Shapes: ``x (B, *in_shape)``, ``C (B or 1, m, n_out)``, bounds ``(B, m)``; inside, CROWN
coefficients ``lam: (m, B, *node shape)``.
"""

from __future__ import annotations

import dataclasses
import enum
import weakref
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from hybridver.errors import DimensionMismatchError, UnsupportedOpError
from hybridver.ir.ops import OpKind
from hybridver.relaxations.base import LinearBounds, get_relaxation

Tensor = torch.Tensor


class TrainingMethod(str, enum.Enum):
    """IBP: interval bounds everywhere; CROWN_IBP: IBP intermediate bounds, one CROWN pass
    for the output rows; CROWN: CROWN at every pre-activation (unstable neurons) too."""

    IBP = "ibp"
    CROWN_IBP = "crown-ibp"
    CROWN = "crown"


@dataclasses.dataclass(frozen=True)
class TrainingBoundConfig:
    """Settings of :func:`for_training`.

    ``method``: a :class:`TrainingMethod`; ``bound_upper``: also the upper bounds (CROWN
    methods: twice the rows of the final pass); ``intersect_ibp``: the final CROWN rows
    are intersected with the IBP rows (the engine's choice, tighter; False: the CROWN rows
    alone, as CROWN-IBP training usually takes them); ``fold_spec``: the IBP rows come
    from ``C W`` of a last Linear layer on ``(B, n)`` inputs instead of the box of its
    output (tighter; not the engine's IBP, so False where the two are compared).
    """

    method: TrainingMethod = TrainingMethod.IBP
    bound_upper: bool = True
    intersect_ibp: bool = True
    fold_spec: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", TrainingMethod(self.method))


@dataclasses.dataclass(frozen=True)
class TrainingBounds:
    """``lower <= C f(x') <= upper`` for every ``x'`` of sample ``b``'s box, each ``(B, m)``
    (``upper`` None when not asked for); ``ibp_lower``/``ibp_upper``: the IBP rows of the
    same computation (for the IBP / CROWN-IBP mix of Zhang et al.), ``(B, m)``."""

    lower: Tensor
    upper: Tensor | None
    ibp_lower: Tensor
    ibp_upper: Tensor


@dataclasses.dataclass(frozen=True)
class Step:
    """One layer: ``kind`` is ``"linear"``, ``"conv"``, ``"reshape"`` or ``"act"`` (then
    ``op`` and ``attrs`` name its relaxation)."""

    kind: str
    module: nn.Module
    op: OpKind | None = None
    attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)


_ACTIVATIONS = {nn.ReLU: OpKind.RELU, nn.Sigmoid: OpKind.SIGMOID, nn.Tanh: OpKind.TANH,
                nn.LeakyReLU: OpKind.LEAKY_RELU}
_PROGRAMS: "weakref.WeakKeyDictionary[nn.Module, tuple[Step, ...]]" = \
    weakref.WeakKeyDictionary()


def _read(module: nn.Module, path: str, steps: list[Step], bad: list[tuple[str, str]]) -> None:
    if isinstance(module, nn.Sequential):
        for name, child in module.named_children():
            _read(child, f"{path}.{name}" if path else name, steps, bad)
        return
    kind = type(module).__name__
    if isinstance(module, nn.Linear):
        steps.append(Step("linear", module))
    elif isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros" or isinstance(module.padding, str):
            bad.append((f"torch.nn.Conv2d with padding {module.padding!r} "
                        f"({module.padding_mode})", path))
        else:
            steps.append(Step("conv", module))
    elif isinstance(module, (nn.Flatten, nn.Unflatten)):
        steps.append(Step("reshape", module))
    elif isinstance(module, nn.Identity):
        pass
    elif type(module) in _ACTIVATIONS:
        attrs = {}
        if isinstance(module, nn.LeakyReLU):
            attrs["alpha"] = float(module.negative_slope)
            if attrs["alpha"] < 0:  # not monotone: the interval rule does not hold
                bad.append(("torch.nn.LeakyReLU with a negative slope", path))
        steps.append(Step("act", module, _ACTIVATIONS[type(module)], attrs))
    else:
        bad.append((f"torch.nn.{kind}" if type(module).__module__.startswith("torch.nn")
                    else kind, path or "<module>"))


def program(module: nn.Module) -> tuple[Step, ...]:
    """The steps of ``module`` (nested ``nn.Sequential`` of Linear, Conv2d, Flatten,
    Unflatten, Identity, ReLU, LeakyReLU (slope >= 0), Sigmoid, Tanh), cached per module.
    Raises :class:`~hybridver.errors.UnsupportedOpError` listing every other layer."""
    if module not in _PROGRAMS:
        steps: list[Step] = []
        bad: list[tuple[str, str]] = []
        _read(module, "", steps, bad)
        if bad:
            raise UnsupportedOpError(bad, type(module).__name__, kind="layer for training bounds")
        _PROGRAMS[module] = tuple(steps)
    return _PROGRAMS[module]


# ------------------------------------------------------------------------------- IBP


def _ibp_step(step: Step, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Interval of a step's output from its input's, ``(B, *shape)`` each (the engine's
    rules without the outward rounding)."""
    mod = step.module
    if step.kind == "act":  # non-decreasing (LeakyReLU slope >= 0 is checked)
        f = get_relaxation(step.op).function  # not the module: ReLU(inplace=True) would
        return f(lo, step.attrs), f(hi, step.attrs)  # overwrite the boxes
    if step.kind == "reshape":
        return mod(lo), mod(hi)
    c, r = (hi + lo) / 2, (hi - lo) / 2
    if step.kind == "linear":
        return _centre_radius(F.linear(c, mod.weight, mod.bias), F.linear(r, mod.weight.abs()))
    centre = F.conv2d(c, mod.weight, mod.bias, mod.stride, mod.padding, mod.dilation, mod.groups)
    radius = F.conv2d(r, mod.weight.abs(), None, mod.stride, mod.padding, mod.dilation,
                      mod.groups)
    return _centre_radius(centre, radius)


def _centre_radius(centre: Tensor, radius: Tensor) -> tuple[Tensor, Tensor]:
    return centre - radius, centre + radius


def _ibp_rows(lo: Tensor, hi: Tensor, C: Tensor) -> tuple[Tensor, Tensor]:
    """Bounds ``(B, m)`` of ``C y`` over the box ``[lo, hi]`` of ``y`` ``(B, n_out)``."""
    low = (C.clamp(min=0) * lo[:, None] + C.clamp(max=0) * hi[:, None]).sum(-1)
    up = (C.clamp(min=0) * hi[:, None] + C.clamp(max=0) * lo[:, None]).sum(-1)
    return low, up


def _folded_rows(step: Step, lo: Tensor, hi: Tensor, C: Tensor) -> tuple[Tensor, Tensor]:
    """IBP of ``C (W z + b)`` as one layer ``(C W) z + C b`` over the box of ``z``."""
    mod = step.module
    w = torch.matmul(C, mod.weight)                            # (B or 1, m, n_in)
    c, r = ((hi + lo) / 2)[:, :, None], ((hi - lo) / 2)[:, :, None]
    centre = torch.matmul(w, c)[..., 0]
    if mod.bias is not None:
        centre = centre + torch.matmul(C, mod.bias)
    radius = torch.matmul(w.abs(), r)[..., 0]
    return centre - radius, centre + radius


# ----------------------------------------------------------------------------- CROWN


def _relax(step: Step, lo: Tensor, hi: Tensor) -> LinearBounds:
    """The engine's relaxation of an activation on its input interval ``(B, *shape)``."""
    return get_relaxation(step.op).bounds(lo, hi, step.attrs)


def backward(steps: tuple[Step, ...], boxes: list[tuple[Tensor, Tensor]],
             relaxed: Mapping[int, LinearBounds], last: int, lam: Tensor) -> Tensor:
    """CROWN lower bounds ``(m, B)`` of ``<lam, z>`` over the input box, ``z`` the output of
    step ``last`` and ``lam: (m, B, *z.shape[1:])``.

    ``boxes[i]``: the interval of step ``i``'s input (``boxes[0]`` the input box);
    ``relaxed[i]``: linear bounds of activation step ``i`` on ``boxes[i]``.  Sound in real
    arithmetic: each linear step is exact (``<lam, W z + b> = <lam W, z> + <lam, b>``),
    each activation's lines hold on its interval (``lam+`` takes the lower line, ``lam-``
    the upper one), and the input is concretized at the box's ends.
    """
    m, b = lam.shape[:2]
    const = torch.zeros((m, b), dtype=lam.dtype, device=lam.device)
    for i in range(last, -1, -1):
        step, mod = steps[i], steps[i].module
        in_shape = boxes[i][0].shape[1:]
        if step.kind == "linear":
            if mod.bias is not None:
                const = const + torch.matmul(lam, mod.bias)
            lam = torch.matmul(lam, mod.weight)
        elif step.kind == "conv":
            if mod.bias is not None:
                const = const + (lam.sum((-2, -1)) * mod.bias).sum(-1)
            lam = _conv_transpose(mod, lam.reshape(m * b, *lam.shape[2:]), in_shape)
            lam = lam.reshape(m, b, *in_shape)
        elif step.kind == "reshape":
            lam = lam.reshape(m, b, *in_shape)
        else:
            lines = relaxed[i]
            pos, neg = lam.clamp(min=0), lam.clamp(max=0)
            const = const + (pos * lines.lower_bias + neg * lines.upper_bias).flatten(2).sum(-1)
            lam = pos * lines.lower_slope + neg * lines.upper_slope
    lo, hi = boxes[0]
    return const + (lam.clamp(min=0) * lo + lam.clamp(max=0) * hi).flatten(2).sum(-1)


def _conv_transpose(mod: nn.Conv2d, lam: Tensor, in_shape: torch.Size) -> Tensor:
    """``lam J`` for the convolution ``J`` (without bias): ``(k, C_out, H', W') ->
    (k, C_in, H, W)``; ``output_padding`` restores the input rows a stride skipped."""
    extra = []
    for size, out, s, p, d, k in zip(in_shape[1:], lam.shape[2:], mod.stride, mod.padding,
                                     mod.dilation, mod.kernel_size):
        extra.append(size - ((out - 1) * s - 2 * p + d * (k - 1) + 1))
    return F.conv_transpose2d(lam, mod.weight, None, mod.stride, mod.padding, tuple(extra),
                              mod.groups, mod.dilation)


def _tighten(steps: tuple[Step, ...], boxes: list[tuple[Tensor, Tensor]],
             relaxed: Mapping[int, LinearBounds], last: int, lo: Tensor, hi: Tensor
             ) -> tuple[Tensor, Tensor]:
    """The engine's CROWN intermediate bounds of step ``last``'s output (a pre-activation,
    interval ``lo, hi``): only the neurons that cross the consumer's breakpoint (ReLU,
    LeakyReLU: 0) or (sigmoid, tanh) have a positive width are recomputed, and a sample
    takes the CROWN value only where its own neuron is such, intersected with IBP."""
    b = lo.shape[0]
    flat_lo, flat_hi = lo.reshape(b, -1), hi.reshape(b, -1)
    traits = get_relaxation(steps[last + 1].op).traits
    if traits.piecewise_linear and traits.breakpoints:
        use = torch.zeros_like(flat_lo, dtype=torch.bool)
        for point in traits.breakpoints:
            use |= (flat_lo < point) & (point < flat_hi)
    else:
        use = flat_lo < flat_hi
    rows = torch.nonzero(use.any(0)).reshape(-1)
    k = rows.numel()
    if k == 0:
        return lo, hi
    lam = torch.zeros((2 * k, b, flat_lo.shape[1]), dtype=lo.dtype, device=lo.device)
    ar = torch.arange(k, device=lo.device)
    lam[ar, :, rows] = 1.0
    lam[ar + k, :, rows] = -1.0
    result = backward(steps, boxes, relaxed, last, lam.reshape(2 * k, b, *lo.shape[1:]))
    sel = use[:, rows]
    new_lo = torch.where(sel, torch.maximum(flat_lo[:, rows], result[:k].T), flat_lo[:, rows])
    new_hi = torch.where(sel, torch.minimum(flat_hi[:, rows], -result[k:].T), flat_hi[:, rows])
    out_lo, out_hi = flat_lo.clone(), flat_hi.clone()
    out_lo[:, rows], out_hi[:, rows] = new_lo, new_hi
    return out_lo.reshape(lo.shape), out_hi.reshape(hi.shape)


# ----------------------------------------------------------------------------- entry


def input_box(x: Tensor, eps: float | Tensor, clip: tuple[Any, Any] | None = None
              ) -> tuple[Tensor, Tensor]:
    """``[x - eps, x + eps]`` (optionally intersected with ``[clip[0], clip[1]]``); ``eps``
    a number, a ``(B,)`` tensor (one radius per sample) or a tensor broadcastable to
    ``x``.  Raises :class:`~hybridver.errors.DimensionMismatchError` on other shapes."""
    eps_t = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    if eps_t.dim() == 1 and x.dim() > 1 and eps_t.shape[0] == x.shape[0]:
        eps_t = eps_t.reshape(-1, *([1] * (x.dim() - 1)))
    try:
        lo, hi = x - eps_t, x + eps_t
    except RuntimeError:
        raise DimensionMismatchError(f"eps of shape {tuple(eps_t.shape)} does not fit x of "
                                     f"shape {tuple(x.shape)}") from None
    if bool((eps_t < 0).any()):
        raise ValueError("eps must be >= 0")
    if clip is not None:
        lo = torch.maximum(lo, torch.as_tensor(clip[0], dtype=x.dtype, device=x.device))
        hi = torch.minimum(hi, torch.as_tensor(clip[1], dtype=x.dtype, device=x.device))
        hi = torch.maximum(lo, hi)
    return lo, hi


def _spec(C: Tensor | None, b: int, n_out: int, like: Tensor) -> Tensor:
    if C is None:
        return torch.eye(n_out, dtype=like.dtype, device=like.device)[None]
    Ct = torch.as_tensor(C, dtype=like.dtype, device=like.device)
    Ct = Ct[None] if Ct.dim() == 2 else Ct
    if Ct.dim() != 3 or Ct.shape[-1] != n_out or Ct.shape[0] not in (1, b):
        raise DimensionMismatchError(f"C must be (m, {n_out}) or ({b}, m, {n_out}), "
                                     f"got {tuple(Ct.shape)}")
    return Ct


def for_training(module: nn.Module, x: Tensor, eps: float | Tensor,
                 method: str | TrainingMethod = TrainingMethod.IBP, C: Tensor | None = None,
                 *, clip: tuple[Any, Any] | None = None,
                 config: TrainingBoundConfig | None = None) -> TrainingBounds:
    """Differentiable bounds of ``C f(x')`` over the L-inf boxes around ``x``.

    ``module``: see :func:`program`; ``x: (B, *in_shape)`` on the module's device and in
    its dtype; ``eps``, ``clip``: :func:`input_box`; ``method``: ``"ibp"``,
    ``"crown-ibp"`` or ``"crown"`` (overrides ``config.method``); ``C: (m, n_out)`` or
    ``(B, m, n_out)``, default the identity (bounds of every output).  The module's mode
    (train/eval) does not matter: only the listed layers are accepted.

    Equal to :func:`~hybridver.bounds.engine.compute_bounds` with the matching method
    (IBP; CROWN with IBP intermediate bounds; CROWN) up to rounding: in float64 the two
    differ by the engine's rounding margins and summation order (about ``1e-13``; the
    tests allow ``1e-9 (1 + |bound|)``); a float32 module's sums of ``n`` products carry
    relative errors up to ``n * 2**-24`` of the terms (tests: ``1e-4 (1 + max |bound|)``).
    Neither float32 nor float64 results are a proof (module docstring).
    """
    cfg = dataclasses.replace(config or TrainingBoundConfig(), method=TrainingMethod(method))
    steps = program(module)
    lo, hi = input_box(x, eps, clip)
    b = x.shape[0]
    linear = cfg.method is not TrainingMethod.IBP
    tighten = cfg.method is TrainingMethod.CROWN
    boxes: list[tuple[Tensor, Tensor]] = [(lo, hi)]
    relaxed: dict[int, LinearBounds] = {}
    for i, step in enumerate(steps):
        if step.kind == "act" and linear:
            relaxed[i] = _relax(step, *boxes[i])
        out_lo, out_hi = _ibp_step(step, *boxes[i])
        if tighten and i + 1 < len(steps) and steps[i + 1].kind == "act":
            out_lo, out_hi = _tighten(steps, boxes, relaxed, i, out_lo, out_hi)
        boxes.append((out_lo, out_hi))
    y_lo, y_hi = boxes[-1]
    n_out = y_lo[0].numel()
    Ct = _spec(C, b, n_out, y_lo)
    if cfg.fold_spec and steps and steps[-1].kind == "linear" and boxes[-2][0].dim() == 2:
        ibp_lo, ibp_hi = _folded_rows(steps[-1], *boxes[-2], Ct)
    else:
        ibp_lo, ibp_hi = _ibp_rows(y_lo.reshape(b, -1), y_hi.reshape(b, -1), Ct)
    if not linear:
        return TrainingBounds(ibp_lo, ibp_hi if cfg.bound_upper else None, ibp_lo, ibp_hi)
    m = Ct.shape[1]
    rows = torch.cat([Ct, -Ct], 1) if cfg.bound_upper else Ct      # (B or 1, r, n_out)
    lam = rows.transpose(0, 1).expand(rows.shape[1], b, n_out).reshape(-1, b, *y_lo.shape[1:])
    result = backward(steps, boxes, relaxed, len(steps) - 1, lam)   # (r, B)
    lower = result[:m].T
    upper = -result[m:].T if cfg.bound_upper else None
    if cfg.intersect_ibp:
        lower = torch.maximum(lower, ibp_lo)
        upper = None if upper is None else torch.minimum(upper, ibp_hi)
    return TrainingBounds(lower, upper, ibp_lo, ibp_hi)
