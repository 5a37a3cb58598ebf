"""Exact mode against brute force on tiny networks, with every back end.

* Random ReLU networks with 1 or 2 inputs: the margin ``g(x) = c . y(x)`` is evaluated in
  float64 on a dense grid.  With ``L`` a Lipschitz constant of ``g`` (product of spectral
  norms; ReLU is 1-Lipschitz) and ``r = h sqrt(n) / 2`` the largest distance from a point
  of the box to the grid, ``min_box g >= min_grid g - L r``.  The property ``g(x) + d <= 0``
  is then **sat** for ``d = -min_grid g - s`` (witness: the grid's argmin) and **unsat** for
  ``d = -min_grid g + L r + s`` (certified), with ``s`` a clear margin (above the MILP
  tolerance band, see ``test_conformance.py``).
* Networks with a counterexample hidden in a tiny region (a steep bump plus a random
  smooth-ish ReLU term): uniform sampling misses it, exact mode must find and confirm it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hybridver.api import from_module
from hybridver.backends import backend_names, get_backend
from hybridver.backends.options import ExactConfig
from hybridver.pipeline.exact import verify_exact
from hybridver.result import Verdict
from hybridver.specs import InputBox, OutputConstraints, Spec, SpecCase

BACKENDS = backend_names()


def _available(name: str) -> None:
    from hybridver.backends import get_backend
    try:
        get_backend(name)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"back end {name} unavailable: {exc}")


def random_net(seed: int, n_in: int, widths: tuple[int, ...]) -> torch.nn.Sequential:
    gen = torch.Generator().manual_seed(seed)
    layers: list[torch.nn.Module] = []
    sizes = (n_in, *widths, 2)
    for i in range(len(sizes) - 1):
        lin = torch.nn.Linear(sizes[i], sizes[i + 1]).double()
        with torch.no_grad():   # float32-representable weights, as in an ONNX model
            lin.weight.copy_(torch.randn(sizes[i + 1], sizes[i], generator=gen).float().double())
            lin.bias.copy_((0.5 * torch.randn(sizes[i + 1], generator=gen)).float().double())
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).eval()


def lipschitz(module: torch.nn.Sequential, c: np.ndarray) -> float:
    weights = [m.weight.detach().numpy() for m in module if isinstance(m, torch.nn.Linear)]
    bound = np.linalg.norm(c @ weights[-1], 2)
    for w in weights[:-1]:
        bound *= np.linalg.norm(w, 2)
    return float(bound) * 1.01


def grid(n_in: int) -> tuple[np.ndarray, float]:
    points = 20001 if n_in == 1 else 401
    axis = np.linspace(-1.0, 1.0, points)
    mesh = np.stack(np.meshgrid(*[axis] * n_in, indexing="ij"), -1).reshape(-1, n_in)
    return mesh, (axis[1] - axis[0]) * np.sqrt(n_in) / 2


def loaded(module: torch.nn.Module, n_in: int):
    return from_module(module, torch.zeros(1, n_in, dtype=torch.float64))


def spec_for(n_in: int, c: np.ndarray, d: float) -> Spec:
    box = InputBox(-np.ones(n_in), np.ones(n_in))
    return Spec((SpecCase(box, (OutputConstraints(c[None, :], np.array([d])),)),), n_in, 2)


NETS = [(seed, n_in, widths) for seed, n_in, widths in
        [(0, 1, (8,)), (1, 1, (6, 6)), (2, 2, (8,)), (3, 2, (6, 6)), (4, 2, (10, 5)),
         (5, 2, (8, 8))]]


def _instances():
    for seed, n_in, widths in NETS:
        for kind in ("sat", "unsat"):
            yield pytest.param(seed, n_in, widths, kind, id=f"net{seed}-{n_in}d-{kind}")


@pytest.mark.parametrize("seed,n_in,widths,kind", list(_instances()))
@pytest.mark.parametrize("name", BACKENDS)
def test_random_net_matches_brute_force(name, seed, n_in, widths, kind):
    _available(name)
    module = random_net(seed, n_in, widths)
    c = np.array([1.0, -1.0])
    points, radius = grid(n_in)
    with torch.no_grad():
        g = module(torch.as_tensor(points)).numpy() @ c
    spread = float(g.max() - g.min())
    clear = max(0.01 * spread, 1e-3)
    if kind == "sat":
        d = -float(g.min()) - clear          # the grid's argmin violates by `clear`
    else:
        d = -float(g.min()) + lipschitz(module, c) * radius + clear   # certified unsat
    model = loaded(module, n_in)
    result = verify_exact(model, spec_for(n_in, c, d), ExactConfig(backend=name),
                          timeout_s=60.0)
    if kind == "sat":
        assert result.verdict is Verdict.SAT, result.message
        cex = result.counterexample
        with torch.no_grad():
            y = module(torch.as_tensor(cex.x[None])).numpy()[0]
        assert c @ y + d <= 0
    else:
        assert result.verdict is Verdict.UNSAT, result.message


class HiddenBump(torch.nn.Module):
    """``y0 = 1 - K |x - p|_1 + 0.01 g(x)``, ``y1 = 0``: the unsafe set ``y0 >= threshold``
    is a tiny diamond around ``p``."""

    def __init__(self, seed: int, n_in: int, steep: float):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.p = (torch.rand(n_in, generator=gen) * 1.6 - 0.8).float().double()
        eye = torch.eye(n_in, dtype=torch.float64)
        self.split = torch.nn.Linear(n_in, 2 * n_in).double()
        self.noise = random_net(seed + 100, n_in, (6,)).double()
        with torch.no_grad():
            self.split.weight.copy_(torch.cat([eye, -eye]))
            self.split.bias.copy_(torch.cat([-self.p, self.p]))
        self.steep = steep

    def forward(self, x):
        bump = 1.0 - self.steep * torch.relu(self.split(x)).sum(-1, keepdim=True)
        value = bump + 0.01 * self.noise(x)[..., :1]
        return torch.cat([value, torch.zeros_like(value)], -1)


@pytest.mark.parametrize("seed,n_in", [(0, 1), (1, 2), (2, 2)])
@pytest.mark.parametrize("name", BACKENDS)
def test_hidden_counterexample_is_found(name, seed, n_in):
    _available(name)
    if get_backend(name).capabilities.relu_chains_only:
        pytest.skip(f"{name} decides chains of affine layers and ReLUs only")
    module = HiddenBump(seed, n_in, steep=65536.0).eval()
    with torch.no_grad():
        peak = float(module(module.p[None])[0, 0])
    threshold = peak - 0.25            # violated only within ~0.25/65536 of p
    c = np.array([-1.0, 0.0])
    spec = spec_for(n_in, c, threshold)
    rng = np.random.default_rng(seed)
    samples = rng.uniform(-1, 1, size=(20000, n_in))
    with torch.no_grad():
        sampled = module(torch.as_tensor(samples)).numpy() @ c + threshold
    assert np.all(sampled > 0), "the counterexample region should be hidden from sampling"
    model = loaded(module, n_in)
    result = verify_exact(model, spec, ExactConfig(backend=name), timeout_s=60.0)
    assert result.verdict is Verdict.SAT, result.message
    assert result.counterexample.margin <= 0
    assert np.abs(result.counterexample.x - module.p.numpy()).sum() < 1e-3


@pytest.mark.parametrize("name", BACKENDS)
def test_known_counterexample_never_unsat_without_refinement_help(name):
    """A sat instance with the bounds and envelopes as loose as possible (no LP tightening,
    one envelope piece) still never comes back unsat."""
    _available(name)
    module = random_net(7, 2, (6, 6))
    c = np.array([1.0, -1.0])
    points, _ = grid(2)
    with torch.no_grad():
        g = module(torch.as_tensor(points)).numpy() @ c
    d = -float(g.min()) - 1e-3
    config = ExactConfig(backend=name, lp_tightening=False, envelope_pieces=1,
                         interval_precheck=False)
    result = verify_exact(loaded(module, 2), spec_for(2, c, d), config, timeout_s=60.0)
    assert result.verdict is not Verdict.UNSAT
    assert result.verdict is Verdict.SAT, result.message
