"""Memory of activation splitting: how many domains one bound call takes, and how much
the warm-start records (:mod:`hybridver.bab.warm_start`) may hold, from the memory the
machine has available (``/proc/meminfo``'s MemAvailable, else ``os.sysconf``) and the
bound engine's ``memory_limit_bytes``.

The per-domain cost mirrors the engine's own chunking estimates (an alpha pass keeps,
per spec row and domain, about four coefficients per node of the output's cone; an
interval/CROWN pass about ``6 * largest node * min(rows, 64)`` values), so that a batch
of the chosen size is bounded in one chunk (which the warm start needs: its values are
per batch).  No soundness role.
"""

from __future__ import annotations

import os

import torch


def available_memory_bytes() -> int | None:
    """Memory available to new allocations, in bytes; None when the system does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def domain_bytes(plan, rows: int, optimized: bool) -> int:
    """Estimated bytes one domain costs in a bound call of ``rows`` spec rows."""
    item = torch.finfo(plan.dtype).bits // 8 if plan.dtype.is_floating_point else 8
    sizes = [plan.graph.node(n).size for n in plan.cone(plan.output)]
    largest = max(node.size for node in plan.graph.nodes())
    interval = 6 * item * largest * min(max(rows, 2 * largest), 64)
    alpha = 4 * item * sum(sizes) * rows if optimized else 0
    return max(1, interval, alpha)


def batch_size(plan, rows: int, optimized: bool, memory_limit_bytes: int, cap: int,
               available: int | None = None) -> int:
    """Domains per bound call: as many as fit both ``memory_limit_bytes`` and a quarter
    of the available memory (``available``, default :func:`available_memory_bytes`),
    at most ``cap``, at least 1."""
    avail = available_memory_bytes() if available is None else available
    limit = memory_limit_bytes if avail is None else min(memory_limit_bytes, avail // 4)
    return max(1, min(cap, int(limit // domain_bytes(plan, rows, optimized))))


def warm_budget_bytes(available: int | None = None) -> int:
    """Bytes the warm-start records may hold: a quarter of the available memory (1 GiB
    when the system does not say)."""
    avail = available_memory_bytes() if available is None else available
    return (1 << 30) if avail is None else avail // 4
