"""Where the Ray executor is used: a run whose config names a cluster gets it; every other
run neither imports Ray nor hybridver.cluster."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from hybridver.config import ClusterConfig, VerifyConfig
from tests.conftest import EXAMPLES
from tests.cluster.cpus import free_cpu  # noqa: F401 - a fixture

REPO = Path(__file__).resolve().parents[2]
_CHECK = """
import sys
from hybridver.cli import main
code = main(sys.argv[1:])
print("RESULT", code, "ray" in sys.modules,
      any(m.startswith("hybridver.cluster") for m in sys.modules))
"""


@pytest.mark.parametrize("command", [
    ["verify", str(EXAMPLES / "digits_relu.onnx"), str(EXAMPLES / "digits_relu_eps_small_0.vnnlib"),
     "--progress", "off"],
    ["verify", str(EXAMPLES / "tiny_relu.onnx"), str(EXAMPLES / "tiny_relu.vnnlib"),
     "--mode", "exact", "--progress", "off"],
])
def test_a_normal_run_never_imports_ray(command):
    out = subprocess.run([sys.executable, "-c", _CHECK] + command, capture_output=True,
                         text=True, timeout=300, cwd=REPO)
    assert "RESULT 0 False False" in out.stdout, (out.stdout, out.stderr)


def test_a_normal_campaign_never_imports_ray(tmp_path):
    command = ["run-instances", str(EXAMPLES / "instances.csv"), "--limit", "1",
               "--output", str(tmp_path / "out.csv"), "--progress", "off"]
    out = subprocess.run([sys.executable, "-c", _CHECK] + command, capture_output=True,
                         text=True, timeout=300, cwd=REPO)
    assert "RESULT 0 False False" in out.stdout, (out.stdout, out.stderr)


def _context(config: VerifyConfig):
    from hybridver.api import load_model, load_spec
    from hybridver.pipeline.context import RunContext

    model = load_model(EXAMPLES / "tiny_relu.onnx")
    return RunContext(model, load_spec(EXAMPLES / "tiny_relu.vnnlib", model), config)


def test_a_run_on_a_cluster_schedules_ray_tasks(free_cpu, ray_address):
    from hybridver.backends import Limits, Status
    from hybridver.cluster.executor import RayExecutor
    from hybridver.schedule import Job, LocalProcessExecutor
    from tests.schedule.conftest import load

    config = VerifyConfig(cluster=ClusterConfig(address=ray_address))
    ctx = _context(config)
    try:
        executor = ctx.scheduler().executor
        assert isinstance(executor, RayExecutor) and executor.capacity >= 2
        tiny = load("tiny_relu.onnx", "tiny_relu.vnnlib")
        executor.submit(Job(tiny.problems[0], "highs", Limits(time_s=20)))
        [result] = executor.wait(120)
        assert result.outcome.status is Status.INFEASIBLE
    finally:
        ctx.close()
    off = dataclasses.replace(config, cluster=ClusterConfig(address=ray_address,
                                                            executor=False))
    ctx = _context(off)
    try:
        assert isinstance(ctx.scheduler().executor, LocalProcessExecutor)
    finally:
        ctx.close()
