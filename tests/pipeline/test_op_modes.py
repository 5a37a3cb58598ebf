"""Every op of the shared benchmarks, on a small model, through every mode.

The models and their planted answers are in :mod:`tests.pipeline.op_models` (a sampled
counterexample for ``sat``, a property that holds by construction for ``holds``).  Modes:
hybrid with the default schedule; hybrid forced into input splitting or activation
splitting (only that stage, no escalation); exact with each MILP/SMT back end; and the
``bounds`` command.  Verdicts are checked against the planted answer: ``sat`` must be
found (a back end that refuses an op says so in an ``unknown`` message, no crash), and a
property that holds is never ``sat``.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

import hybridver
from hybridver.cli import main
from hybridver.config import AttackConfig, ExactConfig, Mode, Schedule, StageName, VerifyConfig
from hybridver.result import Verdict
from tests.pipeline.op_models import CASES, planted_specs

TIMEOUT = 60.0   # generous: every case here normally ends in well under a second

#: the default schedule; PGD with 64 starts instead of 1,024 (seconds per case otherwise)
LIGHT_PGD = AttackConfig(low_dim_restarts=64)
HYBRID = {
    "hybrid": VerifyConfig(timeout_s=TIMEOUT, attack=LIGHT_PGD),
    "input_split": VerifyConfig(timeout_s=TIMEOUT, schedule=Schedule(
        stages=(StageName.INPUT_SPLIT,), escalations=())),
    "activation_split": VerifyConfig(timeout_s=TIMEOUT, input_split_max_dim=0, schedule=Schedule(
        stages=(StageName.ACTIVATION_SPLIT,), escalations=())),
}
BACKENDS = {"highs": "highspy", "ortools": "ortools", "z3": "z3"}

#: ops no exact back end encodes (a clean ``unknown`` naming the node)
EXACT_REFUSED = {"softmax": "softmax node", "matmul_variables": "matmul node",
                 "shape_ops": "where node"}
#: (op, back end) where the exact search may end ``unknown`` on a known counterexample:
#: z3's envelopes of smooth ops are not refined, and the MILPs do not refine the
#: envelopes of products of variables; never a wrong answer, only an incomplete one
EXACT_INCOMPLETE = {("sigmoid", "z3"), ("tanh", "z3"), ("sin", "z3"), ("pow2", "z3"),
                    ("pow3", "z3"), ("mul_variables", "z3"), ("square", "z3"),
                    ("mul_variables", "highs"), ("mul_variables", "ortools"),
                    ("square", "highs"), ("square", "ortools")}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """op name -> (model path, loaded model, planted specs), built on first use."""
    root = tmp_path_factory.mktemp("op_models")
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            case = next(c for c in CASES if c.name == name)
            path = case.build(root / f"{name}.onnx")
            cache[name] = (path, hybridver.load_model(path), planted_specs(path))
        return cache[name]
    return get


OPS = [c.name for c in CASES]


def _matrix(modes, fast: set[tuple[str, str]]):
    """(op, mode, answer) parameters; those not in ``fast`` (mode, answer) are slow (the
    fast ones still cover every op on each code path: hybrid falsification, both
    branch-and-bounds' proofs, one exact back end both ways)."""
    return [pytest.param(op, mode, answer, id=f"{op}-{mode}-{answer}",
                         marks=() if (mode, answer) in fast else pytest.mark.slow)
            for op in OPS for mode in modes for answer in ("sat", "holds")]


@pytest.mark.parametrize("op,mode,answer", _matrix(
    HYBRID, {("hybrid", "sat"), ("input_split", "holds"), ("activation_split", "holds")}))
def test_hybrid_modes_give_the_planted_answer(built, op, mode, answer):
    _, model, planted = built(op)
    result = hybridver.verify(model, getattr(planted, answer), HYBRID[mode])
    if answer == "sat":
        assert result.verdict is Verdict.SAT, result.message
        assert float(result.counterexample.y[0]) >= planted.sat_at
    else:
        assert result.verdict is Verdict.UNSAT, result.message
    if mode != "hybrid":   # the forced stage ran
        assert result.stats[mode]["domains_bounded"] >= 1


@pytest.mark.parametrize("op,backend,answer", _matrix(
    BACKENDS, {("highs", "sat"), ("highs", "holds")}))
def test_exact_back_ends_give_the_planted_answer_or_refuse_cleanly(built, op, backend, answer):
    if importlib.util.find_spec(BACKENDS[backend]) is None:
        pytest.skip(f"{BACKENDS[backend]} is not installed")
    _, model, planted = built(op)
    config = VerifyConfig(timeout_s=TIMEOUT, mode=Mode.EXACT, exact=ExactConfig(backend=backend))
    result = hybridver.verify(model, getattr(planted, answer), config)
    if answer == "holds":
        assert result.verdict in (Verdict.UNSAT, Verdict.UNKNOWN), result.message
        if op not in EXACT_REFUSED and (op, backend) not in EXACT_INCOMPLETE:
            assert result.verdict is Verdict.UNSAT, result.message
        return
    if op in EXACT_REFUSED:
        assert result.verdict is Verdict.UNKNOWN
        assert EXACT_REFUSED[op] in result.message and "cannot be encoded" in result.message
    elif (op, backend) in EXACT_INCOMPLETE:
        assert result.verdict in (Verdict.SAT, Verdict.UNKNOWN), result.message
    else:
        assert result.verdict is Verdict.SAT, result.message
    if result.verdict is Verdict.SAT:
        assert float(result.counterexample.y[0]) >= planted.sat_at


def _vnnlib(path, threshold: float):
    lines = [f"(declare-const X_{i} Real)" for i in range(4)] + ["(declare-const Y_0 Real)"]
    lines += [f"(assert (>= X_{i} -1))\n(assert (<= X_{i} 1))" for i in range(4)]
    lines.append(f"(assert (>= Y_0 {threshold!r}))")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("method", ["crown", pytest.param("ibp", marks=pytest.mark.slow)])
@pytest.mark.parametrize("op", OPS)
def test_bounds_command_encloses_the_sampled_outputs(built, op, method, tmp_path, capsys):
    path, _, planted = built(op)
    spec_path = _vnnlib(tmp_path / "holds.vnnlib", planted.holds_at)
    report = tmp_path / "bounds.json"
    assert main(["bounds", str(path), str(spec_path), "--method", method,
                 "--json", str(report)]) == 0
    bounds = json.loads(report.read_text())
    slack = 1e-5 * (1 + abs(planted.lo) + abs(planted.hi))   # onnxruntime's float32
    assert bounds["lower"][0] <= planted.lo + slack
    assert bounds["upper"][0] >= planted.hi - slack
