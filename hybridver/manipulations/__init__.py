"""Manipulation families (Huang, Kwiatkowska, Wang and Wu, CAV 2017) as specs over
parameters: brightness, contrast, patches, occlusion, L1/L2/L-inf changes, and sums and
sequences of them, each an affine map of a parameter box put in front of the network
(docs/manipulations.md)."""

from hybridver.manipulations.affine import (AffineMap, ManipulationError, ManipulationSpec,
                                            NormGroup)
from hybridver.manipulations.build import manipulation_spec
from hybridver.manipulations.families import FAMILIES, ImageLayout, image_layout
from hybridver.manipulations.graph import ParameterModel, parameter_graph
from hybridver.manipulations.outcome import RobustConfig, RobustResult, finish
from hybridver.manipulations.png import write_png

__all__ = ["AffineMap", "FAMILIES", "ImageLayout", "ManipulationError", "ManipulationSpec",
           "NormGroup", "ParameterModel", "RobustConfig", "RobustResult", "finish",
           "image_layout", "manipulation_spec", "parameter_graph", "write_png"]
