"""Linear relaxations of nonlinearities, registered by op kind (see ``base.py``)."""

from hybridver.relaxations.base import (BilinearBounds, BinaryRelaxation, LinearBounds, Traits,
                                        UnaryRelaxation, get_relaxation, is_piecewise_linear,
                                        kink_slope, piecewise_linear_ops, register,
                                        registered_ops)

__all__ = ["BilinearBounds", "BinaryRelaxation", "LinearBounds", "Traits", "UnaryRelaxation",
           "get_relaxation", "is_piecewise_linear", "kink_slope", "piecewise_linear_ops",
           "register", "registered_ops"]
