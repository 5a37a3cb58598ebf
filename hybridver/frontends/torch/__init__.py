"""torch.nn.Module -> :class:`~hybridver.ir.graph.NetworkGraph` through torch.fx tracing.

:func:`from_torch` converts a module (a float64 copy in eval mode, traced once on an
example input); :func:`check_against_module` compares a graph with the module on random
inputs.  See :mod:`hybridver.frontends.torch.importer` for what is static, what is dynamic
and how unsupported operations are reported.
"""

from hybridver.frontends.torch.importer import check_against_module, from_torch

__all__ = ["from_torch", "check_against_module"]
