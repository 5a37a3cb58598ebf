"""Sound linear relaxations of nonlinearities, registered by op kind.

The interface, traits and registry (``base``), one module per op family (``families/``),
and the loader of the precomputed tables in ``hybridver/tables/`` (``tables``).
"""

from hybridver.relaxations.base import (BilinearBounds, BinaryRelaxation, LinearBounds, Traits,
                                        UnaryRelaxation, get_relaxation, is_piecewise_linear,
                                        kink_slope, piecewise_linear_ops, register,
                                        registered_ops)

__all__ = ["BilinearBounds", "BinaryRelaxation", "LinearBounds", "Traits", "UnaryRelaxation",
           "get_relaxation", "is_piecewise_linear", "kink_slope", "piecewise_linear_ops",
           "register", "registered_ops"]
