"""``python -m hybridver`` is the ``hybridver`` command."""

import subprocess
import sys

from hybridver.version import __version__


def test_python_dash_m_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "hybridver", "--version"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert __version__ in done.stdout


def test_python_dash_m_reports_bad_input_with_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "hybridver", "info", str(tmp_path / "no.onnx")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "no.onnx" in done.stderr and "Traceback" not in done.stderr
