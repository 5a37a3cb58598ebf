"""The load-time check of the IR against the real model, on probe points of the spec."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import hybridver
from hybridver.config import VerifyConfig
from hybridver.frontends.model_check import (ModelMismatchError, check_loaded_model,
                                             check_shapes, probe_points)
from hybridver.frontends.onnx import CHECK_TOLERANCE, compare_ir_with_onnxruntime
from hybridver.frontends.onnx.runtime_check import first_differing_node
from hybridver.specs import InputBox, OutputConstraints, Spec, SpecCase
from tests.frontends.planted_model import PLANTED_NODE, plant, write_model


def _spec(*boxes) -> Spec:
    out = OutputConstraints(np.ones((1, 1)), np.zeros(1))
    cases = [SpecCase(InputBox(lo, hi), (out,)) for lo, hi in boxes]
    return Spec(cases, n_inputs=len(boxes[0][0]), n_outputs=1)


def test_probe_points_take_centres_vertices_and_corners_of_each_case_in_turn():
    a = (np.array([0.0, 10.0, -3.0]), np.array([1.0, 12.0, -2.0]))
    b = (np.array([5.0, 5.0, 5.0]), np.array([6.0, 7.0, 8.0]))
    x = probe_points(_spec(a, b), 10)
    assert x.shape == (10, 3)
    boxes = [a, b] * 5
    for (lo, hi), p in zip(boxes, x):
        assert np.all(lo <= p) and np.all(p <= hi)
    np.testing.assert_array_equal(x[0], (a[0] + a[1]) / 2)
    np.testing.assert_array_equal(x[1], (b[0] + b[1]) / 2)
    for k, (lo, hi) in ((2, a), (3, b)):  # a vertex: every entry at a bound
        assert np.all((x[k] == lo) | (x[k] == hi))
    np.testing.assert_array_equal(x[4], a[0])
    np.testing.assert_array_equal(x[7], b[1])
    np.testing.assert_array_equal(probe_points(_spec(a, b), 10), x)  # same points each run


def test_probe_points_spread_over_more_cases_than_points():
    boxes = [(np.full(1, float(k)), np.full(1, k + 0.5)) for k in range(20)]
    x = probe_points(_spec(*boxes), 4)
    np.testing.assert_array_equal(x[:, 0], [0.25, 5.25, 10.25, 15.25])
    assert probe_points(Spec((), n_inputs=1, n_outputs=1), 8).shape == (0, 1)


def test_planted_bug_is_invisible_in_the_unit_box_and_seen_in_the_spec_region(
        tmp_path, monkeypatch):
    path, spec_path = write_model(tmp_path)
    plant(monkeypatch)
    model = hybridver.load_model(path)
    spec = hybridver.load_spec(spec_path, model)
    _, rel = compare_ir_with_onnxruntime(path, model.graph, 50)
    assert rel <= CHECK_TOLERANCE
    _, rel = compare_ir_with_onnxruntime(path, model.graph, points=probe_points(spec, 8))
    assert rel > 0.1


def test_check_names_the_first_node_that_differs(tmp_path, monkeypatch):
    path, spec_path = write_model(tmp_path)
    plant(monkeypatch)
    model = hybridver.load_model(path)
    spec = hybridver.load_spec(spec_path, model)
    with pytest.raises(ModelMismatchError) as err:
        check_loaded_model(model, spec, 8)
    message = str(err.value)
    assert f"first differing node: node '{PLANTED_NODE}' (Relu, output 'r')" in message
    assert "at probe point 0 of the spec's input region (outputs: max abs diff" in message
    assert "\n" not in message and message.count("node '") == 1
    x = np.array([[11.0, 11.0]], dtype=np.float32)
    assert first_differing_node(path, model.graph, x).startswith(f"node '{PLANTED_NODE}'")
    assert first_differing_node(path, model.graph, x * 0) is None  # agrees at 0


def test_a_difference_the_import_does_not_have_is_put_on_the_simplification(
        tmp_path, monkeypatch):
    path, _ = write_model(tmp_path)
    plant(monkeypatch)
    wrong = hybridver.load_model(path).graph
    monkeypatch.undo()  # the import is right again: the difference is in ``wrong`` alone
    where = first_differing_node(path, wrong, np.array([11.0, 11.0], dtype=np.float32))
    assert where.startswith("none as imported; the simplified graph differs")


def test_correct_model_passes(tmp_path):
    path, spec_path = write_model(tmp_path)
    model = hybridver.load_model(path)
    spec = hybridver.load_spec(spec_path, model)
    check_loaded_model(model, spec, 8)
    assert first_differing_node(path, model.graph,
                                np.array([[11.0, 10.5]], dtype=np.float32)) is None


def test_zero_points_check_only_the_shapes(tmp_path, monkeypatch):
    path, spec_path = write_model(tmp_path)
    plant(monkeypatch)
    model = hybridver.load_model(path)
    check_loaded_model(model, hybridver.load_spec(spec_path, model), 0)
    with pytest.raises(ValueError):
        VerifyConfig(load_check_points=-1)


def test_shape_mismatch_is_an_error(tmp_path):
    path, _ = write_model(tmp_path)
    model = hybridver.load_model(path)

    class Declared:
        input_shape, output_shape = (1, 2), (1, 3)

    with pytest.raises(ModelMismatchError, match=r"output shape \(1, 1\) differs from the "
                                                  r"real model's \(1, 3\)"):
        check_shapes(model.graph, Declared(), str(path))


def test_torch_module_is_checked_the_same_way():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    model = hybridver.from_module(net, torch.zeros(1, 2))
    spec = _spec((np.array([10.0, 10.0]), np.array([12.0, 12.0])))
    check_loaded_model(model, spec, 8)
    other = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    wrong = dataclasses.replace(model, real_model=type(model.real_model)(other, torch.float32,
                                                                       model.graph))
    with pytest.raises(ModelMismatchError, match="differs from torch at probe point 0"):
        check_loaded_model(wrong, spec, 8)
