"""A network read as a chain of affine layers with ReLU between them (ACAS Xu's form).

Region splitting (:mod:`hybridver.backends.region_split`) needs, for a fixed pattern of active
and inactive ReLUs, the exact affine map from the input to a pre-activation; that is easy
to compose when the graph is a chain ``input -> [reshape] -> linear -> relu -> linear ->
... -> linear``.  :meth:`ReluChain.of` recognises that shape and returns None for any
other graph.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hybridver.ir.graph import NetworkGraph
from hybridver.ir.ops import OpKind
from hybridver.numerics import REL_SLACK, TINY, U64, gamma

#: Ops that pass a flat vector through unchanged (row-major order is kept by a reshape).
_PASS_THROUGH = (OpKind.RESHAPE, OpKind.IDENTITY)


@dataclasses.dataclass(frozen=True)
class ReluChain:
    """``weights[k] (n_{k+1}, n_k)`` and ``biases[k] (n_{k+1},)`` float64: layer ``k``
    maps the previous layer's (post-ReLU) values to ``z_{k+1} = W_k h_k + b_k``; every
    layer but the last is followed by a ReLU.  ``pre_names[k]``: the graph node holding the
    pre-activation ``z_{k+1}`` of hidden layer ``k`` (the input of its ReLU)."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    pre_names: tuple[str, ...]

    @property
    def n_hidden(self) -> int:
        return len(self.pre_names)

    @classmethod
    def of(cls, graph: NetworkGraph) -> "ReluChain | None":
        """The chain form of ``graph``, or None when it is not such a chain."""
        name = graph.input_node.name
        weights, biases, pres = [], [], []
        expect_linear = True
        while True:
            nexts = graph.successors(name)
            if name == graph.output_node.name:
                break
            if len(nexts) != 1:
                return None
            node = graph.node(nexts[0])
            if len(node.inputs) != 1:
                return None
            if node.op in _PASS_THROUGH:
                if len(node.shape) > 2 or (len(node.shape) == 2 and node.shape[0] != 1):
                    return None
            elif node.op is OpKind.LINEAR and expect_linear:
                w = np.asarray(node.consts["weight"], dtype=np.float64)
                if w.ndim != 2 or node.size != w.shape[0]:
                    return None
                b = node.consts.get("bias")
                weights.append(w)
                biases.append(np.zeros(w.shape[0]) if b is None
                              else np.asarray(b, dtype=np.float64).reshape(-1))
                expect_linear = False
            elif node.op is OpKind.RELU and not expect_linear:
                pres.append(node.inputs[0])
                expect_linear = True
            else:
                return None
            name = node.name
        if expect_linear or not weights or graph.output_node.op is not OpKind.LINEAR:
            return None
        if weights[0].shape[1] != graph.input_node.size:
            return None
        return cls(tuple(weights), tuple(biases), tuple(pres))

    def affine_map(self, layer: int, phases: list[np.ndarray], reach: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pre-activation ``z`` of hidden layer ``layer`` (0-based) as an affine function
        of the input, given the ReLU phases of the layers before it (``phases[k]`` bool
        ``(n_k,)``, True: active, False: inactive).

        ``reach (n_in,)``: a bound on ``|x_j|`` over the inputs of interest.  Returns
        ``A (n, n_in)``, ``a (n,)`` and ``radius (n,)`` with ``|z(x) - (A x + a)| <=
        radius`` for every such ``x`` whose earlier pre-activations have those signs: the
        float64 composition ``A_{k+1} = W_k D_k A_k`` rounds each inner product of length
        ``n_k`` by at most ``gamma(n_k)`` of its absolute value (Higham), and earlier errors
        pass through ``|W_k| D_k``.
        """
        a_mat, a_vec = self.weights[0], self.biases[0]
        radius = np.zeros(a_vec.shape)
        for k in range(layer):
            keep = phases[k].astype(np.float64)
            w = self.weights[k + 1]
            w_abs = np.abs(w) * keep[None, :]
            n = w.shape[1]
            masked_a, masked_v = a_mat * keep[:, None], a_vec * keep
            new_mat = w @ masked_a
            new_vec = w @ masked_v + self.biases[k + 1]
            radius = (w_abs @ radius
                      + gamma(n, U64) * (w_abs @ (np.abs(a_mat) @ reach))
                      + gamma(n + 1, U64) * (w_abs @ np.abs(a_vec) + np.abs(self.biases[k + 1])))
            radius = radius * (1 + REL_SLACK) + TINY  # the radius's own rounding, upward
            a_mat, a_vec = new_mat, new_vec
        return a_mat, a_vec, radius

