"""Properties: Spec types, the VNN-LIB reader/writer, and robustness specs.

A :class:`Spec` follows VNN-LIB's unsafe-set convention: it describes counterexamples,
and the property is verified (``unsat``) when none exists.
"""

from hybridver.specs.robustness import robustness
from hybridver.specs.spec import InputBox, OutputConstraints, Spec, SpecCase
from hybridver.specs.vnnlib import (MAX_DNF_TERMS, format_vnnlib, load_vnnlib,
                                    parse_vnnlib, write_vnnlib)

__all__ = ["InputBox", "OutputConstraints", "SpecCase", "Spec", "parse_vnnlib",
           "load_vnnlib", "format_vnnlib", "write_vnnlib", "robustness", "MAX_DNF_TERMS"]
