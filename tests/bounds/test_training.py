"""Differentiable training bounds (hybridver.bounds.training): equal to the engine's bounds
to rounding, sound by sampling, gradients equal to finite differences.

Tolerances: in float64 both computations are the same formulas summed in other orders;
the engine also subtracts its rounding margins (``gamma(n) * 2**-53`` times the magnitudes,
``relaxation_ulps`` ulps per relaxation), so they differ by about ``1e-13`` here: the
tests allow ``1e-9 * (1 + |bound|)``.  In float32 (the module's dtype) against the engine's
float32 CROWN, each layer's sums of ``n`` products carry relative errors up to
``n * 2**-24`` of the terms' magnitudes: ``1e-4 * (1 + max |bound|)``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from hybridver.bounds import BoundConfig, compute_bounds, for_training
from hybridver.bounds.training import TrainingBoundConfig, input_box, program
from hybridver.errors import DimensionMismatchError, UnsupportedOpError
from hybridver.frontends.torch import from_torch

METHODS = ["ibp", "crown-ibp", "crown"]
ENGINE = {"ibp": BoundConfig(method="ibp", dtype="float64"),
          "crown-ibp": BoundConfig(method="crown", intermediate="ibp", dtype="float64"),
          "crown": BoundConfig(method="crown", dtype="float64")}


def conv_net(act: type[nn.Module], seed: int = 0, dtype=torch.float64) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3, stride=2, padding=1), act(), nn.Flatten(),
                         nn.Linear(48, 12), act(), nn.Linear(12, 4)).to(dtype)


def mlp(act: type[nn.Module], sizes=(6, 8, 8, 3), seed: int = 0, dtype=torch.float64
        ) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers).to(dtype)


def engine_bounds(module, lo, hi, C, config):
    graph = from_torch(module, torch.zeros((1, *lo.shape[1:]), dtype=torch.float64))
    n = lo.shape[0]
    res = compute_bounds(graph, lo.detach().reshape(n, 1, *lo.shape[1:]),
                         hi.detach().reshape(n, 1, *lo.shape[1:]), C, config=config)
    return res.lower, res.upper


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("act", [nn.ReLU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU])
def test_bounds_equal_the_engines_in_float64(act, method):
    net = conv_net(act)
    x = torch.rand(5, 1, 8, 8, dtype=torch.float64)
    C = torch.randn(5, 3, 4, dtype=torch.float64)
    ours = for_training(net, x, 0.05, method, C)
    lo, hi = input_box(x, 0.05)
    e_lo, e_hi = engine_bounds(net, lo, hi, C, ENGINE[method])
    tol = 1e-9 * (1 + e_lo.abs())
    assert torch.all((ours.lower.detach() - e_lo).abs() <= tol)
    assert torch.all((ours.upper.detach() - e_hi).abs() <= 1e-9 * (1 + e_hi.abs()))
    # CROWN's intermediate bounds are really used: its rows differ from CROWN-IBP's
    if method == "crown" and act is nn.ReLU:
        other = for_training(net, x, 0.05, "crown-ibp", C)
        assert not torch.allclose(ours.lower, other.lower)


@pytest.mark.parametrize("method", METHODS)
def test_strides_dilation_groups_and_mixed_activations_equal_the_engine(method):
    """Transposed convolutions need ``output_padding`` where a stride skips input rows."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2), nn.Tanh(),
                        nn.Conv2d(4, 3, 2, stride=2), nn.LeakyReLU(0.1), nn.Flatten(),
                        nn.Linear(12, 7), nn.Sigmoid(), nn.Linear(7, 5)).double()
    x = torch.rand(4, 2, 9, 9, dtype=torch.float64)
    ours = for_training(net, x, 0.03, method)
    e_lo, e_hi = engine_bounds(net, *input_box(x, 0.03), None, ENGINE[method])
    assert torch.allclose(ours.lower.detach(), e_lo, rtol=0, atol=1e-9)
    assert torch.allclose(ours.upper.detach(), e_hi, rtol=0, atol=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_float32_bounds_equal_the_engines_float32_bounds(method):
    net = mlp(nn.ReLU, (64, 32, 32, 10), dtype=torch.float32)
    x = torch.rand(4, 64)
    ours = for_training(net, x, 0.02, method)
    config = BoundConfig(method="ibp" if method == "ibp" else "crown",
                         intermediate="ibp" if method == "crown-ibp" else "crown")
    lo, hi = input_box(x.double(), 0.02)
    e_lo, e_hi = engine_bounds(net.double(), lo, hi, None, config)
    scale = 1 + float(e_lo.abs().max())
    assert torch.all((ours.lower.double() - e_lo).abs() <= 1e-4 * scale)
    assert torch.all((ours.upper.double() - e_hi).abs() <= 1e-4 * scale)


def test_per_sample_eps_and_clipping_equal_the_engine():
    net = mlp(nn.ReLU)
    x = torch.rand(3, 6, dtype=torch.float64)
    eps = torch.tensor([0.0, 0.1, 0.4], dtype=torch.float64)
    ours = for_training(net, x, eps, "crown", clip=(0.0, 1.0))
    lo, hi = input_box(x, eps, (0.0, 1.0))
    assert torch.equal(lo[0], x[0]) and float(lo.min()) >= 0.0 and float(hi.max()) <= 1.0
    e_lo, e_hi = engine_bounds(net, lo, hi, None, ENGINE["crown"])
    assert torch.allclose(ours.lower.detach(), e_lo, rtol=0, atol=1e-9)
    assert torch.allclose(ours.upper.detach(), e_hi, rtol=0, atol=1e-9)
    # a zero radius: the bounds are the output itself
    assert torch.allclose(ours.lower[0], net(x[:1])[0], atol=1e-12)


def _sampled_rows(net, x, eps, C, n=3000):
    lo, hi = input_box(x, eps)
    u = torch.rand((n, *x.shape), dtype=x.dtype)
    u[:8] = torch.randint(0, 2, (8, *x.shape), dtype=x.dtype)   # some corners of the box
    points = lo + u * (hi - lo)
    y = net(points.reshape(-1, *x.shape[1:])).reshape(n, x.shape[0], -1)
    return torch.einsum("bmo,nbo->nbm", C, y)


@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("act", [nn.ReLU, nn.Sigmoid, nn.Tanh])
def test_bounds_contain_every_sampled_output(act, method, fold):
    net = conv_net(act, seed=3)
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    C = torch.randn(3, 5, 4, dtype=torch.float64)
    config = TrainingBoundConfig(fold_spec=fold, intersect_ibp=not fold)
    with torch.no_grad():
        b = for_training(net, x, 0.08, method, C, config=config)
        rows = _sampled_rows(net, x, 0.08, C)
    assert torch.all(rows >= b.lower - 1e-9) and torch.all(rows <= b.upper + 1e-9)


def test_folding_the_spec_tightens_ibp():
    net = mlp(nn.ReLU, (6, 16, 16, 4))
    x = torch.rand(4, 6, dtype=torch.float64)
    C = torch.randn(4, 3, 4, dtype=torch.float64)
    plain = for_training(net, x, 0.1, "ibp", C)
    folded = for_training(net, x, 0.1, "ibp", C, config=TrainingBoundConfig(fold_spec=True))
    assert torch.all(folded.lower >= plain.lower - 1e-12)
    assert torch.all(folded.upper <= plain.upper + 1e-12)
    assert bool((folded.lower > plain.lower + 1e-6).any())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("act", [nn.ReLU, nn.Tanh])
def test_gradients_equal_finite_differences(act, method):
    """gradcheck perturbs its inputs in place: the module's own parameters and ``x`` and
    ``eps`` are the inputs, so the bounds are checked as functions of all of them."""
    torch.manual_seed(5)
    if act is nn.ReLU:   # a convolution too: 2 x 3 x 3 channels, 155 parameters
        net = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1), act(), nn.Flatten(),
                            nn.Linear(18, 6), act(), nn.Linear(6, 3)).double()
        shape = (2, 1, 6, 6)
    else:
        net, shape = mlp(act, seed=5), (2, 6)
    torch.manual_seed(11)
    x = torch.rand(shape, dtype=torch.float64, requires_grad=True)
    eps = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    C = torch.randn(2, 3, 3, dtype=torch.float64)
    params = list(net.parameters())

    def bounds(*_inputs):
        out = for_training(net, x, eps, method, C)
        return out.lower, out.upper

    assert torch.autograd.gradcheck(bounds, (*params, x, eps), eps=1e-6, atol=1e-5)


def test_gradients_reach_every_parameter_in_float32():
    net = conv_net(nn.ReLU, dtype=torch.float32)
    x = torch.rand(4, 1, 8, 8)
    y = torch.tensor([0, 0, 1, 2])
    C = torch.eye(4)[y][:, None, :] - torch.eye(4)[None]          # (B, 4, 4) margins
    b = for_training(net, x, 0.02, "crown-ibp", C, config=TrainingBoundConfig(bound_upper=False))
    assert b.upper is None and b.lower.shape == (4, 4)
    b.lower.sum().backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all())
               and float(p.grad.abs().sum()) > 0 for p in net.parameters())


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))])
def test_bounds_follow_the_device(device):
    net = conv_net(nn.ReLU, dtype=torch.float32).to(device)
    x = torch.rand(2, 1, 8, 8, device=device)
    b = for_training(net, x, torch.full((2,), 0.01, device=device), "crown")
    assert b.lower.device.type == device and b.upper.device.type == device
    b.lower.sum().backward()
    assert net[0].weight.grad.device.type == device


def test_inplace_relu_and_identity_and_nested_sequential():
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Linear(6, 8), nn.ReLU(inplace=True), nn.Identity())
    net = nn.Sequential(inner, nn.Linear(8, 3)).double()
    ref = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    ref.load_state_dict({"0.weight": inner[0].weight, "0.bias": inner[0].bias,
                         "2.weight": net[1].weight, "2.bias": net[1].bias})
    x = torch.rand(2, 6, dtype=torch.float64)
    for method in METHODS:
        a, b = for_training(net, x, 0.1, method), for_training(ref, x, 0.1, method)
        assert torch.allclose(a.lower, b.lower) and torch.allclose(a.upper, b.upper)
    assert [s.kind for s in program(net)] == ["linear", "act", "linear"]


def test_unsupported_layers_are_listed():
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Softmax(-1))
    with pytest.raises(UnsupportedOpError) as info:
        for_training(net, torch.rand(2, 4), 0.1)
    assert "BatchNorm1d" in str(info.value) and "Softmax" in str(info.value)
    with pytest.raises(UnsupportedOpError, match="negative slope"):
        program(nn.Sequential(nn.Linear(2, 2), nn.LeakyReLU(-0.5)))


def test_bad_shapes_are_refused():
    net = mlp(nn.ReLU)
    x = torch.rand(3, 6, dtype=torch.float64)
    with pytest.raises(DimensionMismatchError):
        for_training(net, x, 0.1, C=torch.ones(2, 4, dtype=torch.float64))
    with pytest.raises(DimensionMismatchError):
        for_training(net, x, torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError):
        for_training(net, x, 0.1, method="alpha")
