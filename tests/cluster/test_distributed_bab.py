"""Distributed input splitting on a real local Ray cluster (``ray start --head``, 2 CPUs):
the same verdicts as the local search, through the library and through ``verify
--cluster``; a shard's process killed mid-run changes no verdict."""

from __future__ import annotations

import importlib.util
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


@pytest.fixture(autouse=True)
def _release_shards():
    """The library-level runs here keep their shard actors; each test gives them back."""
    yield
    if importlib.util.find_spec("ray") is not None:
        import ray

        if ray.is_initialized():
            from hybridver.cluster.bab import release
            release()


def _problem(graph, C, d):
    from hybridver.cluster.shard import ShardProblem

    return ShardProblem(graph_key(graph), C, d, ((0, len(d)),), CROWN, SPLIT,
                        time.time() + 120)


def _distributed(graph, lower, upper, C, d, progress=None):
    from hybridver.cluster.bab import distributed_input_split

    return distributed_input_split(graph, _problem(graph, C, d), lower, upper,
                                   time.monotonic() + 120, _probe(graph, C, d, []),
                                   SETTINGS, progress=progress)


def write_onnx(graph, path) -> None:
    """An MLP graph (linear and relu nodes) as an ONNX file of Gemm and Relu nodes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

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
    n_in, n_out = graph.input_node.size, graph.output_node.size
    model = helper.make_model(helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, n_out])], inits),
        opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)


def write_vnnlib(path, n_in: int, c: float, lower=None, upper=None, relation: str = ">=",
                 n_out: int = 2) -> None:
    """Inputs in ``[lower, upper]`` (default [-1, 1]); a counterexample has
    ``Y_0 - Y_1 >= c`` (or ``<=``, with ``relation``)."""
    lower = -np.ones(n_in) if lower is None else lower
    upper = np.ones(n_in) if upper is None else upper
    box = "\n".join(f"(assert (>= X_{i} {lower[i]:.9f}))\n(assert (<= X_{i} {upper[i]:.9f}))"
                    for i in range(n_in))
    path.write_text("".join(f"(declare-const X_{i} Real)\n" for i in range(n_in))
                    + "".join(f"(declare-const Y_{j} Real)\n" for j in range(n_out)) + box
                    + f"\n(assert ({relation} (- Y_0 Y_1) {c:.6f}))\n")


@pytest.fixture
def two_shards(ray_address):
    """Two shard actors started (their torch import done) before the test's search."""
    import ray

    from hybridver.cluster.bab import shard_actors

    ray.get([actor.pid.remote() for actor in shard_actors(2)], timeout=120)


@pytest.mark.parametrize("holds", [True, False])
def test_same_verdict_as_the_local_search(two_shards, holds):
    graph, lower, upper, C, d = _property(1, holds)
    outcome, cluster = _distributed(graph, lower, upper, C, d)
    assert outcome.status is (SearchStatus.PROVEN if holds else SearchStatus.COUNTEREXAMPLE)
    assert cluster.shards == 2 and cluster.lost_shards == 0
    assert len(set(cluster.pids.values())) == 2 and os.getpid() not in cluster.pids.values()


@pytest.mark.parametrize("holds", [True, False])
def test_a_killed_shard_process_changes_no_verdict(two_shards, holds):
    """SIGKILL to one shard actor's process after the first report: its domains come
    back from the ledger, the verdict stands."""
    graph, lower, upper, C, d = _property(1, holds)
    killed: list[int] = []

    def kill_one(stats, cluster):
        if not killed and cluster.reports >= 1 and 1 in cluster.pids:
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

    from hybridver.cli import main

    graph, lower, upper, C, d_hold = _property(1, True)
    _, _, _, _, d_bad = _property(1, False)
    write_onnx(graph, tmp_path / "mlp.onnx")
    write_vnnlib(tmp_path / "hold.vnnlib", 3, d_hold[0] + 0.002)
    write_vnnlib(tmp_path / "bad.vnnlib", 3, d_bad[0])
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


@pytest.mark.slow
def test_a_lost_head_ends_the_run_with_an_error_not_a_verdict(ray_address, tmp_path):
    """``verify --cluster`` on a search that takes minutes; the head of its (own) cluster
    is killed mid-run: exit code 2, one line naming the lost cluster, no verdict."""
    import subprocess
    import sys

    from scipy.optimize import minimize

    from tests.bab.test_activation_split import mlp, outputs
    from tests.cluster.ray_head import start_head, stop_head

    graph = mlp([8, 48, 48, 2], 0)   # about 140k sub-boxes, 23 s alone on one core
    points = np.random.default_rng(0).uniform(-1, 1, size=(20_000, 8))
    value = np.diff(outputs(graph, points)[:, ::-1], axis=1)[:, 0]

    def minus(x):
        return -float(np.diff(outputs(graph, np.asarray(x)[None])[0, ::-1])[0])
    top = max(-minimize(minus, points[i], bounds=[(-1, 1)] * 8, method="Powell").fun
              for i in np.argsort(-value)[:5])
    write_onnx(graph, tmp_path / "mlp.onnx")
    write_vnnlib(tmp_path / "p.vnnlib", 8, top + 0.01)
    head = start_head()
    try:
        run = subprocess.Popen(
            [sys.executable, "-m", "hybridver", "verify", str(tmp_path / "mlp.onnx"),
             str(tmp_path / "p.vnnlib"), "--timeout", "120", "--progress", "off",
             "--config", str(_config(tmp_path)), "--cluster", head["address"]],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(8)
        assert run.poll() is None, run.communicate()
        stop_head(head)
        out, err = run.communicate(timeout=90)
    finally:
        stop_head(head)
    assert run.returncode == 2, (out, err)
    assert "lost the Ray cluster" in err and "no verdict" in err
    assert not any(v in out.split() for v in ("sat", "unsat", "timeout"))


def test_verify_cluster_splits_activations_on_the_shards(ray_address, tmp_path):
    """A 10-input ReLU network (activation splitting) whose property needs branching:
    ``verify --cluster`` proves it as the local run does, with the shards' reports."""
    import json

    from hybridver.cli import main
    from tests.cluster.test_neuron_shards import _case

    graph, lower, upper, C, d = _case(0.5)
    write_onnx(graph, tmp_path / "mlp.onnx")
    # the violation is y0 - y1 <= -d (C = [1, -1, 0]); 1e-4 more margin for the printing
    write_vnnlib(tmp_path / "p.vnnlib", 10, -d[0] - 1e-4, lower, upper, "<=", n_out=3)
    config = tmp_path / "act.toml"
    config.write_text('[schedule]\nstages = ["activation_split"]\nescalations = []\n'
                      '[activation_split]\nbatch_size = 4\n[cluster]\nshards = 2\n'
                      'slice_s = 0.1\n')
    verdicts = {}
    for where in ("local", "cluster"):
        report = tmp_path / f"{where}.json"
        argv = ["verify", str(tmp_path / "mlp.onnx"), str(tmp_path / "p.vnnlib"), "--timeout",
                "120", "--json", str(report), "--progress", "off", "--config", str(config)]
        assert main(argv + (["--cluster", ray_address] if where == "cluster" else [])) == 0
        data = json.loads(report.read_text())
        verdicts[where] = data["verdict"]
        stats = data["stats"]["activation_split"]
        assert stats["domains_bounded"] > 4
        if where == "cluster":
            assert stats["cluster"]["reports"] >= 2 and stats["cluster"]["shards"] == 2
    assert verdicts == {"local": "unsat", "cluster": "unsat"}
