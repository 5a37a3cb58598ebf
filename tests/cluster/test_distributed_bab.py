"""Distributed input splitting on a real local Ray cluster (``ray start --head``, 2 CPUs):
the same verdicts as the local search, through the library and through ``verify
--cluster``; a shard's process killed mid-run changes no verdict."""

from __future__ import annotations

import dataclasses
import os
import signal
import time

import numpy as np
import pytest

from hybridver.bab_core import SearchStatus
from hybridver.config import ClusterConfig
from hybridver.schedule.transport import graph_key
from tests.cluster.test_coordinator import CROWN, SPLIT, _probe, _property

SETTINGS = ClusterConfig(address="set-by-fixture", shards=2, slice_s=0.05,
                         checkpoint_s=0.2, steal_min=4)


def _problem(graph, C, d):
    from hybridver.cluster.shard import ShardProblem

    return ShardProblem(graph_key(graph), C, d, ((0, len(d)),), CROWN, SPLIT,
                        time.time() + 120)


def _distributed(graph, lower, upper, C, d, progress=None):
    from hybridver.cluster.bab import distributed_input_split

    return distributed_input_split(graph, _problem(graph, C, d), lower, upper,
                                   time.monotonic() + 120, _probe(graph, C, d, []),
                                   SETTINGS, progress=progress)


@pytest.mark.parametrize("holds", [True, False])
def test_same_verdict_as_the_local_search(ray_address, holds):
    graph, lower, upper, C, d = _property(1, holds)
    outcome, cluster = _distributed(graph, lower, upper, C, d)
    assert outcome.status is (SearchStatus.PROVEN if holds else SearchStatus.COUNTEREXAMPLE)
    assert cluster.shards == 2 and cluster.lost_shards == 0
    assert len(set(cluster.pids.values())) == 2 and os.getpid() not in cluster.pids.values()


@pytest.mark.parametrize("holds", [True, False])
def test_a_killed_shard_process_changes_no_verdict(ray_address, holds):
    """SIGKILL to one shard actor's process after the second round of reports: its
    domains come back from the ledger, the verdict stands."""
    graph, lower, upper, C, d = _property(1, holds)
    killed: list[int] = []

    def kill_one(stats, cluster):
        if not killed and cluster.reports >= 2 and 1 in cluster.pids:
            killed.append(cluster.pids[1])
            os.kill(cluster.pids[1], signal.SIGKILL)

    outcome, cluster = _distributed(graph, lower, upper, C, d, kill_one)
    assert outcome.status is (SearchStatus.PROVEN if holds else SearchStatus.COUNTEREXAMPLE)
    if holds:   # a counterexample may be found before the death is noticed
        assert killed and cluster.lost_shards == 1 and cluster.resent_domains >= 1


def test_verify_cluster_gives_the_local_verdicts(ray_address, tmp_path):
    """``hybridver verify --cluster`` on ONNX files: a property that holds and one with a
    counterexample, each as the local run answers; the report counts the shards."""
    import json

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from hybridver.cli import main

    graph, lower, upper, C, d_hold = _property(1, True)
    _, _, _, _, d_bad = _property(1, False)
    nodes, inits, prev = [], [], "x"
    for node in graph.nodes():
        if node.op.value == "linear":
            w, b = node.consts["weight"], node.consts["bias"]
            inits += [numpy_helper.from_array(w.T.astype(np.float32), f"{node.name}_w"),
                      numpy_helper.from_array(b.astype(np.float32), f"{node.name}_b")]
            nodes.append(helper.make_node("Gemm", [prev, f"{node.name}_w", f"{node.name}_b"],
                                          [node.name]))
            prev = node.name
        elif node.op.value == "relu":
            nodes.append(helper.make_node("Relu", [prev], [node.name]))
            prev = node.name
    model = helper.make_model(helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, 2])], inits),
        opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "mlp.onnx")
    for name, c in (("hold", d_hold[0]), ("bad", d_bad[0])):
        box = "\n".join(f"(assert (>= X_{i} -1.0))\n(assert (<= X_{i} 1.0))" for i in range(3))
        (tmp_path / f"{name}.vnnlib").write_text(
            "".join(f"(declare-const X_{i} Real)\n" for i in range(3))
            + "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n" + box
            + f"\n(assert (>= (- Y_0 Y_1) {c + 0.002 if name == 'hold' else c:.6f}))\n")
    verdicts = {}
    for name in ("hold", "bad"):
        for where in ("local", "cluster"):
            report = tmp_path / f"{name}-{where}.json"
            argv = ["verify", str(tmp_path / "mlp.onnx"), str(tmp_path / f"{name}.vnnlib"),
                    "--timeout", "120", "--json", str(report), "--progress", "off",
                    "--config", str(_config(tmp_path))]
            if where == "cluster":
                argv += ["--cluster", ray_address]
            assert main(argv) == 0
            data = json.loads(report.read_text())
            verdicts[name, where] = data["verdict"]
            cluster = data["stats"]["input_split"].get("cluster")
            if where == "cluster" and data["stats"]["input_split"]["cases"]:
                assert cluster and cluster["shards"] >= 1
            if where == "local":
                assert cluster is None
    assert verdicts["hold", "local"] == verdicts["hold", "cluster"] == "unsat"
    assert verdicts["bad", "local"] == verdicts["bad", "cluster"] == "sat"


def _config(tmp_path):
    """Input splitting only (no sampling or PGD that would find the counterexample before
    the search, no whole-box proof), so that the cluster's search decides."""
    path = tmp_path / "only_split.toml"
    path.write_text('[schedule]\nstages = ["input_split"]\nescalations = []\n'
                    '[cluster]\nshards = 2\nslice_s = 0.05\n')
    return path


def test_a_run_without_cluster_never_imports_ray(tmp_path):
    import subprocess
    import sys

    from tests.conftest import EXAMPLES

    code = ("import sys\nfrom hybridver.cli import main\n"
            f"rc = main(['verify', {str(EXAMPLES / 'tiny_relu.onnx')!r}, "
            f"{str(EXAMPLES / 'tiny_relu.vnnlib')!r}, '--progress', 'off'])\n"
            "print(rc, any(m == 'ray' or m.startswith('ray.') for m in sys.modules), "
            "'hybridver.cluster' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.stdout.splitlines()[-1].split() == ["0", "False", "False"], out.stderr
