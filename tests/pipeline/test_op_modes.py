"""Every op of the shared benchmarks, on a small model, through every mode.

The models and their planted answers are in :mod:`tests.pipeline.op_models` (a sampled
counterexample for ``sat``, a property that holds by construction for ``holds``).  Modes:
hybrid with the default schedule; hybrid forced into input splitting or activation
splitting (only that stage, no escalation); exact with each MILP/SMT back end; and the
``bounds`` command.  Verdicts are checked against the planted answer: ``sat`` must be
found (a back end that refuses an op says so in an ``unknown`` message, no crash), and a
property that holds is never ``sat``.  The whole file runs in about 20 s on one core (``taskset -c 0``).

``test_every_op_of_the_shared_benchmarks_has_a_case`` walks ../shared/benchmarks (skipped
where absent), so an op type a new benchmark brings fails until a case covers it.
"""

from __future__ import annotations

import gzip
import importlib.util
import json

import onnx
import pytest

import hybridver
from hybridver.cli import main
from hybridver.config import AttackConfig, ExactConfig, Mode, Schedule, StageName, VerifyConfig
from hybridver.result import Verdict
from tests.conftest import shared_files
from tests.pipeline.op_models import CASES, COVERED, planted_specs

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
                    ("square", "highs"), ("square", "ortools"), ("quadratic_form", "z3"),
                    ("quadratic_form", "highs"), ("quadratic_form", "ortools")}


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


def _matrix(modes, slow: set[tuple[str, str]] = frozenset()):
    """(op, mode, answer) parameters; those whose (mode, answer) is in ``slow`` are
    marked slow."""
    return [pytest.param(op, mode, answer, id=f"{op}-{mode}-{answer}",
                         marks=pytest.mark.slow if (mode, answer) in slow else ())
            for op in OPS for mode in modes for answer in ("sat", "holds")]


# the default schedule's proofs pay for whole-box alpha-CROWN and PGD first (~1-2 s each)
@pytest.mark.parametrize("op,mode,answer", _matrix(HYBRID, slow={("hybrid", "holds")}))
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


@pytest.mark.parametrize("op,backend,answer", _matrix(BACKENDS))
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


@pytest.mark.parametrize("method", ["ibp", "crown"])
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


def test_every_op_of_the_shared_benchmarks_has_a_case(shared_benchmarks):
    """A benchmark added with a new op type fails here until a case above covers it."""
    used: dict[str, str] = {}
    for path in shared_files("**/*.onnx", "**/*.onnx.gz"):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        model = onnx.load_from_string(data)
        for node in model.graph.node:
            used.setdefault(node.op_type, str(path.relative_to(shared_benchmarks)))
    assert used   # the folder holds models
    missing = {op: where for op, where in used.items() if op not in COVERED}
    assert not missing, f"ops without a case in tests/pipeline/op_models.py: {missing}"
    assert set(COVERED.values()) <= set(OPS)


@pytest.mark.parametrize("command", ["verify", "bounds"])
def test_equal_on_input_dependent_data_is_refused_cleanly(command, tmp_path, capsys):
    """The benchmarks use Equal on constants (covered above); on input-dependent data it
    is a step function hybridver does not bound: exit 2, one line naming op and node."""
    from tests.pipeline.op_models import OpCase, _f, _n

    case = OpCase("equal_variable", lambda: (
        [_n("Equal", ["h", "c0"], ["eq"]), _n("Where", ["eq", "h", "c1"], ["z"])],
        {"c0": _f(0.0), "c1": _f(1.0)}))
    path = case.build(tmp_path / "equal.onnx")
    assert main([command, str(path), str(_vnnlib(tmp_path / "s.vnnlib", 1.0))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Equal" in err and "'eq'" in err
    assert "only on constants" in err
