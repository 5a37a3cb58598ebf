"""Exact back ends behind one protocol, and the registry (``base``).

One module per solver (``highs``, ``ortools_mip``, ``z3_backend``; ``milp_backend`` is what
the MILP ones share), region splitting over input polytopes and its rigorous LP bounds,
counterexample-guided refinement (``refine``), exact-mode settings (``options``).  A
solver is imported only inside its own module's ``is_available`` / ``solve``.
"""

from hybridver.backends.base import (Backend, Capabilities, Limits, Outcome, Status,
                                     backend_names, declared_backend_names, get_backend,
                                     register_backend)

__all__ = ["Backend", "Capabilities", "Limits", "Outcome", "Status", "backend_names",
           "declared_backend_names", "get_backend", "register_backend"]
