"""The command line: verdict word last, exit codes, one readable line for bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import onnx
import pytest
from onnx import TensorProto, helper

from hybridver.cli import main
from tests.conftest import EXAMPLES, SHARED_BENCHMARKS

RELU = str(EXAMPLES / "digits_relu.onnx")
SMALL = str(EXAMPLES / "digits_relu_eps_small_0.vnnlib")
LARGE = str(EXAMPLES / "digits_relu_eps_large_2.vnnlib")


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_unsat_with_reports(tmp_path, capsys):
    results, report = tmp_path / "res.txt", tmp_path / "report.json"
    code, out, err = run(["verify", RELU, SMALL, "--timeout", "60", "--results-file",
                          str(results), "--json", str(report)], capsys)
    assert code == 0
    assert out.strip().splitlines()[-1] == "unsat"
    assert results.read_text() == "unsat\n"
    data = json.loads(report.read_text())
    assert data["verdict"] == "unsat" and data["counterexample"] is None
    assert set(data["phases"]) >= {"load", "attack_sampling", "bounds"}
    assert data["stats"]["bounds"]["refuted"] == data["stats"]["bounds"]["disjuncts"] == 9


def _check_backends_block(backends):
    """``{name: {"calls": int, "time_s": float, "outcomes": {status: int}}}``."""
    assert isinstance(backends, dict)
    for name, entry in backends.items():
        assert isinstance(name, str) and set(entry) == {"calls", "time_s", "outcomes"}
        assert isinstance(entry["calls"], int) and entry["time_s"] >= 0
        assert sum(entry["outcomes"].values()) == entry["calls"]


def test_json_report_structure(tmp_path, capsys):
    """The documented report: settings, verdict, per-phase seconds, per-back-end stats."""
    report = tmp_path / "report.json"
    code, out, _ = run(["verify", RELU, SMALL, "--timeout", "60", "--progress", "off",
                        "--json", str(report)], capsys)
    assert code == 0 and out.strip().splitlines()[-1] == "unsat"
    data = json.loads(report.read_text(), parse_constant=lambda c: pytest.fail(c))
    assert set(data) >= {"report_version", "hybridver", "model", "spec", "mode", "backend",
                         "timeout_s", "verdict", "time_s", "phases", "stats", "message",
                         "counterexample", "unconfirmed_candidate"}
    assert data["report_version"] == 1 and data["mode"] == "hybrid"
    assert data["phases"] and all(isinstance(v, float) and v >= 0
                                  for v in data["phases"].values())
    assert sum(data["phases"].values()) <= data["time_s"] + 1e-6
    _check_backends_block(data["stats"]["backends"])


def test_json_report_counts_exact_backend_calls(tmp_path, capsys):
    report = tmp_path / "report.json"
    code, out, _ = run(["verify", str(EXAMPLES / "tiny_relu.onnx"),
                        str(EXAMPLES / "tiny_relu.vnnlib"), "--mode", "exact", "--backend",
                        "highs", "--timeout", "60", "--json", str(report)], capsys)
    assert code == 0 and out.strip().splitlines()[-1] == "unsat"
    data = json.loads(report.read_text())
    assert set(data["phases"]) >= {"load", "exact"} and data["backend"] == "highs"
    backends = data["stats"]["backends"]
    _check_backends_block(backends)
    assert backends["highs"]["calls"] >= 1
    assert backends["highs"]["outcomes"].get("infeasible", 0) == backends["highs"]["calls"]


def test_json_report_unwritable_path_is_bad_input(tmp_path, capsys):
    code, _, err = run(["verify", RELU, SMALL, "--json", str(tmp_path / "no" / "r.json")],
                       capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot write" in err


def test_verify_sat_writes_counterexample(tmp_path, capsys):
    results = tmp_path / "res.txt"
    code, out, _ = run(["verify", RELU, LARGE, "--results-file", str(results)], capsys)
    assert code == 0 and out.strip().splitlines()[-1] == "sat"
    text = results.read_text()
    assert text.startswith("sat\n(") and "(X_63 " in text and "(Y_9 " in text


def _unsupported_model(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Hardmax", ["x"], ["h"], name="first_bad"),
             helper.make_node("Relu", ["h"], ["r"], name="fine"),
             helper.make_node("Celu", ["r"], ["y"], name="second_bad")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)


@pytest.mark.parametrize("case", ["missing_model", "missing_spec", "truncated", "unsupported",
                                  "syntax", "dimensions", "bad_timeout", "bad_mode"])
def test_bad_input_exits_2_with_one_line(case, tmp_path, capsys):
    args = ["verify", RELU, SMALL]
    if case == "missing_model":
        args[1] = str(tmp_path / "nope.onnx")
    elif case == "missing_spec":
        args[2] = str(tmp_path / "nope.vnnlib")
    elif case == "truncated":
        data = (EXAMPLES / "digits_relu.onnx").read_bytes()
        (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
        args[1] = str(tmp_path / "cut.onnx")
    elif case == "unsupported":
        _unsupported_model(tmp_path / "bad.onnx")
        args[1] = str(tmp_path / "bad.onnx")
    elif case == "syntax":
        (tmp_path / "bad.vnnlib").write_text("(declare-const X_0 Real)\n(assert (<= X_0 1.0)\n")
        args[2] = str(tmp_path / "bad.vnnlib")
    elif case == "dimensions":
        args[2] = str(EXAMPLES / "tiny_relu.vnnlib")  # 2 inputs, the digits net has 64
    elif case == "bad_timeout":
        args += ["--timeout", "-3"]
    elif case == "bad_mode":
        args += ["--mode", "psychic"]
    code, out, err = run(args, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hybridver: error:"), err
    assert "Traceback" not in err
    if case == "unsupported":
        assert "Hardmax" in err and "first_bad" in err and "Celu" in err and "second_bad" in err
    if case == "syntax":
        assert ":2:" in err  # line number of the unbalanced assert
    if case == "dimensions":
        assert "2" in err and "64" in err


def test_info_check_examples(capsys):
    code, out, _ = run(["info", RELU, str(EXAMPLES / "digits_tanh.onnx"), "--check", "5"],
                       capsys)
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert last.startswith("max abs diff") and last.endswith("ok")
    assert "linear" in out and "parameters" in out


def test_run_instances_examples(tmp_path, capsys):
    output = tmp_path / "results.csv"
    code, out, _ = run(["run-instances", str(EXAMPLES / "instances.csv"), "--output",
                        str(output), "--limit", "3"], capsys)
    assert code == 0
    rows = list(csv.DictReader(output.open()))
    assert [r["verdict"] for r in rows] == ["unsat", "unsat", "sat"]
    assert all(r["check"] == "ok" for r in rows)
    assert "wrong 0" in out.strip().splitlines()[-1]
    assert len(out.strip().splitlines()) == 1 + 3 + 1  # header, one row each, summary


def test_run_instances_quiet_without_terminal(tmp_path, capsys):
    """Not a terminal: the table on stdout and nothing on stderr, also with --progress auto."""
    code, out, err = run(["run-instances", str(EXAMPLES / "instances.csv"), "--output",
                          str(tmp_path / "r.csv"), "--limit", "1"], capsys)
    assert code == 0 and err == ""
    code, out, err = run(["run-instances", str(EXAMPLES / "instances.csv"), "--output",
                          str(tmp_path / "r.csv"), "--limit", "1", "--progress", "on"], capsys)
    assert code == 0 and err.startswith("[1/1] ")  # plain progress lines when asked for


def test_run_instances_reads_gz_and_flags_nothing_wrong(tmp_path, capsys):
    if not (SHARED_BENCHMARKS / "vnncomp_test").is_dir():
        pytest.skip("../shared/benchmarks absent")
    output = tmp_path / "results.csv"
    code, out, _ = run(["run-instances", str(SHARED_BENCHMARKS / "vnncomp_test" /
                                             "test_instances.csv"), "--output", str(output),
                        "--timeout-cap", "20"], capsys)
    assert code == 0
    rows = list(csv.DictReader(output.open()))
    assert len(rows) == 5 and not any(r["check"] == "WRONG" for r in rows)


def test_console_script_subprocess(tmp_path):
    """The installed entry point: verdict on stdout, no traceback for a missing file."""
    ok = subprocess.run([sys.executable, "-m", "hybridver.cli", "verify", RELU, SMALL],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and ok.stdout.strip().splitlines()[-1] == "unsat"
    bad = subprocess.run([sys.executable, "-m", "hybridver.cli", "info",
                          str(tmp_path / "none.onnx")], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("backend", ["highs", "ortools", "z3"])
def test_verify_exact_mode_each_backend(backend, tmp_path, capsys):
    code, out, _ = run(["verify", str(EXAMPLES / "tiny_relu.onnx"),
                        str(EXAMPLES / "tiny_relu.vnnlib"), "--mode", "exact", "--backend",
                        backend, "--timeout", "60"], capsys)
    assert code == 0 and out.strip().splitlines()[-1] == "unsat"


def test_exact_mode_highs_and_ortools_in_one_process(tmp_path, capsys):
    """highspy and ortools both ship libhighs: both back ends must work in one run."""
    for backend in ("highs", "ortools", "highs"):
        code, out, _ = run(["verify", RELU, LARGE, "--mode", "exact", "--backend", backend,
                            "--timeout", "60"], capsys)
        assert code == 0 and out.strip().splitlines()[-1] == "sat"


def test_encode_formats(tmp_path, capsys):
    for fmt in ("mps", "lp", "smt2"):
        target = tmp_path / f"tiny.{fmt}"
        code, out, err = run(["encode", str(EXAMPLES / "tiny_relu.onnx"),
                              str(EXAMPLES / "tiny_relu.vnnlib"), "--format", fmt, "-o",
                              str(target)], capsys)
        assert code == 0, err
        assert target.stat().st_size > 100


def test_bounds_command_json(tmp_path, capsys):
    report = tmp_path / "b.json"
    code, out, _ = run(["bounds", RELU, SMALL, "--method", "crown", "--json", str(report)],
                       capsys)
    assert code == 0
    data = json.loads(report.read_text())
    assert data["method"] == "crown" and len(data["lower"]) == 10 and len(data["spec_lower"]) == 9
    assert all(lo <= hi for lo, hi in zip(data["lower"], data["upper"]))
    assert min(data["spec_lower"]) > 0  # CROWN proves the small-eps property


def test_verify_reads_a_config_file_and_flags_override_it(tmp_path, capsys):
    config, report = tmp_path / "run.toml", tmp_path / "report.json"
    config.write_text('timeout_s = 1000\nmode = "exact"\n[whole_box]\nmethods = ["ibp"]\n')
    code, out, err = run(["verify", RELU, SMALL, "--config", str(config), "--mode", "hybrid",
                          "--timeout", "60", "--workers", "1", "--threads", "1",
                          "--device", "cpu", "--json", str(report)], capsys)
    assert code == 0 and out.strip().splitlines()[-1] == "unsat", err
    data = json.loads(report.read_text())
    assert data["mode"] == "hybrid" and data["timeout_s"] == 60.0
    assert data["stats"]["bounds"]["methods"] == {"ibp": 1}   # from the file


@pytest.mark.parametrize("text, words", [("timeout = 3\n", "unknown setting 'timeout'"),
                                         ("[attack\n", "line 1")])
def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path, capsys, text, words):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    code, out, err = run(["verify", RELU, SMALL, "--config", str(config)], capsys)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    out = capsys.readouterr().out
    for words in ("default: 300", "default: hybrid", "default: highs", "default: cpu",
                  "--config", "--workers", "--threads"):
        assert words in out


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    from hybridver.version import __version__
    assert capsys.readouterr().out.strip() == f"hybridver {__version__}"


def test_verify_reads_the_gzip_copy_when_only_it_exists(tmp_path, capsys):
    import gzip
    import shutil

    model, spec = tmp_path / "net.onnx", tmp_path / "prop.vnnlib"
    with open(RELU, "rb") as src, gzip.open(str(model) + ".gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    shutil.copy(SMALL, spec)
    code, out, err = run(["verify", str(model), str(spec), "--timeout", "60"], capsys)
    assert code == 0 and out.strip().splitlines()[-1] == "unsat", err
    code, out, err = run(["verify", str(tmp_path / "missing.onnx"), str(spec)], capsys)
    assert code == 2 and "file not found" in err and len(err.strip().splitlines()) == 1


def test_run_instances_reads_csv_files_with_a_byte_order_mark(tmp_path, capsys):
    import shutil

    for name in ("digits_relu.onnx", "digits_relu_eps_small_0.vnnlib"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    (tmp_path / "instances.csv").write_text(
        "\ufeffdigits_relu.onnx,digits_relu_eps_small_0.vnnlib,60\n", encoding="utf-8")
    (tmp_path / "expected_results.csv").write_text(
        "\ufeffonnx,vnnlib,timeout_s,expected\n"
        "digits_relu.onnx,digits_relu_eps_small_0.vnnlib,60,unsat\n", encoding="utf-8")
    code, out, err = run(["run-instances", str(tmp_path / "instances.csv"), "--output",
                          str(tmp_path / "out.csv"), "--progress", "off"], capsys)
    assert code == 0, err
    assert "unsat    unsat" in out and "solved 1/1, wrong 0" in out


@pytest.mark.parametrize("command", ["verify", "bounds"])
@pytest.mark.parametrize("device, words", [("cuda", "is not available"),
                                           ("tpu9", "unknown device")])
def test_an_unusable_device_is_bad_input(command, device, words, capsys):
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, out, err = run([command, RELU, SMALL, "--device", device], capsys)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err


EMPTY_REGION = "".join(f"(declare-const X_{i} Real)\n" for i in range(64)) + \
    "".join(f"(declare-const Y_{i} Real)\n" for i in range(10)) + \
    "".join(f"(assert (>= X_{i} 0.5))\n(assert (<= X_{i} 0.25))\n" for i in range(64)) + \
    "(assert (>= Y_0 Y_1))\n"
NO_OUTPUT = "".join(f"(declare-const X_{i} Real)\n" for i in range(64)) + \
    "".join(f"(declare-const Y_{i} Real)\n" for i in range(10)) + \
    "".join(f"(assert (>= X_{i} 0.0))\n(assert (<= X_{i} 0.1))\n" for i in range(64))


@pytest.mark.parametrize("text, words, verdict", [(EMPTY_REGION, "holds vacuously", "unsat"),
                                                  (NO_OUTPUT, "no output constraint", "sat")])
def test_a_vacuous_spec_is_one_warning_line_and_refused_under_strict(tmp_path, capsys, text,
                                                                     words, verdict):
    spec = tmp_path / "vacuous.vnnlib"
    spec.write_text(text)
    code, out, err = run(["verify", RELU, str(spec), "--timeout", "60"], capsys)
    assert code == 0 and out.strip().splitlines()[-1] == verdict, err
    warned = [line for line in err.splitlines() if line.startswith("hybridver: warning:")]
    assert len(warned) == 1 and words in warned[0]
    code, out, err = run(["verify", RELU, str(spec), "--strict"], capsys)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err


def test_verify_model_whose_ir_differs_is_bad_input(tmp_path, monkeypatch, capsys):
    """A planted importer bug that shows only inside the spec's region: exit 2, one line
    naming the node, no verdict (before the load-time check: a wrong unsat)."""
    from tests.frontends.planted_model import PLANTED_NODE, plant, write_model

    path, spec = write_model(tmp_path)
    code, out, _ = run(["verify", str(path), str(spec), "--timeout", "30"], capsys)
    assert code == 0 and out.strip().splitlines()[-1] == "sat"
    plant(monkeypatch)
    code, out, err = run(["verify", str(path), str(spec), "--timeout", "30"], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert f"node '{PLANTED_NODE}' (Relu, output 'r')" in err


def test_info_check_samples_the_spec_region(tmp_path, monkeypatch, capsys):
    from tests.frontends.planted_model import PLANTED_NODE, plant, write_model

    path, spec = write_model(tmp_path)
    plant(monkeypatch)
    code, out, _ = run(["info", str(path), "--check", "8"], capsys)
    assert code == 0 and out.strip().endswith("ok")  # [-1, 1] misses the planted bug
    code, out, _ = run(["info", str(path), "--check", "8", "--spec", str(spec)], capsys)
    assert code == 1 and "check (8 points of the spec's input region)" in out
    assert "MISMATCH" in out and f"node '{PLANTED_NODE}' (Relu, output 'r')" in out
    code, _, err = run(["info", str(path), "--spec", str(spec)], capsys)
    assert code == 2 and "--check" in err
