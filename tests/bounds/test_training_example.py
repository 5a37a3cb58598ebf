"""examples/certified_training.py runs end to end in a fast mode (about 6 s): two tiny
trainings, ONNX export, VNN-LIB specs and the verifier's verdicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "certified_training.py"


def test_certified_training_example_runs_fast(tmp_path):
    out, report = tmp_path / "files", tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--epochs", "3", "--n-verify", "3",
                           "--timeout", "5", "--out", str(out), "--json", str(report)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(report.read_text())
    assert [r["kind"] for r in results] == ["certified", "natural"]
    for r in results:
        assert r["n_verified"] == 3 and r["unsat"] + r["sat"] + r["other"] == 3
        assert r["verified_accuracy"] == r["unsat"] / 3
        assert 0.0 <= r["clean_accuracy"] <= 1.0
        assert (out / f"{r['network']}.onnx").is_file()
        assert len(list(out.glob(f"{r['network']}_eps_*.vnnlib"))) == 3
    assert "verified acc" in proc.stdout and "digits_natural" in proc.stdout
