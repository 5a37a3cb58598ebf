"""Warm start of activation splitting: children begin their alpha/beta optimization at
their parent's optimized values (:class:`hybridver.bounds.alpha.WarmStart`).

After a batch is bounded, :meth:`WarmStore.keep` copies the optimized alphas and betas of
its open domains into one :class:`WarmRecord` (bfloat16: they are only starting points);
each child of open domain ``i`` refers to ``(record, position)``.  :meth:`WarmStore.batch`
gathers a new batch's starting values from the records its domains refer to.  A record is
freed when the last child referring to it has been bounded; the store counts the bytes
of the live records and keeps no new record past its budget (those children start
cold).

No soundness role: any alphas (clamped into ``[0, 1]``) and betas (projected onto their
sign constraints) give sound bounds, and the optimization keeps the best iterate,
starting from CROWN's bound.
"""

from __future__ import annotations

import weakref

import torch

from hybridver.bounds.alpha import WarmStart

Tensor = torch.Tensor
_STORE_DTYPE = torch.bfloat16

#: a child's reference to its parent's optimized values: (record, position in it)
WarmRef = tuple["WarmRecord", int]


class WarmRecord:
    """The optimized values of some domains: ``alphas`` node -> ``(lower, upper)`` and
    ``betas`` node -> values, each ``(m, K, *shape)`` for the record's ``K`` domains."""

    def __init__(self, alphas: dict[str, tuple[Tensor, Tensor]], betas: dict[str, Tensor]):
        self.alphas, self.betas = alphas, betas
        self.nbytes = sum(t.numel() * t.element_size()
                          for pair in alphas.values() for t in pair) + \
            sum(t.numel() * t.element_size() for t in betas.values())


class WarmStore:
    """Records of optimized values within a memory budget (``budget_bytes``)."""

    def __init__(self, budget_bytes: int):
        self.budget = int(budget_bytes)
        self.live = 0          # bytes of the records still referred to
        self.dropped = 0       # records not kept (over the budget)

    def _release(self, nbytes: int) -> None:
        self.live -= nbytes

    def keep(self, warm: WarmStart | None, rows: Tensor) -> WarmRecord | None:
        """The values ``warm`` received for the domains ``rows`` (batch positions, in the
        order the record will index them), or None (nothing optimized, or over budget)."""
        if warm is None or not (warm.alphas or warm.betas) or rows.numel() == 0:
            return None
        idx = rows.to(torch.long)

        def pick(t: Tensor) -> Tensor:
            return t.detach()[:, idx.to(t.device)].to("cpu", _STORE_DTYPE)

        alphas = {k: (pick(lo), pick(up)) for k, (lo, up) in warm.alphas.items()}
        betas = {k: pick(b) for k, b in warm.betas.items()}
        record = WarmRecord(alphas, betas)
        if self.live + record.nbytes > self.budget:
            self.dropped += 1
            return None
        self.live += record.nbytes
        weakref.finalize(record, self._release, record.nbytes)
        return record

    def batch(self, refs: list[WarmRef | None], m: int) -> WarmStart:
        """Starting values ``(m, N, *shape)`` for a batch whose domain ``i`` refers to
        ``refs[i]`` (None: no warm values; it starts as usual)."""
        n = len(refs)
        known = torch.tensor([r is not None for r in refs], dtype=torch.bool)
        warm = WarmStart(known=known, m=m)
        groups: dict[int, tuple[WarmRecord, list[int], list[int]]] = {}
        for i, ref in enumerate(refs):
            if ref is not None:
                rec, j = ref
                groups.setdefault(id(rec), (rec, [], []))
                groups[id(rec)][1].append(i)
                groups[id(rec)][2].append(j)

        def put(store: dict, key: str, value: Tensor, at: Tensor, part: int | None) -> None:
            shape = (m, n, *value.shape[2:])
            if key not in store:
                zeros = torch.zeros(shape, dtype=torch.float32)
                store[key] = zeros if part is None else (zeros, zeros.clone())
            target = store[key] if part is None else store[key][part]
            if target.shape == shape and value.shape[0] == m:
                target[:, at] = value.to(torch.float32)

        for rec, dst, src in groups.values():
            at, frm = torch.tensor(dst), torch.tensor(src)
            for key, (lo, up) in rec.alphas.items():
                put(warm.alphas, key, lo[:, frm], at, 0)
                put(warm.alphas, key, up[:, frm], at, 1)
            for key, b in rec.betas.items():
                put(warm.betas, key, b[:, frm], at, None)
        return warm
