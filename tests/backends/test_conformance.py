"""The backend conformance suite: the same small problems through every registered back end
(``backend_names()``, so a new back end is picked up without edits), with verdicts that are
known exactly.

Weights, biases and thresholds are chosen so the true margin ``min_x max_i (C y + d)_i`` is
computable by hand (dyadic numbers, exact in float64).  Every back end must give the
expected status, except where documented here:

* **tolerance band** (back ends without exact arithmetic, i.e. the MILP ones): when the
  true margin ``m`` satisfies ``|m| < delta`` (``MilpOptions.delta = 1e-4``), the answer
  may be UNKNOWN (ambiguous: the solver's tolerances cannot separate it from 0) or a
  CANDIDATE whose point does not violate on the real network (a MILP point is feasible
  only up to ~1e-7, which a steep network turns into an output error of ~1e-4; the
  bump below has slope 1024), and the confirmed counterexample may be missed;
* **single-point optimum at 0** (``m = 0`` attained at one point only): a non-exact back
  end may answer UNKNOWN;
* **smooth nonlinearities**: a CANDIDATE is a point of the envelope, not necessarily a
  counterexample (refinement and confirmation are tested separately).

Never allowed anywhere: INFEASIBLE for a problem that has a counterexample, or a proven
``margin_lower_bound`` above the true margin.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import pytest
import torch

from hybridver.api import from_module
from hybridver.backends import Limits, Status, backend_names, get_backend
from hybridver.backends.refine import _refinable, solve_with_refinement
from hybridver.encode.affine_form import interval_node_bounds
from hybridver.ir.evaluate import evaluate
from hybridver.ir.ops import OpKind
from hybridver.ir.relu_chain import ReluChain
from hybridver.problem import Subproblem
from hybridver.result import confirm_counterexample
from hybridver.specs import InputBox, OutputConstraints, Spec, SpecCase

DELTA_BAND = 1e-4
BACKENDS = backend_names()


def _backend(name: str):
    try:
        return get_backend(name)
    except Exception as exc:  # noqa: BLE001 - unavailable solver: skip, do not fail
        pytest.skip(f"back end {name} unavailable: {exc}")


# ---------------------------------------------------------------------- networks
def _linear(weight, bias) -> torch.nn.Linear:
    weight = torch.tensor(weight, dtype=torch.float64)
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0]).double()
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(torch.tensor(bias, dtype=torch.float64))
    return layer


def clamp_net() -> torch.nn.Module:
    """``y = relu(x) - relu(x - 1)``: 0 for x <= 0, x on [0, 1], 1 for x >= 1."""
    return torch.nn.Sequential(_linear([[1.0], [1.0]], [0.0, -1.0]), torch.nn.ReLU(),
                               _linear([[1.0, -1.0]], [0.0]))


def clamp_pair_net() -> torch.nn.Module:
    """Outputs ``(c, 1 - c)`` with ``c`` the clamp above."""
    return torch.nn.Sequential(_linear([[1.0], [1.0]], [0.0, -1.0]), torch.nn.ReLU(),
                               _linear([[1.0, -1.0], [-1.0, 1.0]], [0.0, 1.0]))


P1, P2, K = 0.7353515625, 0.2197265625, 1024.0


def bump_net() -> torch.nn.Module:
    """``y = 1 - K (|x1 - p1| + |x2 - p2|)``: above 1/2 only on a diamond of radius 1/2048."""
    return torch.nn.Sequential(
        _linear([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], [-P1, P1, -P2, P2]),
        torch.nn.ReLU(), _linear([[-K, -K, -K, -K]], [1.0]))


def wide_net() -> torch.nn.Module:
    """``y = 1000 relu(x1) - 1000 relu(x2)``: range [-1000, 1000]."""
    return torch.nn.Sequential(_linear([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0]), torch.nn.ReLU(),
                               _linear([[1000.0, -1000.0]], [0.0]))


class AbsNet(torch.nn.Module):
    """``y = |x1| + |x2|``: range [0, 2]."""

    def __init__(self):
        super().__init__()
        self.first = _linear([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
        self.last = _linear([[1.0, 1.0]], [0.0])

    def forward(self, x):
        return self.last(torch.abs(self.first(x)))


def leaky_net() -> torch.nn.Module:
    """``y = leaky_relu(x, 0.125)``: range [-0.125, 1] on [-1, 1]."""
    return torch.nn.Sequential(_linear([[1.0]], [0.0]), torch.nn.LeakyReLU(0.125))


def sigmoid_net() -> torch.nn.Module:
    """``y = sigmoid(x)``: range [0.2689, 0.7311] on [-1, 1]."""
    return torch.nn.Sequential(_linear([[1.0]], [0.0]), torch.nn.Sigmoid())


def softmax_net() -> torch.nn.Module:
    return torch.nn.Sequential(_linear([[1.0], [-1.0]], [0.0, 0.0]), torch.nn.Softmax(dim=-1))


# ---------------------------------------------------------------------- problems
@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    net: Callable[[], torch.nn.Module]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    C: tuple[tuple[float, ...], ...]
    d: tuple[float, ...]
    margin: float                 # the exact min over the box of max_i (C y + d)_i
    single_point: bool = False    # the margin (0) is attained at one point only
    smooth: bool = False
    split: tuple[int, ...] | None = None   # ReLU split of the first ReLU node

    @property
    def expected(self) -> Status:
        return Status.CANDIDATE if self.margin <= 0 else Status.INFEASIBLE

    def module(self) -> torch.nn.Module:
        return self.net().double().eval()

    def problem(self) -> Subproblem:
        module = self.module()
        n = len(self.lower)
        graph = from_module(module, torch.zeros(1, n, dtype=torch.float64)).graph
        box = InputBox(np.array(self.lower), np.array(self.upper))
        splits = {}
        if self.split is not None:
            relu = next(node.name for node in graph.nodes() if node.op is OpKind.RELU)
            splits[relu] = np.array(self.split, dtype=np.int8)
        return Subproblem(graph, box, OutputConstraints(np.array(self.C), np.array(self.d)),
                          interval_node_bounds(graph, box.lower, box.upper), splits,
                          label=self.name)


CASES = [
    Case("clamp_ge_half", clamp_net, (-1.0,), (2.0,), ((-1.0,),), (0.5,), -0.5),
    Case("clamp_ge_1.5", clamp_net, (-1.0,), (2.0,), ((-1.0,),), (1.5,), 0.5),
    Case("clamp_ge_1_plus_1e-6", clamp_net, (-1.0,), (2.0,), ((-1.0,),), (1.0 + 1e-6,), 1e-6),
    Case("clamp_ge_1_minus_1e-6", clamp_net, (-1.0,), (2.0,), ((-1.0,),), (1.0 - 1e-6,),
         -1e-6),
    Case("clamp_ge_1_exactly", clamp_net, (-1.0,), (2.0,), ((-1.0,),), (1.0,), 0.0),
    Case("clamp_le_minus_1e-6", clamp_net, (-1.0,), (2.0,), ((1.0,),), (1e-6,), 1e-6),
    Case("pair_both_ge_0.3", clamp_pair_net, (-1.0,), (2.0,), ((-1.0, 0.0), (0.0, -1.0)),
         (0.3, 0.3), -0.2),
    Case("pair_both_ge_0.6", clamp_pair_net, (-1.0,), (2.0,), ((-1.0, 0.0), (0.0, -1.0)),
         (0.6, 0.6), 0.1),
    Case("pair_both_ge_half", clamp_pair_net, (-1.0,), (2.0,), ((-1.0, 0.0), (0.0, -1.0)),
         (0.5, 0.5), 0.0, single_point=True),
    Case("bump_ge_half", bump_net, (0.0, 0.0), (1.0, 1.0), ((-1.0,),), (0.5,), -0.5),
    Case("bump_ge_1.001", bump_net, (0.0, 0.0), (1.0, 1.0), ((-1.0,),), (1.001,), 0.001),
    Case("bump_ge_1_minus_1e-6", bump_net, (0.0, 0.0), (1.0, 1.0), ((-1.0,),), (1 - 1e-6,),
         -1e-6),
    Case("wide_ge_minus_1e6", wide_net, (-1.0, -1.0), (1.0, 1.0), ((-1.0,),), (-1e6,), -1e6 - 1000),
    Case("wide_ge_1e6", wide_net, (-1.0, -1.0), (1.0, 1.0), ((-1.0,),), (1e6,), 1e6 - 1000),
    Case("wide_ge_999", wide_net, (-1.0, -1.0), (1.0, 1.0), ((-1.0,),), (999.0,), -1.0),
    Case("wide_ge_1000.5", wide_net, (-1.0, -1.0), (1.0, 1.0), ((-1.0,),), (1000.5,), 0.5),
    Case("abs_ge_1.5", AbsNet, (-1.0, -1.0), (1.0, 1.0), ((-1.0,),), (1.5,), -0.5),
    Case("abs_ge_2.5", AbsNet, (-1.0, -1.0), (1.0, 1.0), ((-1.0,),), (2.5,), 0.5),
    Case("abs_le_minus_1e-6", AbsNet, (-1.0, -1.0), (1.0, 1.0), ((1.0,),), (1e-6,), 1e-6),
    Case("leaky_le_minus_0.0625", leaky_net, (-1.0,), (1.0,), ((1.0,),), (0.0625,), -0.0625),
    Case("leaky_le_minus_0.25", leaky_net, (-1.0,), (1.0,), ((1.0,),), (0.25,), 0.125),
    Case("split_inactive_ge_half", clamp_net, (-1.0,), (2.0,), ((-1.0,),), (0.5,), 0.5,
         split=(-1, 0)),
    Case("split_active_ge_0.99", clamp_net, (-1.0,), (2.0,), ((-1.0,),), (0.99,), -0.01,
         split=(0, 1)),
    Case("sigmoid_ge_0.8", sigmoid_net, (-1.0,), (1.0,), ((-1.0,),), (0.8,),
         0.8 - 1 / (1 + np.exp(-1.0)), smooth=True),
    Case("sigmoid_le_0.2", sigmoid_net, (-1.0,), (1.0,), ((1.0,),), (-0.2,),
         1 / (1 + np.exp(1.0)) - 0.2, smooth=True),
    Case("sigmoid_ge_0.7", sigmoid_net, (-1.0,), (1.0,), ((-1.0,),), (0.7,),
         0.7 - 1 / (1 + np.exp(-1.0)), smooth=True),
]


def tight(case: Case) -> bool:
    return abs(case.margin) < DELTA_BAND


def allowed(backend, case: Case) -> set[Status]:
    """The statuses a back end may give (see the module docstring)."""
    ok = {case.expected}
    if backend.capabilities.relu_chains_only and ReluChain.of(case.problem().graph) is None:
        ok |= {Status.UNKNOWN}
    if not backend.capabilities.exact_arithmetic:
        if tight(case):
            ok |= {Status.UNKNOWN, Status.CANDIDATE}
        if case.single_point:
            ok |= {Status.UNKNOWN}
    return ok


def true_margin_at(case: Case, x: np.ndarray) -> float:
    """The exact problem's margin at ``x`` clipped into the box (float64 network)."""
    problem = case.problem()
    x = np.clip(np.asarray(x, dtype=np.float64), case.lower, case.upper)
    y = evaluate(problem.graph, x.reshape(1, 1, -1)).reshape(-1).numpy()
    return float(np.max(np.array(case.C) @ y + np.array(case.d)))


# ---------------------------------------------------------------------- the suite
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("name", BACKENDS)
def test_verdict(name, case):
    backend = _backend(name)
    outcome = backend.solve(case.problem(), Limits(time_s=30.0))
    assert outcome.status in allowed(backend, case), (outcome.status, outcome.message)
    if case.expected is Status.CANDIDATE:
        assert outcome.status is not Status.INFEASIBLE, "claimed no counterexample wrongly"
    if outcome.margin_lower_bound is not None and outcome.status is Status.INFEASIBLE:
        assert outcome.margin_lower_bound <= case.margin + 1e-9, "proven bound above truth"
    if outcome.status is Status.CANDIDATE:
        x = outcome.candidate.x
        width = np.array(case.upper) - np.array(case.lower)
        assert np.all(x >= np.array(case.lower) - 1e-6 * width)
        assert np.all(x <= np.array(case.upper) + 1e-6 * width)
        if not case.smooth and case.expected is Status.CANDIDATE:
            if backend.capabilities.exact_arithmetic:
                assert true_margin_at(case, x) <= 1e-9
            elif not tight(case):
                assert true_margin_at(case, x) <= 1e-6 * (1 + abs(case.margin))


def _confirm_for(case: Case):
    module = case.module()
    spec = Spec((SpecCase(InputBox(np.array(case.lower), np.array(case.upper)),
                          (OutputConstraints(np.array(case.C), np.array(case.d)),)),),
                len(case.lower), len(case.C[0]))

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.as_tensor(x, dtype=torch.float64)).numpy()

    def confirm(candidate):
        return confirm_counterexample(candidate, spec, run, (1, len(case.lower)), "torch",
                                      np.float64)
    return confirm


@pytest.mark.parametrize("case", [c for c in CASES if c.margin <= 0], ids=lambda c: c.name)
@pytest.mark.parametrize("name", BACKENDS)
def test_counterexample_confirmed(name, case):
    """With confirmation (and refinement where the back end supports it), every problem
    with a counterexample yields one the real network confirms."""
    backend = _backend(name)
    outcome, cex = solve_with_refinement(backend, case.problem(), _confirm_for(case),
                                         Limits(time_s=30.0))
    if cex is None:
        exact = backend.capabilities.exact_arithmetic
        tolerated = (not exact and (case.single_point or tight(case))) or (
            case.smooth and not _refinable(backend)) or (
            backend.capabilities.relu_chains_only
            and ReluChain.of(case.problem().graph) is None)
        assert tolerated, (outcome.status, outcome.message)
        assert outcome.status is not Status.INFEASIBLE
        return
    assert cex.margin <= 0
    assert true_margin_at(case, cex.x) <= 0


@pytest.mark.parametrize("name", BACKENDS)
def test_declares_protocol(name):
    backend = _backend(name)
    assert backend.name == name
    caps = backend.capabilities
    assert isinstance(caps.exact_piecewise_linear, bool)
    assert backend.is_available()


@pytest.mark.parametrize("name", BACKENDS)
def test_not_encodable_is_never_a_proof(name):
    backend = _backend(name)
    case = Case("softmax", softmax_net, (-1.0,), (1.0,), ((-1.0, 0.0),), (2.0,), 1.0)
    outcome = backend.solve(case.problem(), Limits(time_s=10.0))
    assert outcome.status in (Status.UNKNOWN, Status.ERROR)


@pytest.mark.parametrize("name", BACKENDS)
def test_time_limit_is_honoured(name):
    backend = _backend(name)
    torch.manual_seed(3)
    module = torch.nn.Sequential(torch.nn.Linear(8, 60), torch.nn.ReLU(),
                                 torch.nn.Linear(60, 60), torch.nn.ReLU(),
                                 torch.nn.Linear(60, 60), torch.nn.ReLU(),
                                 torch.nn.Linear(60, 2)).double()
    graph = from_module(module, torch.zeros(1, 8, dtype=torch.float64)).graph
    box = InputBox(-np.ones(8), np.ones(8))
    problem = Subproblem(graph, box, OutputConstraints(np.array([[1.0, -1.0]]), np.array([0.0])),
                         interval_node_bounds(graph, box.lower, box.upper))
    start = time.monotonic()
    outcome = backend.solve(problem, Limits(time_s=1.0))
    assert time.monotonic() - start < 10.0
    assert outcome.status in (Status.TIMEOUT, Status.UNKNOWN, Status.CANDIDATE,
                              Status.INFEASIBLE)


def test_milp_back_ends_share_one_process():
    """highspy and ortools each ship libhighs; with the pinned pair both work in one process,
    in any order, repeatedly."""
    case = next(c for c in CASES if c.name == "bump_ge_half")
    names = [n for n in ("highs", "ortools", "highs", "ortools") if n in BACKENDS]
    if len(set(names)) < 2:
        pytest.skip("needs both MILP back ends")
    for name in names:
        outcome = _backend(name).solve(case.problem(), Limits(time_s=10.0))
        assert outcome.status is Status.CANDIDATE
