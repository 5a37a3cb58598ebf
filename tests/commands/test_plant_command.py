"""``hybridver plant``: a fast run end to end, its help without heavy imports, and bad
input answered with exit 2 and one readable line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from hybridver.cli import main
from tests.commands.test_help import _PROBE, HEAVY


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_plant_end_to_end(tmp_path, capsys):
    out = tmp_path / "bench"
    code, stdout, err = run(["plant", str(out), "--arch", "mlp", "--epochs", "40",
                             "--planted", "1", "--clean", "1", "--timeout", "30",
                             "--seed", "5", "--progress", "off"], capsys)
    assert code == 0, err
    assert stdout.startswith(f"{out}: 1 models, 1 planted and 1 clean instances in ")
    assert stdout.strip().endswith(f"s; witnesses in {tmp_path}/bench-sealed/witnesses.json")
    with open(out / "expected_results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["expected"] for r in rows) == ["sat", "unknown"]
    assert all(r["timeout_s"] == "30" and r["onnx"] == "onnx/mlp.onnx" for r in rows)
    witnesses = json.loads((tmp_path / "bench-sealed" / "witnesses.json").read_text())
    assert len(witnesses["instances"]) == 1 and len(witnesses["instances"][0]["x"]) == 16
    report = json.loads((out / "plant_report.json").read_text())
    assert report["settings"]["seed"] == 5 and report["settings"]["archs"] == ["mlp"]


def test_force_replaces_the_folder_and_sealed_moves_the_witnesses(tmp_path, capsys):
    out = tmp_path / "bench"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    code, _, err = run(["plant", str(out), "--force", "--progress", "off"], capsys)
    assert code == 2 and "holds no planted benchmark" in err and (out / "keep.txt").exists()
    (out / "plant_report.json").write_text("{}")
    code, _, err = run(["plant", str(out), "--arch", "mlp", "--epochs", "5",
                        "--progress", "off"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--force" in err
    sealed = tmp_path / "elsewhere" / "w.json"
    code, _, err = run(["plant", str(out), "--arch", "mlp", "--epochs", "40", "--planted",
                        "1", "--clean", "0", "--force", "--sealed", str(sealed),
                        "--progress", "off"], capsys)
    assert code == 0, err
    assert json.loads(sealed.read_text())["benchmark"] == "bench"
    assert not (out / "keep.txt").exists()


@pytest.mark.parametrize("args, message", [
    (["--arch", "lstm"], "unknown architecture 'lstm'"),
    (["--eps", "0.5"], "--eps must be in (0, 0.25]"),
    (["--planted", "0", "--clean", "0"], "not both 0"),
    (["--planted", "-1"], "must be at least 0"),
    (["--input-dim", "1"], "at least 2"),
    (["--input-dim", "8"], "a planted vertex cannot hide among 256 vertices"),
    (["--sealed", "INSIDE"], "lies inside"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, message):
    out = tmp_path / "bench"
    args = [str(out / "w.json") if a == "INSIDE" else a for a in args]
    code, stdout, err = run(["plant", str(out), "--progress", "off", *args], capsys)
    assert code == 2 and stdout == ""
    assert err.startswith("hybridver: error:") and err.count("\n") == 1 and message in err


def test_out_dir_that_is_a_file_is_refused(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("")
    code, _, err = run(["plant", str(path), "--progress", "off"], capsys)
    assert code == 2 and "is not a folder" in err


def test_help_lists_the_architectures_without_heavy_imports():
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps([["plant", "--help"]]),
                           json.dumps(sorted(HEAVY))], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: hybridver plant" in done.stdout
    for name in ("mlp-gelu", "cnn-avgpool", "resnet", "attention"):
        assert name in done.stdout
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
