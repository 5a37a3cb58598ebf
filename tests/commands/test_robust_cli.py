"""``hybridver robust``: verdicts end to end, the JSON report and the PNG, and bad input
answered with exit 2 and one readable line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from hybridver.cli import main
from tests.commands.test_help import _PROBE, HEAVY
from tests.manipulations import nets


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 4x4 MLP, a grid point and its class, a flat 3-entry model."""
    folder = tmp_path_factory.mktemp("robust_cli")
    model = nets.mlp(folder / "mlp.onnx")
    x0 = nets.grid_point(4, 8)
    import onnxruntime as ort
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    label = int(np.argmax(sess.run(None, {"input": x0.astype(np.float32)})[0]))
    np.save(folder / "x.npy", x0.reshape(4, 4))
    np.save(folder / "short.npy", np.zeros(15))
    flat = nets.flat_mlp(folder / "flat3.onnx", n=3)
    np.save(folder / "x3.npy", np.zeros(3))
    return folder, model, label, flat


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_sat_with_json_and_png(files, capsys, tmp_path):
    folder, model, label, _ = files
    report, png = tmp_path / "r.json", tmp_path / "c.png"
    code, out, err = run(["robust", model, "--point", str(folder / "x.npy"), "--label",
                          str(label), "--family", "patch=2x2@1,1:0.2", "--clip", "0,1",
                          "--json", str(report), "--save-cex", str(png), "--timeout", "60",
                          "--progress", "off"], capsys)
    assert code == 0, err
    assert out.splitlines()[-1] == "sat"
    assert f"instead of {label}" in err and "image written to" in err
    data = json.loads(report.read_text())
    assert data["verdict"] == "sat" and data["label"] == label and data["n_params"] == 4
    cex = data["counterexample"]
    assert len(cex["image"]) == 16 and cex["predicted"] != label
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unsat_and_grid(files, capsys, tmp_path):
    folder, model, label, _ = files
    code, out, err = run(["robust", model, "--point", str(folder / "x.npy"), "--label",
                          str(label), "--family", "brightness=0.05", "--family",
                          "contrast=0.05", "--save-cex", str(tmp_path / "none.png"),
                          "--progress", "off"], capsys)
    assert code == 0 and out.splitlines()[-1] == "unsat", err
    assert not (tmp_path / "none.png").exists()
    code, out, err = run(["robust", model, "--point", str(folder / "x.npy"), "--label",
                          str(label), "--family", "brightness=1", "--clip", "0,1",
                          "--grid", "8", "--progress", "off"], capsys)
    assert code == 0 and out.splitlines()[-1] in ("sat", "unsat"), err


@pytest.mark.parametrize("extra, message", [
    (["--family", "blur=0.1"], "unknown manipulation family 'blur'"),
    (["--family", "patch=3x3@2,2:0.1"], "does not fit the 4x4 image"),
    (["--family", "brightness=0.1>contrast=0.1"], "is not affine"),
    (["--family", "brightness=0.1", "--label", "7"], "label 7 is not in 0..2"),
    (["--family", "brightness=0.1", "--grid", "7"], "is not a grid image"),
    (["--family", "brightness=0.1", "--clip", "1,0"], "LO < HI"),
    (["--family", "brightness=0.1", "--clip", "zero"], "expected LO,HI"),
    (["--family", "brightness=0.1", "--point", "short.npy"], "the point has 15 entries"),
    (["--family", "brightness=0.1", "--point", "missing.npy"], "missing.npy"),
    (["--family", "brightness=0.1", "--image-shape", "3x3"], "does not fit the model input"),
    (["--label", "0"], "--family"),
])
def test_bad_input_exits_2_with_one_line(files, capsys, extra, message):
    folder, model, label, _ = files
    args = ["robust", model, "--point", str(folder / "x.npy"), "--label", str(label),
            "--progress", "off"]
    for i in range(0, len(extra), 2):
        key, value = extra[i], extra[i + 1]
        if key == "--point":
            value = str(folder / value)
        if key in args:
            args[args.index(key) + 1] = value
        else:
            args += [key, value]
    code, out, err = run(args, capsys)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert message in err


def test_png_of_an_input_that_is_no_image_is_refused(files, capsys, tmp_path):
    folder, _, _, flat = files
    code, out, err = run(["robust", flat, "--point", str(folder / "x3.npy"), "--label", "0",
                          "--family", "brightness=0.1", "--save-cex", str(tmp_path / "a.png"),
                          "--progress", "off"], capsys)
    assert code == 2 and "--image-shape" in err and err.count("\n") == 1


def test_help_imports_no_heavy_module():
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps([["robust", "--help"]]),
                           json.dumps(sorted(HEAVY))], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: hybridver robust" in done.stdout and "--family F" in done.stdout
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
