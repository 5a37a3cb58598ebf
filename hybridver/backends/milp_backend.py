"""What the MILP back ends (HiGHS, OR-Tools) share: options, encoding, and ``solve`` as
"encode, then :meth:`solve_model` with the remaining time".  Subclasses implement
``is_available`` and ``solve_model`` (and import their solver only there)."""

from __future__ import annotations

import dataclasses
import time

from hybridver.backends.base import Limits, Outcome, Status
from hybridver.backends.options import MilpOptions
from hybridver.encode.milp import MilpModel, NotEncodableError, encode_milp
from hybridver.problem import Subproblem


class MilpBackend:
    """Base of the MILP back ends.  ``options``: tolerances, ``delta``, envelope pieces."""

    def __init__(self, options: MilpOptions = MilpOptions()):
        self.options = options

    def configure(self, options: MilpOptions) -> "MilpBackend":
        """A copy with other options."""
        return type(self)(options)

    def encode(self, problem: Subproblem, breakpoints=None) -> MilpModel:
        return encode_milp(problem, self.options.envelope_pieces, breakpoints)

    def solve(self, problem: Subproblem, limits: Limits) -> Outcome:
        start = time.monotonic()
        try:
            model = self.encode(problem)
        except NotEncodableError as exc:
            return Outcome(Status.UNKNOWN, time.monotonic() - start, solver_status="not encodable",
                           message=str(exc))
        outcome = self.solve_model(model, dataclasses.replace(
            limits, time_s=max(0.0, limits.time_s - (time.monotonic() - start))))
        return dataclasses.replace(outcome, time_s=time.monotonic() - start)

    def solve_model(self, model: MilpModel, limits: Limits,
                    stop_at_candidate: bool | None = None) -> Outcome:
        raise NotImplementedError
