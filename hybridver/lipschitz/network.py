"""A network as a chain of steps (affine maps and elementwise activations) over flattened
vectors, the form the Jacobian bounds, the MILP and the sampler read.

Supported nodes: LINEAR (``y = W x + b`` with the weights as stored), CONV (its exact
matrix, see :func:`_conv_matrix`), RESHAPE / IDENTITY (the flattened vector is unchanged:
reshapes keep row-major order), RELU, SIGMOID, TANH.  Every node must read the node
before it (a chain).  Anything else is refused with :class:`LipschitzInputError` naming
the op and the node: its derivative is not bounded here, and nothing is approximated.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from hybridver.errors import HybridverInputError
from hybridver.ir.evaluate import EVALUATORS
from hybridver.ir.graph import NetworkGraph
from hybridver.ir.ops import OpKind
from hybridver.numerics import U64, gamma

__all__ = ["ACTIVATIONS", "Affine", "Activation", "Chain", "LipschitzInputError",
           "extract_chain", "objective_rows"]

ACTIVATIONS = (OpKind.RELU, OpKind.SIGMOID, OpKind.TANH)
#: inputs times outputs above which a convolution's dense matrix is refused
MAX_CONV_ENTRIES = 50_000_000


class LipschitzInputError(HybridverInputError):
    """The model or the options cannot be handled by the Lipschitz bounds."""


@dataclasses.dataclass(frozen=True)
class Affine:
    """``y = weight @ x + bias``; ``weight (n_out, n_in)``, ``bias (n_out,)`` float64."""

    name: str
    weight: np.ndarray
    bias: np.ndarray


@dataclasses.dataclass(frozen=True)
class Activation:
    """An elementwise activation of kind ``op``; ``pre``: the IR node whose value is its
    input (the bound engine's intervals are looked up under that name)."""

    name: str
    op: OpKind
    pre: str
    size: int


@dataclasses.dataclass(frozen=True)
class Chain:
    """``steps`` applied in order to the flattened input of size ``n_in``."""

    steps: tuple[Affine | Activation, ...]
    n_in: int
    n_out: int

    @property
    def activations(self) -> list[Activation]:
        return [s for s in self.steps if isinstance(s, Activation)]

    @property
    def kinds(self) -> set[OpKind]:
        return {s.op for s in self.activations}


def _conv_matrix(node, in_shape: tuple[int, ...]) -> np.ndarray:
    """The dense matrix ``(n_out, n_in)`` of a convolution without its bias: the
    convolution of each unit vector.  Exact: each output of a unit vector is one weight
    times 1 plus products with 0, and those sums are exact in float64."""
    n_in, n_out = int(np.prod(in_shape)), node.size
    if n_in * n_out > MAX_CONV_ENTRIES:
        raise LipschitzInputError(f"convolution '{node.name}' is too large for its dense "
                                  f"matrix ({n_out} x {n_in})")
    plain = node.replace(consts={k: v for k, v in node.consts.items() if k != "bias"})
    basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *in_shape)
    with torch.no_grad():
        cols = EVALUATORS[OpKind.CONV](plain, [basis])
    return cols.reshape(n_in, n_out).T.numpy().copy()


def _affine(node, in_shape: tuple[int, ...], n_in: int) -> Affine:
    if node.op is OpKind.LINEAR:
        weight = np.asarray(node.consts["weight"], dtype=np.float64)
        if weight.shape[1] != n_in:  # LINEAR on the last axis of a larger tensor
            raise LipschitzInputError(
                f"node '{node.name}' (linear) acts on the last axis of a {in_shape} tensor; "
                "only a linear layer on the whole flattened vector is supported")
        bias = node.consts.get("bias")
    else:
        weight = _conv_matrix(node, in_shape)
        bias = node.consts.get("bias")
        if bias is not None:  # one bias per output channel, broadcast over positions
            bias = np.broadcast_to(np.asarray(bias, dtype=np.float64).reshape(
                -1, *([1] * (len(node.shape) - 2))), node.shape[1:]).ravel()
    bias = np.zeros(weight.shape[0]) if bias is None else np.asarray(bias, np.float64).ravel()
    return Affine(node.name, weight, bias)


def extract_chain(graph: NetworkGraph) -> Chain:
    """The graph as a :class:`Chain`, or :class:`LipschitzInputError` for the first node
    that is not supported or not part of a chain."""
    order = graph.topological_order
    first = graph.input_node
    steps: list[Affine | Activation] = []
    prev, shape = first.name, first.shape
    for name in order[1:]:
        node = graph.node(name)
        if node.op is OpKind.CONSTANT:
            raise LipschitzInputError(f"unsupported node '{name}' (constant) for Lipschitz "
                                      "bounds: only chains of layers are supported")
        if node.inputs != (prev,):
            raise LipschitzInputError(
                f"node '{name}' ({node.op.value}) does not read only the node before it "
                f"('{prev}'): only chains of layers are supported")
        if node.op in (OpKind.LINEAR, OpKind.CONV):
            steps.append(_affine(node, shape, int(np.prod(shape))))
        elif node.op in ACTIVATIONS:
            steps.append(Activation(name, node.op, prev, node.size))
        elif node.op not in (OpKind.RESHAPE, OpKind.IDENTITY):
            raise LipschitzInputError(
                f"unsupported op {node.op.value} (node '{name}') for Lipschitz bounds "
                "(supported: linear, conv, relu, sigmoid, tanh, reshape)")
        prev, shape = name, node.shape
    if prev != graph.output_node.name:
        raise LipschitzInputError("the output is not the end of the chain of layers")
    return Chain(tuple(steps), first.size, graph.output_node.size)


def objective_rows(n_out: int, output: int | None = None,
                   margin: tuple[int, int] | None = None) -> np.ndarray:
    """``(m, n_out)`` rows ``c``: the functions whose gradients are bounded (``c . y``).
    Default every output; ``output=k`` one; ``margin=(i, j)``: ``y_i - y_j``."""
    if output is not None and margin is not None:
        raise LipschitzInputError("give --output or --margin, not both")
    if output is not None:
        if not 0 <= output < n_out:
            raise LipschitzInputError(f"--output {output} is not an output index "
                                      f"(0..{n_out - 1})")
        return np.eye(n_out)[[output]]
    if margin is not None:
        i, j = margin
        if not (0 <= i < n_out and 0 <= j < n_out) or i == j:
            raise LipschitzInputError(f"--margin {i},{j} needs two different output "
                                      f"indices in 0..{n_out - 1}")
        row = np.zeros((1, n_out))
        row[0, i], row[0, j] = 1.0, -1.0
        return row
    return np.eye(n_out)


def dual_norm(g: np.ndarray | torch.Tensor, q: float):
    """``||g||_q`` over the last axis (numpy or torch)."""
    if isinstance(g, torch.Tensor):
        return torch.linalg.vector_norm(g, ord=q, dim=-1)
    return np.linalg.norm(g, ord=q, axis=-1)


def naive_bound(chain: Chain, rows: np.ndarray, q: float) -> float:
    """Product of operator norms (the classical global bound): ``max_i ||J^T c_i||_q`` is
    at most ``||W_L^T c_i||_q`` times, for every earlier layer, the norm of ``W^T`` from
    ``q`` to ``q`` (``q = 1``: max row sum of ``|W|``; ``q = inf``: max column sum; ``q =
    2``: the spectral norm, by LAPACK's SVD) and each activation's largest slope (1, 1/4,
    1).  A comparison figure: widened by ``gamma`` of the sizes, the SVD taken as exact."""
    slope = {OpKind.RELU: 1.0, OpKind.SIGMOID: 0.25, OpKind.TANH: 1.0}
    affine = [s for s in chain.steps if isinstance(s, Affine)]
    exact_last = bool(affine) and chain.steps[-1] is affine[-1]
    if exact_last:  # the last layer's rows exactly, the earlier layers by their norms
        value = float(dual_norm(rows @ affine[-1].weight, q).max())
    else:
        value = float(dual_norm(rows, q).max())
    for step in affine[:-1] if exact_last else affine:
        w = step.weight
        value *= (np.abs(w).sum(1).max() if q == 1.0 else np.abs(w).sum(0).max()
                  if q == np.inf else np.linalg.norm(w, 2))
    for act in chain.activations:
        value *= slope[act.op]
    n = sum(s.weight.shape[0] + s.weight.shape[1] for s in affine) + len(chain.steps)
    return float(value) * (1.0 + 2 * gamma(n + 4, U64))
