"""The network over parameters computes the original network on the manipulated image."""

from __future__ import annotations

import numpy as np
import pytest

from hybridver.api import load_model
from hybridver.ir.evaluate import evaluate
from hybridver.ir.ops import OpKind
from hybridver.manipulations import ParameterModel, manipulation_spec, parameter_graph
from tests.manipulations import nets


@pytest.mark.parametrize("make, clip", [(nets.mlp, None), (nets.cnn, (0.0, 1.0)),
                                        (nets.flat_mlp, (0.1, 0.9))])
def test_parameter_graph_matches_the_model_on_images(tmp_path, make, clip):
    model = load_model(make(tmp_path / "m.onnx"))
    shape = model.graph.input_node.shape
    side = int(np.sqrt(np.prod(shape)))
    x0 = nets.grid_point(side, 8).reshape(shape)
    spec = manipulation_spec(x0, 0, ["brightness=0.3", "patch=2x2@1,1:0.5", "contrast=0.2"],
                             shape, model.n_outputs, clip=clip)
    g = parameter_graph(model.graph, spec)
    assert g.input_node.shape == (1, spec.n_params)
    assert (clip is not None) == (OpKind.RELU in {n.op for n in g.nodes()
                                                 if n.name.startswith("manipulation")})
    rng = np.random.default_rng(0)
    p = spec.amap.lower + rng.random((20, spec.n_params)) * (spec.amap.upper - spec.amap.lower)
    images = spec.images(p)
    if clip is not None:
        assert images.min() >= clip[0] and images.max() <= clip[1]
    ours = evaluate(g, p.reshape(20, 1, -1)).numpy().reshape(20, -1)
    direct = evaluate(model.graph, images.reshape(20, *shape)).numpy().reshape(20, -1)
    np.testing.assert_allclose(ours, direct, rtol=1e-12, atol=1e-12)
    real = ParameterModel(model.real_model, spec, model.input_dtype,
                          model.graph.output_node.shape)
    y = real(p.reshape(20, 1, -1))
    assert y.shape == (20, *model.graph.output_node.shape)
    np.testing.assert_allclose(y.reshape(20, -1), direct, atol=1e-4)
    assert real.images_fed.dtype == np.float32 and real.images_fed.shape == (20, *shape)


def test_norm_cuts_are_extra_outputs(tmp_path):
    """With L1/L2 balls the network over parameters ends in the class scores and each
    ball's measure (sum |p_i|, sum p_i^2); the real model over parameters gives the same."""
    model = load_model(nets.mlp(tmp_path / "m.onnx"))
    x0 = nets.grid_point(4, 8).reshape(1, 1, 4, 4)
    spec = manipulation_spec(x0, 0, ["l1=0.5", "l2=0.3", "brightness=0.1"], (1, 1, 4, 4), 3)
    assert spec.n_outputs == 5 and len(spec.cuts) == 2
    g = parameter_graph(model.graph, spec)
    assert g.output_node.shape == (1, 5)
    rng = np.random.default_rng(1)
    p = rng.uniform(-0.3, 0.3, size=(7, spec.n_params))
    ours = evaluate(g, p.reshape(7, 1, -1)).numpy().reshape(7, -1)
    np.testing.assert_allclose(ours[:, 3], np.abs(p[:, :16]).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(ours[:, 4], (p[:, 16:32] ** 2).sum(axis=1), rtol=1e-12)
    real = ParameterModel(model.real_model, spec, model.input_dtype, g.output_node.shape)
    np.testing.assert_allclose(real(p.reshape(7, 1, -1)).reshape(7, -1), ours, atol=1e-4)
    row = spec.parameter_spec().cases[0].disjuncts[0]
    assert row.C.shape == (3, 5) and row.d[1] == -0.5
    assert row.d[2] == np.nextafter(-0.09, -1)  # -9/100 rounded down
    assert dict(row.exact_d)[2] * 100 == -9  # -0.3^2, exactly
    bare = manipulation_spec(x0, 0, ["l2=0.3"], (1, 1, 4, 4), 3, norm_cut=False)
    assert parameter_graph(model.graph, bare).output_node.shape == (1, 3)
