"""The tiny networks of the manipulation tests, built once per session."""

from __future__ import annotations

import numpy as np
import pytest

from hybridver.api import load_model
from tests.manipulations import nets


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """``{name: (LoadedModel, point, label)}``: the 4x4 MLP, the 6x6 CNN and a 2x2 flat MLP,
    each with a point on the 1/8 grid and the class the real model gives it."""
    folder = tmp_path_factory.mktemp("manipulation_nets")
    out = {}
    for name, make, side in (("mlp", nets.mlp, 4), ("cnn", nets.cnn, 6),
                             ("flat", lambda p: nets.flat_mlp(p, n=4), 2)):
        model = load_model(make(folder / f"{name}.onnx"))
        x0 = nets.grid_point(side, 8).reshape(model.graph.input_node.shape)
        y = model.real_model(x0[None].astype(np.float32))
        out[name] = (model, x0, int(np.argmax(y)))
    return out
