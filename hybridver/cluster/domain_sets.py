"""The open domains one shard holds, and how they travel as plain data.

Two kinds, one interface (:class:`DomainSet`) that :class:`~hybridver.cluster.shard.Shard`
drives:

* :class:`BoxSet`: sub-boxes of input splitting (the local search's
  :class:`~hybridver.bab.input_split.InputSplitting`).  Plain data: ``lower``/``upper``
  ``(K, n_in)``, ``margin (K, g)``, ``depth (K,)``; the parents' node bounds stay behind.
* :class:`NeuronSet`: domains of activation splitting (the local search's
  :class:`~hybridver.bab.activation_split.ActivationSplitting`): the case's box (or a
  sub-box) with split decisions ``(neuron candidate, flat index, upper side, point)``.
  Plain data: ``margin (K,)`` (the parent's bound), ``decisions`` (K tuples of
  decisions), ``boxes`` (K ``(lower, upper)`` or None for the case's box); the parents'
  optimized alphas and betas stay behind (a domain is bounded soundly without them).

Leaving data behind only costs time: restrictions and warm starts tighten or speed up a
bound, they are not needed for its soundness.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import torch

from hybridver.bab.input_domains import DomainBatch
from hybridver.bab.neuron_domains import NeuronBatch

#: open domains as plain data (see the module docstring for each kind's keys)
Domains = dict[str, Any]


def domain_count(domains: Domains | None) -> int:
    return 0 if domains is None else len(domains["margin"])


def concat_domains(parts: list[Domains | None]) -> Domains | None:
    """The domains of ``parts`` (of one kind) together, or None when there are none."""
    parts = [p for p in parts if domain_count(p)]
    if not parts:
        return None
    return {key: np.concatenate([p[key] for p in parts]) if isinstance(parts[0][key], np.ndarray)
            else [item for p in parts for item in p[key]] for key in parts[0]}


def domains_nbytes(domains: Domains | None) -> int:
    """Bytes of the domains' numbers (arrays; a decision counts 24 bytes, a box its
    arrays): what a transfer moves, up to pickling overhead."""
    if domains is None:
        return 0
    total = 0
    for value in domains.values():
        if isinstance(value, np.ndarray):
            total += int(value.nbytes)
        else:
            for item in value:
                if item is None:
                    continue
                if isinstance(item[0], np.ndarray):
                    total += sum(int(a.nbytes) for a in item)
                else:
                    total += 24 * len(item)
    return total


def _alternate(order: list[int], count: int) -> list[int]:
    """Every other index of ``order`` (easiest-first order: both sides keep a mix)."""
    picked = order[1::2] if len(order) > 1 else order
    return picked[:count]


class BoxSet:
    """The sub-boxes of input splitting held by a shard (``strategy``: an
    :class:`~hybridver.bab.input_split.InputSplitting`)."""

    def __init__(self, strategy, device: torch.device, batch_size: int):
        self.strategy, self.device, self.batch_size = strategy, device, max(1, batch_size)
        self.pending: list[DomainBatch] = []

    def __len__(self) -> int:
        return len(self.strategy.pool) + sum(len(b) for b in self.pending)

    def best_margin(self) -> float:
        return self.strategy.pool.best_margin()

    def take(self, domains: Domains) -> None:
        for start in range(0, domain_count(domains), self.batch_size):
            part = {k: torch.as_tensor(v[start:start + self.batch_size], device=self.device)
                    for k, v in domains.items()}
            self.pending.append(DomainBatch(part["lower"], part["upper"], part["margin"],
                                            part["depth"], {}))

    def next_batch(self):
        return self.pending.pop() if self.pending else self.strategy.select()

    def give(self, count: int) -> Domains | None:
        if self.pending:   # received and not yet bounded: handed on first
            return _plain_boxes(self.pending.pop())
        pool = self.strategy.pool
        if min(count, len(pool)) <= 0:
            return None
        order = torch.argsort(pool.margin.min(dim=1).values).tolist()
        rows = torch.as_tensor(_alternate(order, count), device=pool.device)
        return _plain_boxes(pool.take(rows))

    def snapshot(self) -> Domains | None:
        pool = self.strategy.pool
        parts = [_plain_boxes(pool.rows_of(torch.arange(len(pool), device=pool.device)))]
        return concat_domains(parts + [_plain_boxes(b) for b in self.pending])


def _plain_boxes(batch: DomainBatch) -> Domains:
    return {"lower": batch.lower.cpu().numpy(), "upper": batch.upper.cpu().numpy(),
            "margin": batch.margin.cpu().numpy(), "depth": batch.depth.cpu().numpy()}


class NeuronSet:
    """The domains of activation splitting held by a shard (``strategy``: an
    :class:`~hybridver.bab.activation_split.ActivationSplitting`, whose heap ``queue``
    holds ``(margin, tie-break, decisions, box, warm)``)."""

    def __init__(self, strategy):
        self.strategy = strategy

    def __len__(self) -> int:
        return len(self.strategy.queue)

    def best_margin(self) -> float:
        return self.strategy.best_margin()

    def take(self, domains: Domains) -> None:
        s = self.strategy
        for margin, decisions, box in zip(domains["margin"], domains["decisions"],
                                          domains["boxes"]):
            s.counter += 1
            heapq.heappush(s.queue, (float(margin), s.counter, tuple(tuple(d) for d in decisions),
                                     None if box is None else (np.array(box[0]), np.array(box[1])),
                                     None))

    def next_batch(self) -> NeuronBatch:
        return self.strategy.select()

    def give(self, count: int) -> Domains | None:
        queue = sorted(self.strategy.queue)
        if min(count, len(queue)) <= 0:
            return None
        picked = set(_alternate(list(range(len(queue))), count))
        self.strategy.queue = [e for i, e in enumerate(queue) if i not in picked]
        heapq.heapify(self.strategy.queue)
        return plain_neurons([queue[i] for i in sorted(picked)])

    def snapshot(self) -> Domains | None:
        return plain_neurons(self.strategy.queue) if self.strategy.queue else None


def plain_neurons(entries: list[tuple]) -> Domains:
    """Heap entries ``(margin, tie-break, decisions, box, warm)`` as plain data."""
    return {"margin": np.array([e[0] for e in entries], dtype=np.float64),
            "decisions": [tuple(e[2]) for e in entries],
            "boxes": [None if e[3] is None else (np.asarray(e[3][0]), np.asarray(e[3][1]))
                      for e in entries]}
