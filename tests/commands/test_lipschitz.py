"""``hybridver lipschitz``: the report, its JSON, and bad input (exit 2, one line)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hybridver.cli import main


def _model(path, act: str = "Relu", seed: int = 0) -> None:
    """``x (1, 3) -> Gemm(6) -> act -> Gemm(2)``, float32."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.normal(size=s).astype(np.float32), n)
             for n, s in (("w0", (6, 3)), ("b0", (6,)), ("w1", (2, 6)), ("b1", (2,)))]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    nodes = [helper.make_node("Gemm", ["x", "w0", "b0"], ["h"], name="g0", transB=1),
             helper.make_node(act, ["h"], ["a"], name="the_act"),
             helper.make_node("Gemm", ["a", "w1", "b1"], ["y"], name="g1", transB=1)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)


def _spec(path, radius: float = 0.5) -> None:
    lines = [f"(declare-const X_{i} Real)" for i in range(3)]
    lines += [f"(declare-const Y_{i} Real)" for i in range(2)]
    for i in range(3):
        lines += [f"(assert (>= X_{i} {-radius}))", f"(assert (<= X_{i} {radius}))"]
    lines.append("(assert (>= Y_0 Y_1))")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def files(tmp_path):
    model, spec = tmp_path / "net.onnx", tmp_path / "box.vnnlib"
    _model(model)
    _spec(spec)
    return str(model), str(spec)


def test_report_and_json(files, tmp_path, capsys):
    report = tmp_path / "l.json"
    code = main(["lipschitz", *files, "--timeout", "20", "--json", str(report)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == \
        ["upper", "lower", "exact", "naive", "time"]
    data = json.loads(report.read_text())
    assert set(data) >= {"upper", "lower", "exact", "norm", "time_s", "naive", "rows"}
    assert data["norm"] == "inf" and data["rows"] == "outputs"
    assert data["exact"] is not None
    assert data["upper"] >= data["exact"] * (1 - 1e-6) >= data["lower"] * (1 - 2e-6)
    assert data["naive"] >= data["upper"]


def test_margin_norm_and_config_table(files, tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text("[lipschitz]\nbab = false\nmilp = false\nsamples = 16\n")
    report = tmp_path / "l.json"
    code = main(["lipschitz", *files, "--margin", "0,1", "--norm", "2", "--config",
                 str(config), "--json", str(report)])
    assert code == 0, capsys.readouterr().err
    data = json.loads(report.read_text())
    assert data["rows"] == "margin 0,1" and data["norm"] == "2"
    assert data["boxes"] == 1 and data["exact_source"] != "milp"  # both switched off
    assert data["upper"] >= data["lower"] > 0
    if data["exact"] is not None:  # pinned: the attained value, the upper bound within 1e-6
        assert data["exact"] == data["lower"] and data["upper"] <= data["lower"] * (1 + 1e-6)


@pytest.mark.parametrize("case", ["margin_text", "margin_same", "output_range", "norm",
                                  "unsupported_op", "unknown_op", "both", "missing"])
def test_bad_input_exits_2_with_one_line(case, files, tmp_path, capsys):
    model, spec = files
    args = ["lipschitz", model, spec]
    if case == "margin_text":
        args += ["--margin", "0;1"]
    elif case == "margin_same":
        args += ["--margin", "1,1"]
    elif case == "output_range":
        args += ["--output", "2"]
    elif case == "norm":
        args += ["--norm", "3"]
    elif case == "unsupported_op":  # imported, but no derivative bounds for it here
        _model(tmp_path / "leaky.onnx", act="LeakyRelu")
        args[1] = str(tmp_path / "leaky.onnx")
    elif case == "unknown_op":  # refused by the importer already
        _model(tmp_path / "elu.onnx", act="Elu")
        args[1] = str(tmp_path / "elu.onnx")
    elif case == "both":
        args += ["--output", "0", "--margin", "0,1"]
    elif case == "missing":
        args[2] = str(tmp_path / "nope.vnnlib")
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hybridver: error:"), err
    if case == "unsupported_op":  # the IR node is named after its output tensor
        assert "leaky_relu" in err and "node 'a'" in err
    if case == "unknown_op":
        assert "Elu" in err and "the_act" in err
