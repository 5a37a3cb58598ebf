"""Joint alpha-CROWN (intermediate bounds optimized too): sound, never looser than CROWN,
tighter than final-only alpha-CROWN where intermediate bounds matter, and its switches."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from hybridver.api import load_model
from hybridver.bounds import AlphaConfig, BoundConfig, compute_bounds
from hybridver.config_file import config_from_dict
from hybridver.ir import OpKind
from tests.bounds.test_crown import assert_contains, mlp, sample_box
from tests.conftest import EXAMPLES

JOINT = BoundConfig(method="alpha-crown", alpha=AlphaConfig(iterations=6, patience=0))
FINAL_ONLY = BoundConfig(method="alpha-crown", alpha=AlphaConfig(
    iterations=6, patience=0, optimize_intermediate=False))


def _box(n: int, seed: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    c = np.random.default_rng(seed).normal(size=n)
    return (c - radius)[None], (c + radius)[None]


@pytest.mark.parametrize("act", [OpKind.RELU, OpKind.SIGMOID, OpKind.TANH])
def test_joint_alpha_is_sound_and_never_looser_than_crown(act):
    g = mlp([5, 20, 20, 20, 4], 3, act)
    lo, hi = _box(5, 3, 1.0)
    crown = compute_bounds(g, lo, hi)
    joint = compute_bounds(g, lo, hi, config=JOINT)
    assert joint.stats["joint"] is True and joint.stats["alpha_iterations"] == 6
    assert torch.all(joint.lower >= crown.lower) and torch.all(joint.upper <= crown.upper)
    assert_contains(g, joint, sample_box(lo[0], hi[0], 2000))


def test_joint_alpha_beats_final_only_alpha_on_a_deep_relu_mlp():
    # intermediate bounds of a deep network are where final-only alpha-CROWN loses
    g = mlp([5, 32, 32, 32, 32, 4], 7)
    lo, hi = _box(5, 7, 1.0)
    final_only = compute_bounds(g, lo, hi, config=FINAL_ONLY)
    joint = compute_bounds(g, lo, hi, config=JOINT)
    assert "joint" not in final_only.stats
    width = lambda r: float((r.upper - r.lower).sum())  # noqa: E731
    assert width(joint) < 0.95 * width(final_only)
    assert_contains(g, joint, sample_box(lo[0], hi[0], 2000))


def test_intermediate_bounds_pass_the_gradient_of_crown_where_ibp_is_tighter():
    # a deep narrow MLP on a wide box: IBP is the tighter end of many intermediate neurons
    # at first; with the gradient stopped there (crown_gradient=False, the old behaviour)
    # their parameters never moved and the final bounds stayed about 20% looser
    g = mlp([5, 12, 12, 12, 12, 12, 12, 3], 5)
    lo, hi = _box(5, 5, 2.0)
    config = BoundConfig(method="alpha-crown", alpha=AlphaConfig(iterations=8, patience=0))
    stopped = dataclasses.replace(config, alpha=dataclasses.replace(config.alpha,
                                                                    crown_gradient=False))
    crown = compute_bounds(g, lo, hi)
    new, old = compute_bounds(g, lo, hi, config=config), compute_bounds(g, lo, hi, config=stopped)
    width = lambda r: float((r.upper - r.lower).sum())  # noqa: E731
    assert new.stats["joint"] is True
    assert width(new) < 0.9 * width(old) < 0.9 * width(crown)
    assert torch.all(new.lower >= crown.lower) and torch.all(new.upper <= crown.upper)
    assert_contains(g, new, sample_box(lo[0], hi[0], 4000))


@pytest.mark.parametrize("act", [OpKind.SIGMOID, OpKind.TANH])
def test_smooth_relaxations_take_smaller_steps(act):
    # tangent points moved by steps of lr = 0.5 of their sound range overshoot: with
    # smooth_lr=None (the old behaviour) the bounds were 5-9% looser here
    g = mlp([5, 20, 20, 20, 4], 5, act)
    lo, hi = _box(5, 5, 2.0)
    config = BoundConfig(method="alpha-crown", alpha=AlphaConfig(iterations=10, patience=0))
    same = dataclasses.replace(config, alpha=dataclasses.replace(config.alpha, smooth_lr=None))
    crown = compute_bounds(g, lo, hi)
    new, old = compute_bounds(g, lo, hi, config=config), compute_bounds(g, lo, hi, config=same)
    width = lambda r: float((r.upper - r.lower).sum())  # noqa: E731
    assert width(new) < 0.97 * width(old)
    assert torch.all(new.lower >= crown.lower) and torch.all(new.upper <= crown.upper)
    assert_contains(g, new, sample_box(lo[0], hi[0], 4000))


@pytest.mark.parametrize("net", ["digits_relu.onnx", "digits_sigmoid.onnx", "digits_tanh.onnx"])
def test_joint_alpha_on_the_example_networks(net):
    model = load_model(EXAMPLES / net)
    c = np.random.default_rng(2).random(model.n_inputs) * 16
    lo, hi = (c - 1.0)[None], (c + 1.0)[None]
    crown = compute_bounds(model.graph, lo, hi)
    joint = compute_bounds(model.graph, lo, hi, config=JOINT)
    assert torch.all(joint.lower >= crown.lower) and torch.all(joint.upper <= crown.upper)
    assert_contains(model.graph, joint, sample_box(lo[0], hi[0], 3000))


def _cnn_onnx(path, seed: int = 0) -> None:
    """x (1, 1, 6, 6) -> Conv 3x3 (3 channels, pad 1) -> Relu -> Conv 3x3 stride 2 (4)
    -> Relu -> Flatten -> Gemm (3)."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(a.astype(np.float32), name) for name, a in [
        ("w1", rng.normal(size=(3, 1, 3, 3)) / 3), ("b1", rng.normal(size=3) * 0.2),
        ("w2", rng.normal(size=(4, 3, 3, 3)) / 5), ("b2", rng.normal(size=4) * 0.2),
        ("w3", rng.normal(size=(3, 16)) / 4), ("b3", rng.normal(size=3) * 0.2)]]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Flatten", ["r2"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def test_joint_alpha_on_a_cnn_contains_onnxruntime_outputs(tmp_path):
    path = tmp_path / "cnn.onnx"
    _cnn_onnx(path)
    model = load_model(path)
    lo, hi = _box(36, 1, 0.4)
    crown = compute_bounds(model.graph, lo, hi)
    joint = compute_bounds(model.graph, lo, hi, config=JOINT)
    assert joint.stats["joint"] is True
    assert torch.all(joint.lower >= crown.lower) and torch.all(joint.upper <= crown.upper)
    session = ort.InferenceSession(str(path))
    points = sample_box(lo[0], hi[0], 2000).astype(np.float32)
    ys = np.concatenate([session.run(None, {"x": p.reshape(1, 1, 6, 6)})[0] for p in points])
    assert np.all(ys >= joint.lower[0].numpy()) and np.all(ys <= joint.upper[0].numpy())


def test_joint_alpha_with_restrictions_and_a_batch_is_sound():
    g = mlp([4, 16, 16, 3], 5)
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(3, 4))
    lo, hi = centres - 0.8, centres + 0.8
    # the first neuron of the first pre-activation is known to be >= 0 in domain 0
    rl = np.full((3, 1, 16), -np.inf)
    rl[0, 0, 0] = 0.0
    restr = {"l0": (rl, np.full((3, 1, 16), np.inf))}
    joint = compute_bounds(g, lo, hi, restrictions=restr, config=JOINT)
    crown = compute_bounds(g, lo, hi, restrictions=restr)
    assert torch.all(joint.lower >= crown.lower) and torch.all(joint.upper <= crown.upper)
    for b in range(3):
        pts = sample_box(lo[b], hi[b], 3000, seed=b)
        if b == 0:
            w = np.asarray(g.node("l0").consts["weight"])[0]
            pts = pts[pts @ w + np.asarray(g.node("l0").consts["bias"])[0] >= 0]
        assert_contains(g, joint, pts, batch=b)


def test_the_switch_reaches_the_config_file():
    config = config_from_dict({"whole_box": {"alpha": {
        "optimize_intermediate": False, "intermediate_lr": 0.2, "crown_gradient": False,
        "smooth_lr": 0.3}}})
    assert config.whole_box.alpha.optimize_intermediate is False
    assert config.whole_box.alpha.intermediate_lr == 0.2
    assert config.whole_box.alpha.crown_gradient is False
    assert config.whole_box.alpha.smooth_lr == 0.3
    assert AlphaConfig().optimize_intermediate is True
    assert AlphaConfig().smooth_lr == 0.1 and AlphaConfig().crown_gradient is True
    with pytest.raises(ValueError):
        AlphaConfig(intermediate_lr=0)


def test_too_many_parameters_fall_back_to_final_only_alpha():
    g = mlp([4, 16, 16, 3], 6)
    lo, hi = _box(4, 6, 1.0)
    tight = BoundConfig(method="alpha-crown", memory_limit_bytes=4000,
                        alpha=AlphaConfig(iterations=4, patience=0))
    result = compute_bounds(g, lo, hi, config=tight)
    assert result.stats["joint"] is False and result.stats["alpha_iterations"] == 4
    crown = compute_bounds(g, lo, hi)
    assert torch.all(result.lower >= crown.lower) and torch.all(result.upper <= crown.upper)
    assert_contains(g, result, sample_box(lo[0], hi[0], 2000))
