"""Connecting to a real local Ray cluster, and the errors when that is impossible."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hybridver.cluster.connect import cluster_info
from hybridver.errors import ClusterError


def test_connects_and_counts_the_cpus(ray_address):
    info = cluster_info(ray_address)
    assert info.nodes >= 1 and info.cpus >= 2
    assert ray_address in info.describe()


def test_an_address_nobody_listens_on_is_one_clear_error():
    code = ("from hybridver.cluster.connect import connect\n"
            "from hybridver.errors import ClusterError\n"
            "try:\n    connect('127.0.0.1:1')\n"
            "except ClusterError as exc:\n    print('ERR', exc)\n")
    pytest.importorskip("ray")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.startswith("ERR cannot reach the Ray cluster at 127.0.0.1:1"), out


def test_without_ray_the_error_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    from hybridver.cluster.connect import require_ray
    with pytest.raises(ClusterError, match=r"pip install 'hybridver\[ray\]'"):
        require_ray()


@pytest.mark.parametrize("command", ["verify", "run-instances"])
def test_without_ray_a_cluster_run_is_one_line_and_exit_2(command, tmp_path):
    """The default install has no Ray: ``--cluster`` then says how to get it (exit 2),
    never a traceback or an internal error."""
    from tests.conftest import EXAMPLES

    args = ([str(EXAMPLES / "tiny_relu.onnx"), str(EXAMPLES / "tiny_relu.vnnlib")]
            if command == "verify" else
            [str(EXAMPLES / "instances.csv"), "--output", str(tmp_path / "out.csv")])
    code = ("import sys\nsys.modules['ray'] = None  # as if the [ray] extra were absent\n"
            "from hybridver.cli import main\n"
            f"sys.exit(main({[command, *args, '--cluster', 'auto', '--progress', 'off']!r}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.startswith("hybridver:")]
    assert lines and "pip install 'hybridver[ray]'" in lines[-1], out.stderr
    assert "Traceback" not in out.stderr
