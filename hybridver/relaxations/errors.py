"""Errors raised by relaxations."""

from __future__ import annotations


class NotRelaxableError(ValueError):
    """No finite sound linear relaxation exists (or is implemented) for this input interval.

    Examples: ``1/x`` or ``x / y`` on an interval containing 0, ``log`` on an interval
    reaching 0 or below, ``sqrt`` on an interval reaching below 0, ``exp`` whose upper bound
    overflows the dtype, non-finite interval ends, an unsupported ``pow`` exponent.

    Raising is always sound (nothing is claimed).  The bound engine decides the fallback:
    tighter intermediate bounds (e.g. intersected with IBP), a split, or giving up on this
    subdomain.
    """
