"""The Backend protocol every exact back end implements, and the registry.

A back end answers one :class:`~hybridver.problem.Subproblem`: INFEASIBLE (proven: no input
of the subproblem satisfies the constraints), CANDIDATE (a point the solver believes
violates; it still has to be confirmed on the real model), or UNKNOWN / TIMEOUT / ERROR.
Back ends import their solver only inside ``is_available`` / ``solve``, so importing this
package (and listing back ends) never loads highspy, ortools or z3.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import pkgutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from hybridver.errors import SolverUnavailableError

if TYPE_CHECKING:  # annotations only: importing this module stays light (no torch)
    from hybridver.problem import Subproblem
    from hybridver.result import CandidateCounterexample


class Status(str, enum.Enum):
    INFEASIBLE = "infeasible"   # proven: no counterexample in this subproblem
    CANDIDATE = "candidate"     # a point believed to violate (confirm before claiming sat)
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a back end can decide, declared as data for the scheduler.

    ``exact_piecewise_linear``: its INFEASIBLE is a proof for ReLU-like networks;
    ``smooth_envelopes``: accepts smooth nonlinearities through sound envelopes (then only
    INFEASIBLE is a proof, solutions are candidates); ``exact_arithmetic``: rational
    arithmetic, no tolerances; ``max_binaries_hint``: size beyond which it is not advised;
    ``max_inputs_hint``: input dimension beyond which it is not advised (region splitting);
    ``relu_chains_only``: decides only chains of affine layers and ReLUs
    (:class:`~hybridver.ir.relu_chain.ReluChain`), UNKNOWN for any other graph.
    """

    exact_piecewise_linear: bool = True
    smooth_envelopes: bool = False
    exact_arithmetic: bool = False
    max_binaries_hint: int | None = None
    max_inputs_hint: int | None = None
    relu_chains_only: bool = False


@dataclasses.dataclass(frozen=True)
class Limits:
    time_s: float = 60.0
    threads: int = 1


@dataclasses.dataclass(frozen=True)
class Outcome:
    """Result of one solve.  ``margin_lower_bound``: a proven lower bound of
    ``min over x of max_rows (C y + d)`` when the solver provides one."""

    status: Status
    time_s: float
    candidate: CandidateCounterexample | None = None
    margin_lower_bound: float | None = None
    solver_status: str = ""
    message: str = ""
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def is_available(self) -> bool:
        """True when the solver package can be imported and used."""

    def solve(self, problem: Subproblem, limits: Limits) -> Outcome:
        """Decide the subproblem within the limits."""


_BACKENDS: dict[str, type] = {}


def register_backend(cls: type) -> type:
    """Class decorator for back-end classes (modules in this package are auto-discovered)."""
    if cls.name in _BACKENDS:
        raise ValueError(f"back end {cls.name!r} registered twice")
    _BACKENDS[cls.name] = cls
    return cls


def _discover() -> None:
    """Import every module of this package (each registers its back ends)."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name != "base":
            importlib.import_module(f"{__package__}.{module.name}")


def backend_names() -> list[str]:
    """Every registered back end, available or not (no solver is imported)."""
    _discover()
    return sorted(_BACKENDS)


def declared_backend_names() -> list[str]:
    """The back ends this package's modules declare, read from their source without
    importing them: every class decorated ``@register_backend`` with a class attribute
    ``name = "..."``.  The command line lists them in its help without loading torch or a
    solver; :func:`backend_names` (which imports the modules) is the registry itself, and
    a test checks that the two agree.  Without readable sources, the registry's names."""
    names = set()
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        try:
            tree = ast.parse((Path(__file__).parent / f"{module.name}.py").read_text())
        except (OSError, SyntaxError, ValueError):
            return backend_names()
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(d, ast.Name) and d.id == "register_backend"
                    for d in node.decorator_list):
                names.update(stmt.value.value for stmt in node.body
                             if isinstance(stmt, ast.Assign)
                             and any(isinstance(t, ast.Name) and t.id == "name"
                                     for t in stmt.targets)
                             and isinstance(stmt.value, ast.Constant)
                             and isinstance(stmt.value.value, str))
    return sorted(names)


def get_backend(name: str) -> Backend:
    """An instance of the named back end; a clear error if unknown or unavailable."""
    _discover()
    if name not in _BACKENDS:
        raise SolverUnavailableError(
            f"unknown back end '{name}' (known: {', '.join(sorted(_BACKENDS))})")
    backend = _BACKENDS[name]()
    if not backend.is_available():
        raise SolverUnavailableError(f"back end '{name}' is not available: its solver package "
                                     "cannot be imported (see `pip install hybridver`)")
    return backend
