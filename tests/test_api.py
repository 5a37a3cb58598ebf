"""End-to-end verification: right answers or unknown, never wrong; sat always confirmed."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

import hybridver
from hybridver.config import AttackConfig, VerifyConfig
from hybridver.frontends.onnx import OnnxRuntimeModel
from hybridver.result import Verdict
from hybridver.specs import robustness
from tests.conftest import EXAMPLES, SHARED_BENCHMARKS

NO_ATTACK = VerifyConfig(timeout_s=10, attack=AttackConfig(samples=0, rounds=0))


def _expected(folder: Path, name: str = "expected_results.csv") -> list[tuple[str, str, str]]:
    with (folder / name).open() as handle:
        return [(r["onnx"], r["vnnlib"], r["expected"]) for r in csv.DictReader(handle)]


def _assert_confirmed(result, onnx_path: Path, spec) -> None:
    """The counterexample, run again through onnxruntime, is in the box and violates."""
    cex = result.counterexample
    assert cex is not None
    ort = OnnxRuntimeModel(onnx_path)
    y = ort(cex.x.astype(np.float32).reshape(1, *ort.input_shape)).reshape(-1)
    np.testing.assert_allclose(y, cex.y, rtol=0, atol=0)
    assert spec.is_counterexample(cex.x, y)


EXAMPLE_INSTANCES = _expected(EXAMPLES)


@pytest.mark.parametrize("onnx_name,vnnlib_name,expected", EXAMPLE_INSTANCES,
                         ids=[f"{a}-{b}" for a, b, _ in EXAMPLE_INSTANCES])
def test_examples_right_or_unknown(onnx_name, vnnlib_name, expected):
    model = hybridver.load_model(EXAMPLES / onnx_name)
    spec = hybridver.load_spec(EXAMPLES / vnnlib_name, model)
    result = hybridver.verify(model, spec, VerifyConfig(timeout_s=60))
    assert result.verdict.value in (expected, "unknown")
    if result.verdict is Verdict.SAT:
        _assert_confirmed(result, EXAMPLES / onnx_name, spec)
    if "eps_small" in vnnlib_name or "eps_large" in vnnlib_name:
        assert result.verdict.value == expected  # IBP proves the small ones, PGD breaks the large


@pytest.mark.parametrize("onnx_name,vnnlib_name,expected",
                         [i for i in EXAMPLE_INSTANCES if i[2] == "sat"],
                         ids=lambda v: str(v))
def test_bounds_path_never_claims_unsat_on_known_counterexample(onnx_name, vnnlib_name,
                                                                 expected):
    """With the attack off, only the bound paths (whole box, then activation splitting with
    its own search inside the domains) can answer: they must not say unsat; a sat answer
    carries a counterexample the real model confirmed."""
    model = hybridver.load_model(EXAMPLES / onnx_name)
    spec = hybridver.load_spec(EXAMPLES / vnnlib_name, model)
    result = hybridver.verify(model, spec, NO_ATTACK)
    assert result.verdict in (Verdict.UNKNOWN, Verdict.TIMEOUT, Verdict.SAT)
    if result.verdict is Verdict.SAT:
        assert result.counterexample.checked_by == "onnxruntime"
        assert result.counterexample.margin <= 0


def test_bounds_path_on_point_box_around_counterexample():
    """A box shrunk onto a violating point: the bounds are tight there, yet no unsat."""
    model = hybridver.load_model(EXAMPLES / "digits_relu.onnx")
    spec = hybridver.load_spec(EXAMPLES / "digits_relu_eps_large_2.vnnlib", model)
    found = hybridver.verify(model, spec, VerifyConfig(timeout_s=60))
    assert found.verdict is Verdict.SAT
    x = found.counterexample.x
    # rows read 'Y_label - Y_j <= 0', so the label carries the +1 coefficient
    label = int(np.argmax(spec.cases[0].disjuncts[0].C[0]))
    tight = robustness(x, 1e-7, label, 10)
    result = hybridver.verify(model, tight, NO_ATTACK)
    assert result.verdict is not Verdict.UNSAT


def test_torch_module_path():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    example = torch.zeros(1, 4)
    model = hybridver.from_module(net, example)
    x0 = np.full(4, 0.5)
    label = int(net(torch.as_tensor(x0, dtype=torch.float32)[None]).argmax())
    proven = hybridver.verify(model, robustness(x0, 1e-4, label, 3), VerifyConfig(timeout_s=30))
    assert proven.verdict is Verdict.UNSAT
    broken = hybridver.verify(model, robustness(x0, 5.0, label, 3), VerifyConfig(timeout_s=30))
    assert broken.verdict in (Verdict.SAT, Verdict.UNKNOWN)
    if broken.verdict is Verdict.SAT:
        y = net(torch.as_tensor(broken.counterexample.x, dtype=torch.float32)[None])
        assert int(y.argmax()) != label or float(y.max()) <= float(y[0, label])


def _vnncomp_test_instances():
    folder = SHARED_BENCHMARKS / "vnncomp_test"
    if not folder.is_dir():
        return []
    return _expected(folder)


@pytest.mark.parametrize("onnx_name,vnnlib_name,expected", _vnncomp_test_instances()
                         or [pytest.param("", "", "", marks=pytest.mark.skip(
                             reason="../shared/benchmarks absent"))])
def test_vnncomp_test_instances(onnx_name, vnnlib_name, expected):
    folder = SHARED_BENCHMARKS / "vnncomp_test"
    model = hybridver.load_model(folder / onnx_name)
    spec = hybridver.load_spec(folder / vnnlib_name, model)
    result = hybridver.verify(model, spec, VerifyConfig(timeout_s=60))
    assert result.verdict.value in (expected, "unknown")
    if result.verdict is Verdict.SAT:
        _assert_confirmed(result, folder / onnx_name, spec)
    no_attack = hybridver.verify(model, spec, NO_ATTACK)
    if expected == "sat":
        assert no_attack.verdict is not Verdict.UNSAT


def test_verify_refuses_a_model_whose_ir_differs_inside_the_spec_region(tmp_path, monkeypatch):
    """The planted importer bug agrees with onnxruntime on [-1, 1] and not on the spec's
    region, where the IR's outputs are below the real ones: the bounds would prove a wrong
    unsat (they did before the load-time check).  Now no verdict, an error naming the node."""
    from hybridver.frontends.model_check import ModelMismatchError
    from tests.frontends.planted_model import PLANTED_NODE, plant, write_model

    path, spec = write_model(tmp_path)
    assert hybridver.verify_files(path, spec, NO_ATTACK).verdict is Verdict.SAT  # correct
    plant(monkeypatch)
    with pytest.raises(ModelMismatchError, match=f"first differing node: node "
                                                 f"'{PLANTED_NODE}' \\(Relu, output 'r'\\)"):
        hybridver.verify_files(path, spec, NO_ATTACK)
    model = hybridver.load_model(path)
    with pytest.raises(ModelMismatchError):
        hybridver.verify(model, hybridver.load_spec(spec, model), NO_ATTACK)


def test_torch_conv_module_runs_on_the_examples_shape():
    """The module is run on the example's shape (the IR's per-sample shape includes its
    batch axis): the load-time check and the confirmation of a counterexample work for a
    convolutional module (both called it on ``(1, 1, C, H, W)`` before)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(2 * 4 * 4, 3))
    model = hybridver.from_module(net, torch.zeros(1, 1, 6, 6))
    x0 = np.full(36, 0.5)
    label = int(net(torch.full((1, 1, 6, 6), 0.5)).argmax())
    result = hybridver.verify(model, robustness(x0, 2.0, label, 3), VerifyConfig(timeout_s=20))
    assert result.verdict is Verdict.SAT
    y = net(torch.as_tensor(result.counterexample.x, dtype=torch.float32).reshape(1, 1, 6, 6))
    np.testing.assert_array_equal(y.detach().double().numpy().reshape(-1),
                                  result.counterexample.y)


def _argmax_relu() -> torch.nn.Module:
    """``y = relu(x)`` on two inputs: class 0 scores at least as high iff ``x_0 >= x_1``."""
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
        net[0].bias.zero_()
    return net


def test_a_torch_module_is_verified_directly():
    net = _argmax_relu()
    x0 = np.array([0.5, 0.3])
    robust = hybridver.verify(net, robustness(x0, 0.05, 0, 2), VerifyConfig(timeout_s=30))
    assert robust.verdict is Verdict.UNSAT
    # the ball of radius 0.2 holds (0.4, 0.4), where class 1 ties: a known counterexample
    broken = hybridver.verify(net, robustness(x0, 0.2, 0, 2), VerifyConfig(timeout_s=30))
    assert broken.verdict is Verdict.SAT
    cex = broken.counterexample
    assert cex.checked_by == "torch" and np.all(np.abs(cex.x - x0) <= 0.2)
    with torch.no_grad():
        y = net(torch.as_tensor(cex.x, dtype=torch.float32)[None])[0]
    assert float(y[1]) >= float(y[0])


def test_the_input_shape_of_a_module_is_inferred_or_given():
    from hybridver.errors import HybridverInputError

    torch.manual_seed(0)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(2 * 4 * 4, 3))
    image = torch.rand(1, 1, 6, 6)
    label = int(cnn(image).argmax())
    spec = hybridver.robustness(image.flatten(), 1e-6, label, model=cnn)  # flat x0: 36
    assert spec.n_outputs == 3
    config = VerifyConfig(timeout_s=30)
    assert hybridver.verify(cnn, spec, config).verdict is Verdict.UNSAT  # (1, 1, 6, 6)
    assert hybridver.verify(cnn, spec, config, input_shape=(1, 1, 6, 6)).verdict \
        is Verdict.UNSAT
    wide = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 2), torch.nn.Flatten(),
                               torch.nn.Linear(2 * 3, 2))       # input (1, 1, 3, 4)
    flat = robustness(np.zeros(12), 0.1, 0, 2)
    with pytest.raises(HybridverInputError, match="input_shape"):
        hybridver.verify(wide, flat, config)                    # 12 is not a square
    assert hybridver.verify(wide, flat, config, input_shape=(1, 1, 3, 4)).verdict \
        in (Verdict.SAT, Verdict.UNSAT)
    with pytest.raises(HybridverInputError, match="batch dimension"):
        hybridver.verify(wide, flat, config, input_shape=(3, 4))   # no batch dimension


def test_robustness_at_the_top_level_reads_the_class_count_from_the_model():
    from hybridver.errors import HybridverInputError

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 5))
    x0 = np.zeros(4)
    assert hybridver.robustness(x0, 0.1, 2, model=net).n_outputs == 5
    assert net.training  # reading the class count left the module's mode alone
    loaded = hybridver.from_module(net, torch.zeros(1, 4))
    assert hybridver.robustness(x0, 0.1, 2, model=loaded).n_outputs == 5
    assert hybridver.robustness(x0, 0.1, 2, 5).n_outputs == 5
    with pytest.raises(HybridverInputError, match="n_classes"):
        hybridver.robustness(x0, 0.1, 2)


def test_inputs_that_require_grad_are_accepted():
    net = _argmax_relu()
    x0 = torch.tensor([[0.5, 0.3]], requires_grad=True)
    eps = torch.tensor(0.05, requires_grad=True)
    spec = hybridver.robustness(x0, eps, 0, model=net, lower=torch.zeros(1, 2),
                                upper=torch.ones(1, 2))
    np.testing.assert_allclose(spec.cases[0].region.lower, [0.45, 0.25])
    model = hybridver.from_module(net, x0)        # the example input requires grad too
    assert hybridver.verify(model, spec, VerifyConfig(timeout_s=30)).verdict is Verdict.UNSAT
