"""The exact subproblems of a spec: one :class:`~hybridver.problem.Subproblem` per
disjunct of every case, with sound node bounds (interval arithmetic unless the caller
gives tighter ones)."""

from __future__ import annotations

import numpy as np

from hybridver.bounds.intervals import UnsupportedBoundError
from hybridver.encode.affine_form import interval_node_bounds
from hybridver.problem import Subproblem
from hybridver.specs import InputBox, Spec

__all__ = ["exact_subproblems", "subproblem_bounds"]


def subproblem_bounds(graph, box: InputBox) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Sound flattened bounds of every node on ``box`` ({} when intervals cannot bound it)."""
    try:
        return interval_node_bounds(graph, box.lower, box.upper)
    except UnsupportedBoundError:
        return {}


def exact_subproblems(graph, spec: Spec, case_bounds=None):
    """``(case, disjunct, Subproblem)`` for every disjunct of every case (cases whose output
    condition is ``true`` have none).  ``case_bounds(case_index, case) -> node bounds``
    replaces the interval bounds when given."""
    for ci, case in enumerate(spec.cases):
        if not case.disjuncts:
            continue
        bounds = (case_bounds(ci, case) if case_bounds is not None
                  else subproblem_bounds(graph, case.region))
        for di, disjunct in enumerate(case.disjuncts):
            yield ci, di, Subproblem(graph, case.region, disjunct, bounds, case=ci, disjunct=di,
                                     label=f"{spec.name or 'spec'} case {ci} disjunct {di}")
