"""The open domains of input splitting: sub-boxes of one case's box with their margins,
depths, ranked split dimensions and parent node bounds (:mod:`hybridver.bab.input_split`).

:func:`split_domains` halves boxes; the two children share the midpoint face, so together
they cover the parent (no point is lost), and they inherit the parent's node bounds, which
are sound on any sub-box.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

Tensor = torch.Tensor
NodeBounds = dict[str, tuple[Tensor, Tensor]]


@dataclasses.dataclass
class DomainBatch:
    """Open domains taken out of the pool: boxes ``(K, n_in)``, ``margin (K, g)`` (per
    disjunct, the best proven lower bound of its rows over the domain so far; the domain
    is open because some entry is <= 0), ``depth (K,)`` (splits from the case's box),
    ``node_bounds`` as in :class:`Bounded`."""

    lower: Tensor
    upper: Tensor
    margin: Tensor
    depth: Tensor
    node_bounds: NodeBounds

    def __len__(self) -> int:
        return self.lower.shape[0]

    @property
    def worst(self) -> Tensor:
        """``(K,)``: the case's margin bound (the smallest disjunct margin)."""
        return self.margin.min(dim=1).values

    def rows(self, rows) -> "DomainBatch":
        """The domains at ``rows`` (an index tensor or a slice)."""
        return DomainBatch(self.lower[rows], self.upper[rows], self.margin[rows],
                           self.depth[rows],
                           {n: (lo[rows], hi[rows]) for n, (lo, hi) in self.node_bounds.items()})


class DomainPool:
    """Open domains in growable buffers (capacity doubles; removal moves the last rows
    into the holes, so a batch costs O(batch) copies, not O(pool)): boxes, per-disjunct
    margins, depths, ranked split dimensions and the parent node bounds, popped lowest
    (worst-disjunct) margin first.  The attributes are views of the live rows."""

    def __init__(self, n_in: int, device: torch.device):
        self.device = device
        self.size = 0
        self._buffers: dict[str, Tensor] = {}
        self._nodes: list[str] = []
        self._n_in = n_in

    def __len__(self) -> int:
        return self.size

    def _view(self, key: str) -> Tensor:
        return self._buffers[key][:self.size]

    @property
    def lower(self) -> Tensor:
        return self._view("lower") if self._buffers else \
            torch.empty((0, self._n_in), dtype=torch.float64, device=self.device)

    @property
    def upper(self) -> Tensor:
        return self._view("upper") if self._buffers else self.lower

    @property
    def margin(self) -> Tensor:
        return self._view("margin") if self._buffers else \
            torch.empty((0, 1), dtype=torch.float64, device=self.device)

    @property
    def depth(self) -> Tensor:
        return self._view("depth") if self._buffers else \
            torch.empty((0,), dtype=torch.long, device=self.device)

    @property
    def dims(self) -> Tensor:
        return self._view("dims") if self._buffers else \
            torch.empty((0, 1), dtype=torch.long, device=self.device)

    @property
    def node_bounds(self) -> NodeBounds:
        return {n: (self._view(f"lo:{n}"), self._view(f"hi:{n}")) for n in self._nodes}

    def best_margin(self) -> float:
        """The lowest case margin bound of the open domains (+inf when none)."""
        return float(self.margin.min()) if len(self) else float("inf")

    def push(self, lower, upper, margin, depth, dims, node_bounds: NodeBounds) -> None:
        k = lower.shape[0]
        if k == 0:
            return
        rows = {"lower": lower, "upper": upper, "margin": margin, "depth": depth,
                "dims": dims}
        if not self._buffers:
            self._nodes = sorted(node_bounds)
        for n in self._nodes:
            rows[f"lo:{n}"], rows[f"hi:{n}"] = node_bounds[n]
        if not self._buffers or self.size + k > next(iter(self._buffers.values())).shape[0]:
            capacity = max(2 * (self.size + k), 1024)
            grown = {}
            for key, value in rows.items():
                buffer = torch.empty((capacity, *value.shape[1:]), dtype=value.dtype,
                                     device=self.device)
                if key in self._buffers:
                    buffer[:self.size] = self._buffers[key][:self.size]
                grown[key] = buffer
            self._buffers = grown
        for key, value in rows.items():
            self._buffers[key][self.size:self.size + k] = value
        self.size += k

    def pop(self, k: int, lowest: bool = True) -> tuple[DomainBatch, Tensor]:
        """Remove the ``k`` domains of lowest (or highest) margin: the batch and their
        ranked split dimensions ``(k, n_dims)``."""
        k = min(k, len(self))
        if k == len(self):
            rows = torch.arange(k, device=self.device)
        else:
            rows = torch.topk(self.margin.min(dim=1).values, k, largest=not lowest).indices
        dims = self.dims[rows].clone()
        return self.take(rows), dims

    def take(self, rows: Tensor) -> DomainBatch:
        """Remove the domains at ``rows`` (distinct indices) and return them."""
        rows = rows.to(device=self.device, dtype=torch.long)
        batch = self.rows_of(rows)
        k, n = rows.numel(), self.size
        if k:
            tail_start = n - k
            taken = torch.zeros(n, dtype=torch.bool, device=self.device)
            taken[rows] = True
            holes = rows[rows < tail_start]                  # taken rows outside the tail
            movers = torch.nonzero(~taken[tail_start:]).reshape(-1) + tail_start
            for buffer in self._buffers.values():            # same count: k - |tail taken|
                buffer[holes] = buffer[movers]
            self.size = tail_start
        return batch

    def rows_of(self, rows: Tensor) -> DomainBatch:
        """Copies of the domains at ``rows`` (the pool is unchanged)."""
        return DomainBatch(self.lower[rows], self.upper[rows], self.margin[rows],
                           self.depth[rows],
                           {n: (lo[rows], hi[rows]) for n, (lo, hi) in self.node_bounds.items()})


def split_domains(batch: DomainBatch, dims: Tensor) -> DomainBatch:
    """Both halves of every domain along ``dims``: ``2K`` domains (left halves first);
    the children inherit the parent's node bounds (sound on any sub-box)."""
    rows = torch.arange(len(batch), device=batch.lower.device)
    mid = (batch.lower[rows, dims] + batch.upper[rows, dims]) / 2
    left_hi, right_lo = batch.upper.clone(), batch.lower.clone()
    left_hi[rows, dims] = mid
    right_lo[rows, dims] = mid
    twice = {n: (torch.cat([lo, lo]), torch.cat([hi, hi]))
             for n, (lo, hi) in batch.node_bounds.items()}
    return DomainBatch(torch.cat([batch.lower, right_lo]), torch.cat([left_hi, batch.upper]),
                       torch.cat([batch.margin, batch.margin]),
                       torch.cat([batch.depth, batch.depth]) + 1, twice)


def split_domains_along(batch: DomainBatch, dims: Tensor) -> DomainBatch:
    """Halve every domain along each of its ``dims (K, k)`` in turn: ``2**k K`` domains
    (a grid of ``2**k`` cells per parent; together they cover it)."""
    for j in range(dims.shape[1]):
        batch = split_domains(batch, dims[:, j])
        dims = torch.cat([dims, dims])
    return batch


def concat_batches(batches: Sequence[DomainBatch]) -> DomainBatch:
    """The batches one after the other."""
    return DomainBatch(torch.cat([b.lower for b in batches]), torch.cat([b.upper for b in batches]),
                       torch.cat([b.margin for b in batches]), torch.cat([b.depth for b in batches]),
                       {n: (torch.cat([b.node_bounds[n][0] for b in batches]),
                            torch.cat([b.node_bounds[n][1] for b in batches]))
                        for n in batches[0].node_bounds})
