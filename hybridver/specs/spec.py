"""Immutable property types: input boxes, linear output constraints, cases, specs.

Conventions (the "unsafe set" convention of VNN-LIB):

* Everything is over the FLATTENED model input ``x`` (``n_inputs`` entries, row-major, as
  ``numpy.ravel`` gives it) and the flattened model output ``y`` (``n_outputs`` entries).
* A :class:`Spec` describes what a COUNTEREXAMPLE satisfies.  The property is violated
  (VNN-LIB ``sat``) iff some :class:`SpecCase` has a counterexample; ``unsat`` means the
  property is verified.
* A :class:`SpecCase` pairs an input region (an :class:`InputBox`) with an output
  condition that is a DISJUNCTION of :class:`OutputConstraints`; each of those is a
  CONJUNCTION of linear rows ``C @ y + d <= 0``.
* A case with zero disjuncts has the output condition ``true``: every point of its
  region is a counterexample.  (This is deliberately NOT the empty-``or`` reading, which
  would be ``false``.)  An :class:`OutputConstraints` with zero rows is also ``true``;
  a case that holds one is normalized to zero disjuncts so there is one representation.
* A :class:`Spec` with zero cases can never be violated (the property holds vacuously).

All arrays are float64 copies, made read-only; the classes are frozen dataclasses.
Equality compares the numbers exactly (``Spec.name`` is a label and is not compared).

Exact constants: a bound or offset that is not a float64 number (VNN-LIB ``0.1``) is kept
as a :class:`~fractions.Fraction` next to its float64 array, which holds it rounded
OUTWARD: :attr:`InputBox.exact_lower` beside ``lower`` rounded down, ``exact_upper``
beside ``upper`` rounded up, :attr:`OutputConstraints.exact_d` beside ``d`` rounded down
(a smaller ``d`` only enlarges the violating set ``C y + d <= 0``).  Proofs use the float
arrays, which cover the exact sets; a counterexample is checked against the exact values
(docs/soundness.md, "VNN-LIB constants").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridver.errors import DimensionMismatchError
from hybridver.specs.regions import InputBox, OutputConstraints

__all__ = ["InputBox", "OutputConstraints", "SpecCase", "Spec"]


@dataclass(frozen=True, eq=False)
class SpecCase:
    """Input region plus a disjunction of output conjunctions.

    A counterexample of this case is an ``x`` in ``region`` whose output satisfies at least
    one disjunct.  ``disjuncts == ()`` means the output condition is ``true``.
    """

    region: InputBox
    disjuncts: tuple[OutputConstraints, ...] = ()

    def __post_init__(self):
        if not isinstance(self.region, InputBox):
            raise TypeError("SpecCase.region must be an InputBox")
        disj = tuple(self.disjuncts)
        for k, dj in enumerate(disj):
            if not isinstance(dj, OutputConstraints):
                raise TypeError(f"SpecCase.disjuncts[{k}] must be OutputConstraints")
            if dj.n_outputs != disj[0].n_outputs:
                raise ValueError("SpecCase disjuncts have different output sizes: "
                                 f"{disj[0].n_outputs} and {dj.n_outputs}")
        if any(dj.n_rows == 0 for dj in disj):
            disj = ()  # an empty conjunction is `true` and absorbs the whole disjunction
        object.__setattr__(self, "disjuncts", disj)

    @property
    def output_is_true(self) -> bool:
        """True when every output is acceptable to a counterexample (no disjuncts)."""
        return len(self.disjuncts) == 0

    def violation_margin(self, y):
        """``min`` over disjuncts of their margins; ``<= 0`` iff ``y`` meets the output
        condition.  ``-inf`` when the condition is ``true``.  Batched like
        :meth:`OutputConstraints.violation_margin`."""
        if self.output_is_true:
            arr = np.asarray(y, dtype=np.float64)
            return -np.inf if arr.ndim <= 1 else np.full(arr.shape[0], -np.inf)
        margins = [dj.violation_margin(y) for dj in self.disjuncts]
        if np.ndim(margins[0]) == 0:
            return float(min(margins))
        return np.min(np.stack(margins), axis=0)

    def output_satisfied(self, y):
        """Whether ``y`` satisfies at least one disjunct (exactly, no tolerance)."""
        m = self.violation_margin(y)
        return bool(m <= 0.0) if np.ndim(m) == 0 else m <= 0.0

    def is_counterexample(self, x, y, tol: float = 0.0) -> bool:
        """One point: ``x`` in the region (widened by ``tol``) and ``y`` meets the output
        condition, decided exactly (``tol`` never loosens the output check)."""
        if not (self.region.contains(x, tol) and self.output_satisfied(y)):
            return False
        return self.output_is_true or any(dj.exactly_satisfied(y) for dj in self.disjuncts)

    def __eq__(self, other):
        if not isinstance(other, SpecCase):
            return NotImplemented
        return self.region == other.region and self.disjuncts == other.disjuncts

    def __hash__(self):
        return hash((self.region, self.disjuncts))

    def __repr__(self):
        out = "true" if self.output_is_true else f"{len(self.disjuncts)} disjuncts"
        return f"SpecCase(region={self.region!r}, output={out})"


@dataclass(frozen=True, eq=False)
class Spec:
    """A property in the unsafe-set convention.

    The property is VIOLATED (VNN-LIB ``sat``) iff some case in ``cases`` has a
    counterexample; it holds (``unsat``) otherwise.  ``n_inputs``/``n_outputs`` are the
    flattened sizes the model must have.  ``name`` is a label only.
    """

    cases: tuple[SpecCase, ...]
    n_inputs: int
    n_outputs: int
    name: str = ""

    def __post_init__(self):
        cases = tuple(self.cases)
        n_in, n_out = int(self.n_inputs), int(self.n_outputs)
        if n_in < 1 or n_out < 1:
            raise ValueError(f"Spec needs n_inputs >= 1 and n_outputs >= 1, got "
                             f"{n_in} and {n_out}")
        for k, case in enumerate(cases):
            if not isinstance(case, SpecCase):
                raise TypeError(f"Spec.cases[{k}] must be a SpecCase")
            if case.region.n != n_in:
                raise DimensionMismatchError(
                    f"Spec case {k}: input box has {case.region.n} entries, "
                    f"the spec has {n_in} inputs")
            for dj in case.disjuncts:
                if dj.n_outputs != n_out:
                    raise DimensionMismatchError(
                        f"Spec case {k}: output constraints have {dj.n_outputs} columns, "
                        f"the spec has {n_out} outputs")
        object.__setattr__(self, "cases", cases)
        object.__setattr__(self, "n_inputs", n_in)
        object.__setattr__(self, "n_outputs", n_out)
        object.__setattr__(self, "name", str(self.name))

    def is_counterexample(self, x, y, tol: float = 0.0) -> bool:
        """Whether (x, y) witnesses a violation of the property.

        ``x``: the flattened input (any shape with ``n_inputs`` entries is flattened);
        ``y``: the flattened output the model gives for ``x``.  ``tol`` (>= 0) widens the
        INPUT REGION check only, to absorb rounding of ``x`` (e.g. a counterexample that
        went through float32 or a text file); the output check is always exact, so a
        reported counterexample really meets the output condition.
        """
        xa = np.asarray(x, dtype=np.float64).ravel()
        ya = np.asarray(y, dtype=np.float64).ravel()
        if xa.size != self.n_inputs:
            raise DimensionMismatchError(
                f"input has {xa.size} entries, the spec has {self.n_inputs} inputs")
        if ya.size != self.n_outputs:
            raise DimensionMismatchError(
                f"output has {ya.size} entries, the spec has {self.n_outputs} outputs")
        return any(case.is_counterexample(xa, ya, tol) for case in self.cases)

    def check_dimensions(self, n_inputs: int, n_outputs: int) -> None:
        """Raise :class:`DimensionMismatchError` unless the model sizes match the spec."""
        problems = []
        if int(n_inputs) != self.n_inputs:
            problems.append(f"the spec has {self.n_inputs} input variables "
                            f"(X_0..X_{self.n_inputs - 1}) but the model has "
                            f"{int(n_inputs)} inputs")
        if int(n_outputs) != self.n_outputs:
            problems.append(f"the spec has {self.n_outputs} output variables "
                            f"(Y_0..Y_{self.n_outputs - 1}) but the model has "
                            f"{int(n_outputs)} outputs")
        if problems:
            label = f"spec '{self.name}': " if self.name else ""
            raise DimensionMismatchError(label + "; ".join(problems))

    def bounding_box(self) -> InputBox:
        """The smallest box containing every case's region (requires at least one case)."""
        if not self.cases:
            raise ValueError("a spec with no cases has no input region")
        lo = np.min(np.stack([c.region.lower for c in self.cases]), axis=0)
        hi = np.max(np.stack([c.region.upper for c in self.cases]), axis=0)
        return InputBox(lo, hi)

    def __eq__(self, other):
        if not isinstance(other, Spec):
            return NotImplemented
        return (self.n_inputs == other.n_inputs and self.n_outputs == other.n_outputs
                and self.cases == other.cases)

    def __hash__(self):
        return hash((self.n_inputs, self.n_outputs, self.cases))

    def __repr__(self):
        label = f"name={self.name!r}, " if self.name else ""
        return (f"Spec({label}n_inputs={self.n_inputs}, n_outputs={self.n_outputs}, "
                f"cases={len(self.cases)})")
