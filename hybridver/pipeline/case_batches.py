"""Cases of a spec bounded and attacked together, in batches.

A VNN-LIB file may hold thousands of cases (nn4sys: one input box per query, each with its
own output rows).  Bounds and attacks run on a batch of boxes at once, so the cases are
grouped by the SHAPE of their output condition (the number of rows of each disjunct):
within a group every case's rows stack into one ``C (k, m, n_out)``, ``d (k, m)`` with
the same disjunct slices, and each batch row is checked against ITS OWN case's rows
only (nothing is padded, so no row of one case can count for another).

Within a group, cases are ordered by the set of inputs that vary in their box (and then
by index), so a batch holds cases whose unstable neurons tend to coincide (the bound
engine tightens the union of the batch's unstable neurons).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hybridver.specs.spec import SpecCase


@dataclasses.dataclass(frozen=True)
class StackedCase:
    """A case's disjuncts stacked: ``C (m, n_out)``, ``d (m,)``, rows of disjunct k in
    ``groups[k]``."""

    C: np.ndarray
    d: np.ndarray
    groups: tuple[slice, ...]

    @classmethod
    def of(cls, case: SpecCase) -> "StackedCase":
        groups, offset = [], 0
        for disjunct in case.disjuncts:
            groups.append(slice(offset, offset + disjunct.C.shape[0]))
            offset += disjunct.C.shape[0]
        return cls(np.concatenate([dj.C for dj in case.disjuncts]),
                   np.concatenate([dj.d for dj in case.disjuncts]), tuple(groups))


@dataclasses.dataclass(frozen=True)
class CaseBatch:
    """Cases ``indices`` (spec case indices) with the same disjunct shape:
    ``lower, upper (k, n_in)``, ``C (k, m, n_out)``, ``d (k, m)``, the rows of disjunct
    j in ``groups[j]`` (the same slices for every case of the batch)."""

    indices: tuple[int, ...]
    lower: np.ndarray
    upper: np.ndarray
    C: np.ndarray
    d: np.ndarray
    groups: tuple[slice, ...]

    def __len__(self) -> int:
        return len(self.indices)


def shape_of(case: SpecCase) -> tuple[int, ...]:
    """The number of rows of each disjunct: cases of equal shape stack together."""
    return tuple(dj.n_rows for dj in case.disjuncts)


def varying_inputs(case: SpecCase) -> int:
    """How many inputs have a box of positive width in ``case`` (the others are fixed)."""
    return int(np.count_nonzero(case.region.upper > case.region.lower))


def case_batches(cases: list[SpecCase], indices: list[int], size: int) -> list[CaseBatch]:
    """``indices`` (of cases with at least one disjunct) in batches of at most ``size``
    cases of one disjunct shape (module docstring); ``size <= 1`` gives one case each."""
    size = max(1, size)
    by_shape: dict[tuple[int, ...], list[tuple[bytes, int]]] = {}
    for index in indices:
        case = cases[index]
        varying = np.flatnonzero(case.region.upper > case.region.lower).tobytes()
        by_shape.setdefault(shape_of(case), []).append((varying, index))
    batches = []
    for members in by_shape.values():
        order = [index for _, index in sorted(members)] if size > 1 else \
            [index for _, index in members]
        for start in range(0, len(order), size):
            batches.append(_stack(cases, order[start:start + size]))
    return batches


def _stack(cases: list[SpecCase], indices: list[int]) -> CaseBatch:
    stacked = [StackedCase.of(cases[i]) for i in indices]
    return CaseBatch(tuple(indices),
                     np.stack([cases[i].region.lower for i in indices]),
                     np.stack([cases[i].region.upper for i in indices]),
                     np.stack([s.C for s in stacked]), np.stack([s.d for s in stacked]),
                     stacked[0].groups)
