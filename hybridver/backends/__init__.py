"""Exact back ends (one module per solver), behind one protocol (``base.py``)."""

from hybridver.backends.base import (Backend, Capabilities, Limits, Outcome, Status,
                                     backend_names, get_backend, register_backend)

__all__ = ["Backend", "Capabilities", "Limits", "Outcome", "Status", "backend_names",
           "get_backend", "register_backend"]
